#!/usr/bin/env bash
# The stress run (docs/reliability.md) on the shim built with AddressSanitizer and
# UndefinedBehaviorSanitizer (make -C native sanitize): the real workload - .NET, its GC, its own
# signal handlers - with every access of the shim checked, once per write-protection mechanism.
#
#   tests/scripts/sanitized-stress.sh [--seconds N] [--mechanisms "mprotect userfaultfd"]
#
# .NET and the sanitizer runtime run together: the runtime is preloaded (it must come first), and
# its options leave SIGSEGV and SIGBUS to the engine and the .NET runtime (handle_segv=0,
# handle_sigbus=0, allow_user_segv_handler=1) and keep the alternate signal stacks the runtime sets
# up (use_sigaltstack=0). Leak checking is off: the runtime keeps memory to the end by design.
# A sanitizer report ends the run with a non-zero exit code (halt_on_error, and -fno-sanitize-recover
# in the build); the stress run's own RESULT line must say PASS. Needs the Release build of
# tests/CowEngine.Stress (./build.sh build).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

seconds=30
mechanisms="mprotect userfaultfd"
while (($#)); do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --mechanisms) mechanisms=$2; shift 2 ;;
        *) echo "sanitized-stress.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done

asan=$(cc -print-file-name=libasan.so)
ubsan=$(cc -print-file-name=libubsan.so)
if [[ ! -e $asan || ! -e $ubsan ]]; then
    echo "sanitized-stress.sh: no sanitizer runtime for cc (libasan.so, libubsan.so): not run" >&2
    exit 1
fi
make -C native sanitize >/dev/null || exit 1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r tests/CowEngine.Stress/bin/Release/net10.0/. "$work/"
cp native/build/sanitize/libcowengine.so "$work/libcowengine.so" # the sanitized shim replaces the plain one

rc=0
for mechanism in $mechanisms; do
    if [[ $mechanism == userfaultfd ]] && ! native/build/test_native --has-userfaultfd >/dev/null 2>&1; then
        echo "sanitized-stress.sh: userfaultfd not offered by this kernel: $mechanism skipped"
        continue
    fi
    log="$work/stress-$mechanism.log"
    LD_PRELOAD="$(realpath "$asan"):$(realpath "$ubsan")" \
        ASAN_OPTIONS=handle_segv=0:handle_sigbus=0:allow_user_segv_handler=1:use_sigaltstack=0:detect_leaks=0:halt_on_error=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        COWENGINE_WRITE_PROTECTION=$mechanism \
        dotnet "$work/CowEngine.Stress.dll" --seconds "$seconds" >"$log" 2>&1
    status=$?
    result=$(grep -m1 '^\[.*RESULT ' "$log" | sed 's/^\[[^]]*\] //')
    if ((status != 0)) || ! grep -q 'RESULT status=PASS' "$log" || grep -q -E 'AddressSanitizer|runtime error:' "$log"; then
        echo "sanitized-stress.sh: $mechanism FAILED (exit code $status); the end of its output:"
        tail -40 "$log"
        rc=1
    else
        echo "sanitized-stress.sh: $mechanism, ASan+UBSan shim, ${seconds} s: $result"
    fi
done
exit "$rc"
