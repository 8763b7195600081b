#!/usr/bin/env bash
# The figures of docs/reliability.md §5 (failure injection): with each write-protection mechanism
# the kernel offers, the model tests with injection (ModelBasedTests, RollbackModelTests), a stress
# run with --inject-rate, and the fault-path and set-up scenarios of FaultPathInjectionTests, each
# printing what it injected and what came of it. Needs the Release build (./build.sh build).
#
#   tests/scripts/injection-report.sh [--stress-seconds N] [--rate N] [--mechanisms "mprotect userfaultfd"]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

stress_seconds=60
rate=20000
mechanisms="mprotect userfaultfd"
while (($#)); do
    case "$1" in
        --stress-seconds) stress_seconds=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --mechanisms) mechanisms=$2; shift 2 ;;
        *) echo "injection-report.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done

bin=tests/CowEngine.Tests/bin/Release/net10.0
[[ -f $bin/CowEngine.Tests.dll ]] || { echo "injection-report.sh: build first (./build.sh build)" >&2; exit 1; }
rc=0

model() { # mechanism, class, method
    COWENGINE_WRITE_PROTECTION=$1 COWENGINE_ISOLATED_TEST=$3 dotnet "$bin/CowEngine.Tests.dll" \
        -method "CowEngine.Tests.$2.$3" -noColor -noLogo >"$work/model.log" 2>&1 || { rc=1; echo "FAILED: $2.$3 ($1)"; tail -30 "$work/model.log"; }
    grep '^INJECTED' "$work/model.log" | sort -u
}

child() { # mechanism, scenario: prints the scenario and how it ended
    # In a subshell whose stderr is dropped: the shell's own "Aborted" line for the deliberate crashes.
    (COWENGINE_WRITE_PROTECTION=$1 DOTNET_DbgEnableMiniDump=0 DOTNET_EnableCrashReport=0 \
        timeout 120 dotnet "$bin/CowEngine.TestChild.dll" "$2" >"$work/child.out" 2>"$work/child.err") 2>/dev/null
    local status=$?
    local outcome
    outcome=$(grep -m1 '^CowEngine: fatal' "$work/child.err" || grep -m1 -E 'bytes ok|refused:|unmappings refused' "$work/child.out" || echo "(no outcome line)")
    echo "CHILD $1 | $2 | exit $status | $outcome"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for mechanism in $mechanisms; do
    if [[ $mechanism == userfaultfd ]] && ! native/build/test_native --has-userfaultfd >/dev/null 2>&1; then
        echo "injection-report.sh: userfaultfd not offered by this kernel: skipped"
        continue
    fi
    echo "== $mechanism"
    model "$mechanism" ModelBasedTests RandomOperationsWithSystemCallsFailingMatchTheModel
    model "$mechanism" RollbackModelTests RandomOperations_WithSystemCallsFailing_AgreeWithTheModel

    COWENGINE_WRITE_PROTECTION=$mechanism dotnet "$bin/CowEngine.Stress.dll" --seconds "$stress_seconds" --inject-rate "$rate" >"$work/stress.log" 2>&1 || rc=1
    grep -E 'INJECTION|RESULT|after disposing all' "$work/stress.log" | sed 's/^\[[^]]*\] /STRESS /'

    if [[ $mechanism == userfaultfd ]]; then
        faults="write-forward:MapSlots:ENOMEM write-forward:UffdRegister:ENOMEM write-reverse:UffdWriteprotect:ENOMEM
                write-private:UffdWriteprotect:EAGAIN read:MapSlots:EPERM read:UffdRegister:EPERM read:UffdWriteprotect:ENOMEM
                read:Protect:EAGAIN"
        retried="write-forward:UffdRegister:ENOMEM write-reverse:UffdWriteprotect:EAGAIN read:UffdWriteprotect:ENOMEM"
        cleanups="MapSlots UffdRegister"
    else
        faults="write-forward:MapSlots:ENOMEM write-forward:MapSlots:EAGAIN write-reverse:Protect:ENOMEM write-private:Protect:EPERM
                read:MapSlots:EPERM"
        retried="write-forward:MapSlots:ENOMEM write-reverse:Protect:EINTR read:MapSlots:EAGAIN"
        cleanups="MapSlots"
    fi
    for c in $faults; do child "$mechanism" "inject-fault:$c:every"; done
    for c in $retried; do child "$mechanism" "inject-fault:$c:once"; done
    for c in $cleanups; do child "$mechanism" "inject-cleanup-fails:$c"; done
    child "$mechanism" inject-evict-fails
    COWENGINE_WRITE_PROTECTION=$mechanism dotnet "$bin/CowEngine.TestChild.dll" inject-setup 2>&1 | grep -E '^SETUP|copy-on-write' | cut -c1-200
done
exit "$rc"
