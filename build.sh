#!/usr/bin/env bash
# CowEngine build driver.
#
#   ./build.sh [build]        build native/libcowengine.so and the solution (Release)
#   ./build.sh test [args]    build, then the checks (C and C# layout, the native unit tests, their
#                             ASan/UBSan build, 10 s of the stress run on that build with each
#                             mechanism) and the .NET tests, once with each write-protection
#                             mechanism the kernel offers (TRX in artifacts/test-results/)
#   ./build.sh check          the checks alone (no .NET tests)
#   ./build.sh run [args]     build, then run the demo with args
#   ./build.sh bench          build, run every benchmark scenario (CowEngine vs fork) with mprotect
#                             write protection, then scenarios 2, 3, 3b, 5 and 8 again with userfaultfd
#                             if the kernel offers it (results in BenchmarkDotNet.Artifacts/userfaultfd;
#                             ~20 min in all), then regenerate docs/benchmarks.md's tables and chart
#                             (bench/report.py)
#   ./build.sh bench --quick  build, then a smoke run of the same (smallest sizes, one iteration;
#                             under 3 minutes) and of report.py; results in BenchmarkDotNet.Artifacts/quick,
#                             its report in BenchmarkDotNet.Artifacts/quick/benchmarks.md
#   ./build.sh bench [--quick] ARGS  build, then run the benchmarks BenchmarkDotNet's ARGS select
#                             (e.g. --filter '*Rollback*', or --scenarios 2,3b for whole scenarios),
#                             docs untouched; COWENGINE_WRITE_PROTECTION=userfaultfd before it runs
#                             them with userfaultfd, results in BenchmarkDotNet.Artifacts/[quick/]userfaultfd
#   ./build.sh pack           build, then pack the NuGet package into artifacts/packages/
#   ./build.sh stress [--minutes N] [--seed S] [--threads N] [--inject-rate N]  build, then the stress run
#                             (1 min default; --inject-rate: N of every million system calls fail; docs/reliability.md),
#                             then the long form of the files-that-tear tests (tests/scripts/torn-files.sh, 7-12 min)
#   ./build.sh clean          remove all build output
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

export DOTNET_NOLOGO=1
export DOTNET_CLI_TELEMETRY_OPTOUT=1
# Leave no MSBuild worker nodes running after the build.
export MSBUILDDISABLENODEREUSE=1

SOLUTION=CowEngine.sln
CONFIG=Release
RESULTS_DIR="$PWD/artifacts/test-results"

