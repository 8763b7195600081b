#!/usr/bin/env bash
# Runs one test class (or the whole test assembly) again and again, optionally beside busy loops that
# load the cores, and counts the runs that fail or crash: the check for failures that show up one
# run in ten or fifty, such as a test that depends on the scheduler being fair. (Issue 16's stall
# showed up more on an idle machine than beside busy loops: try both.)
#
#   tests/scripts/repeat-under-load.sh [--runs N] [--class NAME] [--load N] [--bin DIR]
#
#   --runs N     runs (default 50)
#   --class NAME fully qualified test class (default CowEngine.Tests.RuntimeInteropTests);
#                "all" runs the whole assembly
#   --load N     busy-loop processes beside the runs (default 0; the number of cores: --load $(nproc))
#   --bin DIR    the built test assembly's directory (default: the Release build)
#
# Prints one line per run (result, seconds) and ends with "N runs, N failed". Exit code 1 if any
# run failed; the output of each failed run is kept in artifacts/repeat/.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

runs=50
class=CowEngine.Tests.RuntimeInteropTests
load=0
bin=tests/CowEngine.Tests/bin/Release/net10.0
while (($#)); do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --class) class=$2; shift 2 ;;
        --load) load=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        *) echo "repeat-under-load.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ -f $bin/CowEngine.Tests.dll ]] || { echo "repeat-under-load.sh: $bin/CowEngine.Tests.dll not found: build first (./build.sh)" >&2; exit 2; }

out=artifacts/repeat
mkdir -p "$out"
burners=()
cleanup() { ((${#burners[@]})) && kill "${burners[@]}" 2>/dev/null; }
trap cleanup EXIT
for ((i = 0; i < load; i++)); do
    (while :; do :; done) &
    burners+=($!)
done

filter=()
[[ $class != all ]] && filter=(-class "$class")
failed=0
for ((run = 1; run <= runs; run++)); do
    start=$(date +%s.%N)
    log="$out/run-$run.log"
    (cd "$bin" && exec dotnet CowEngine.Tests.dll "${filter[@]}" -noColor) >"$log" 2>&1 </dev/null
    rc=$?
    seconds=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    if ((rc == 0)); then
        echo "run $run: passed in $seconds s"
        [[ -n ${KEEP_LOGS:-} ]] || rm -f "$log"
    else
        failed=$((failed + 1))
        summary=$(grep -m1 -E 'Fatal error|\[FAIL\]|Catastrophic' "$log" || echo "exit code $rc")
        echo "run $run: FAILED (exit code $rc) in $seconds s: $summary (output: $log)"
    fi
done
echo "$runs runs, $failed failed"
((failed == 0))
