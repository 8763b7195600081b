#!/usr/bin/env bash
# The long form of the files-that-tear tests (issue 15; docs/reliability.md, "Files that tear"):
# TornFileTests with COWENGINE_TEAR_LONG=1 - 200 SIGKILLs of a child in the middle of saves, every
# bit of a file's header and of its page table block flipped in turn, 67 bits of each stored page,
# every 4 KiB truncation of a 16 MiB file - once with each write-protection mechanism the kernel
# offers. ./build.sh stress runs it after the stress run; 3.5-6 min per mechanism on the 2-core VM.
#
#   tests/scripts/torn-files.sh [--seed S] [--bin DIR]
#
#   --seed S   the kill test's seed (default: a new one each run, printed in its output and in
#              every failure message)
#   --bin DIR  the built test assembly's directory (default: the Release build)
#
# Exit code 1 if a run failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

seed=""
bin=tests/CowEngine.Tests/bin/Release/net10.0
while (($#)); do
    case "$1" in
        --seed) seed=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        *) echo "torn-files.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ -f $bin/CowEngine.Tests.dll ]] || { echo "torn-files.sh: $bin/CowEngine.Tests.dll not found: build first (./build.sh)" >&2; exit 2; }

mechanisms=(mprotect)
# The native test program answers whether the kernel offers userfaultfd (and says why not).
if make -C native "$(pwd -P)/native/build/test_native" >/dev/null && native/build/test_native --has-userfaultfd; then
    mechanisms+=(userfaultfd)
fi

rc=0
for mechanism in "${mechanisms[@]}"; do
    echo "torn-files.sh: TornFileTests, long form, $mechanism write protection"
    (cd "$bin" && env COWENGINE_TEAR_LONG=1 COWENGINE_TEAR_TEST_SEED="$seed" COWENGINE_WRITE_PROTECTION="$mechanism" \
        dotnet CowEngine.Tests.dll -class CowEngine.Tests.TornFileTests -noColor -showLiveOutput) || rc=1
done
((rc == 0)) && echo "torn-files.sh: passed with ${mechanisms[*]}" || echo "torn-files.sh: FAILED (see above)" >&2
exit "$rc"