usage() {
    # The comment block at the top of this file.
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

ensure_prereqs() {
    local missing=()
    command -v cc >/dev/null 2>&1 || missing+=(cc)
    command -v make >/dev/null 2>&1 || missing+=(make)
    if ((${#missing[@]})); then
        if [[ $(id -u) -eq 0 ]]; then
            echo "build.sh: ${missing[*]} not found; installing build-essential" >&2
            apt-get update
            DEBIAN_FRONTEND=noninteractive apt-get install -y build-essential
        else
            echo "build.sh: error: ${missing[*]} not found. Install a C toolchain, e.g." >&2
            echo "  sudo apt-get install -y build-essential" >&2
            exit 1
        fi
    fi
    if ! command -v clang-format >/dev/null 2>&1 && ! command -v clang-format-14 >/dev/null 2>&1; then
        if [[ $(id -u) -eq 0 ]]; then
            echo "build.sh: clang-format not found; installing it" >&2
            apt-get update
            DEBIAN_FRONTEND=noninteractive apt-get install -y clang-format
        else
            echo "build.sh: warning: clang-format not found (sudo apt-get install -y clang-format): the C layout is not checked" >&2
        fi
    fi
    if ! command -v dotnet >/dev/null 2>&1; then
        echo "build.sh: error: dotnet not found. Install the .NET 10 SDK." >&2
        exit 1
    fi
}

build() {
    ensure_prereqs
    make -C native
    dotnet build "$SOLUTION" -c "$CONFIG"
}

# The checks that are not .NET tests: each one that fails is named, and all of them run.
run_checks() {
    local failed=()
    make -C native check || failed+=("native unit tests (make -C native check)")
    make -C native sanitize || failed+=("native unit tests under ASan/UBSan (make -C native sanitize)")
    tests/scripts/sanitized-stress.sh --seconds 10 ||
        failed+=("the stress run on the ASan/UBSan shim (tests/scripts/sanitized-stress.sh)")
    if command -v clang-format >/dev/null 2>&1 || command -v clang-format-14 >/dev/null 2>&1; then
        make -C native format-check || failed+=("C layout (make -C native format-check; make -C native format fixes it)")
    fi
    dotnet format "$SOLUTION" --verify-no-changes --no-restore ||
        failed+=("C# layout (dotnet format --verify-no-changes; dotnet format CowEngine.sln fixes it)")
    if ((${#failed[@]})); then
        printf 'build.sh: check failed: %s\n' "${failed[@]}" >&2
        return 1
    fi
    echo "build.sh: every check passed"
}

# The .NET tests, once per write-protection mechanism (docs/design.md): mprotect, the default, and
# userfaultfd where this kernel offers it. Each run writes its own TRX file.
run_dotnet_tests() {
    local mechanism=$1
    shift
    COWENGINE_WRITE_PROTECTION=$mechanism dotnet test "$SOLUTION" -c "$CONFIG" --no-build \
        --results-directory "$RESULTS_DIR" \
        --logger "trx;LogFileName=tests-$mechanism.trx" \
        --logger "console;verbosity=normal" \
        "$@"
}

run_tests() {
    rm -rf "$RESULTS_DIR"   # no stale results if the build fails
    build
    local rc=0
    run_checks || rc=1
    echo "build.sh: .NET tests with mprotect write protection"
    run_dotnet_tests mprotect "$@" || rc=$?
    if native/build/test_native --has-userfaultfd; then
        echo "build.sh: .NET tests with userfaultfd write protection"
        run_dotnet_tests userfaultfd "$@" || rc=$?
    else
        echo "build.sh: the .NET tests run with mprotect only (see the line above)"
    fi
    return "$rc"
}

run_benchmarks() {
    build
    local rc=0
    # The scenarios the userfaultfd leg of a suite run measures again (issue 12; docs/benchmarks.md).
    local userfaultfd_scenarios=2,3,3b,5,8
    local bench=(dotnet run --project bench/CowEngine.Benchmarks -c "$CONFIG" --no-build --)
    if (($# == 0)) || [[ $# -eq 1 && $1 == --quick ]]; then
        # A suite run, full or quick: every scenario with mprotect, the default (whatever the
        # caller's environment says), then issue 12's scenarios with userfaultfd where the kernel
        # offers it (results in a folder of their own; report.py says "not run" for them otherwise).
        COWENGINE_WRITE_PROTECTION=mprotect "${bench[@]}" "$@" || rc=$?
        # The native test program answers whether the kernel offers it (and says why not); `build`
        # makes only the library, so make the program too (its path as the Makefile spells it).
        if make -C native "$(pwd -P)/native/build/test_native" >/dev/null && native/build/test_native --has-userfaultfd; then
            echo "build.sh: scenarios $userfaultfd_scenarios again with userfaultfd write protection"
            COWENGINE_WRITE_PROTECTION=userfaultfd "${bench[@]}" "$@" --scenarios "$userfaultfd_scenarios" || rc=$?
        else
            echo "build.sh: no userfaultfd leg (see the line above): the benchmarks ran with mprotect only"
        fi
    else
        # Chosen benchmarks: the caller's COWENGINE_WRITE_PROTECTION, if any, chooses the mechanism
        # (and the results folder).
        "${bench[@]}" "$@" || rc=$?
    fi
    local python=/usr/bin/python3
    [[ -x $python ]] || python=python3
    if (($# == 0)); then
        # A full run: turn the CSVs it just wrote into the docs' tables and chart, even if a
        # scenario failed (its rows then say so). Debian's python3 has Debian's matplotlib.
        bench/ensure-plot-tools.sh || echo "build.sh: no matplotlib: tables only, the chart is not redrawn" >&2
        "$python" bench/report.py || rc=$?
    elif [[ $# -eq 1 && $1 == --quick ]]; then
        # A quick run: the report of its numbers beside them, as a smoke check of report.py; the docs stay as they are.
        "$python" bench/report.py --results BenchmarkDotNet.Artifacts/quick/results \
            --doc BenchmarkDotNet.Artifacts/quick/benchmarks.md \
            --chart BenchmarkDotNet.Artifacts/quick/benchmarks-chart.png || rc=$?
    fi
    return "$rc"
}

clean() {
    make -C native clean
    rm -rf artifacts BenchmarkDotNet.Artifacts \
        src/*/bin src/*/obj tests/*/bin tests/*/obj bench/*/bin bench/*/obj
}

cmd="${1:-build}"
(($#)) && shift

case "$cmd" in
    build) build ;;
    test)  run_tests "$@" ;;
    check) build; run_checks ;;
    run)   build; dotnet run --project src/CowEngine.Demo -c "$CONFIG" --no-build -- "$@" ;;
    pack)  build; dotnet pack src/CowEngine/CowEngine.csproj -c "$CONFIG" --no-build -o artifacts/packages ;;
    bench) run_benchmarks "$@" ;;
    stress)
        build
        rc=0
        dotnet tests/CowEngine.Stress/bin/"$CONFIG"/net10.0/CowEngine.Stress.dll "$@" || rc=$?
        tests/scripts/torn-files.sh || rc=1
        exit "$rc"
        ;;
    clean) clean ;;
    -h|--help|help) usage ;;
    *)
        echo "build.sh: unknown command '$cmd'" >&2
        usage >&2
        exit 2
        ;;
esac
