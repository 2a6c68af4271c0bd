#!/usr/bin/env bash
# tzip's C library (tzip/native/*.c) under AddressSanitizer and UndefinedBehaviorSanitizer: build it
# with the sanitizers, load that build into the dev venv's Python (TZIP_NATIVE_LIB, libasan preloaded)
# and run the tests that drive the C code hardest: exactness against the PyTorch engine, round trips,
# corrupt and truncated streams. Fails on any failed test and on any sanitizer report.
#
# The C code has two paths for the network's arithmetic: AVX-512 VNNI intrinsics (engine.c, in the
# avx512 build) and plain C (every other build). By default:
#   CPU with AVX-512 VNNI: every selected test on the avx512 build, then the engine's tests
#                          (test_native, test_default_model) on the portable build;
#   any other CPU:         every selected test on the portable build.
# A sanitized portable build computes the network about 20x slower than the package's (UBSan's
# overflow checks keep it from vectorising), so portable runs leave out SLOW_UNDER_SANITIZERS below
# (the same C functions as other tests, on 80 000-byte inputs). SANITIZE_RUNS overrides the plan: a list
# of LEVEL:TESTS:DEPTH, LEVEL portable|avx2|avx512, TESTS all|engine, DEPTH quick|thorough (thorough
# keeps those tests); e.g. SANITIZE_RUNS="portable:all:thorough avx512:all:thorough" runs everything.
# Needs the dev venv (.venv, with torch) and gcc with libasan/libubsan (gcc's own runtime packages).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
CC=${CC:-gcc}
SAN_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1 -g"
ALL_TESTS=(tests/test_native.py tests/test_match.py tests/test_bits.py tests/test_pixels.py tests/test_samples.py
           tests/test_chain.py tests/test_classical_method.py tests/test_api.py tests/test_default_model.py)
ENGINE_TESTS=(tests/test_native.py tests/test_default_model.py)
# These run a subprocess that must pick its own build (TZIP_CPU_LEVEL; TZIP_NATIVE_BUILD with no
# compiler): the TZIP_NATIVE_LIB this run sets, which the subprocess inherits, takes precedence, so
# they would fail for that reason alone. The main test suite runs them.
ENV_CONFLICTS=(tests/test_native.py::test_every_build_gives_the_same_frequencies
               tests/test_native.py::test_a_level_the_cpu_cannot_run_is_refused
               tests/test_native.py::test_without_the_c_library_the_pytorch_step_takes_over)
SLOW_UNDER_SANITIZERS=(tests/test_native.py::test_the_pass_split_across_two_threads_is_the_same)
unset PYTHONPATH TZIP_NATIVE TZIP_NATIVE_LIB TZIP_NATIVE_BUILD TZIP_CPU_LEVEL TZIP_MODEL LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS

work=$(mktemp -d "${TMPDIR:-/tmp}/tzip-sanitize.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "sanitize: FAIL: $*" >&2; exit 1; }
step() { echo "-- sanitize: $*"; }
started=$SECONDS

# The ASan runtime must come first in the process's initial library list: preload it (Python itself
# is not instrumented). libubsan needs no preload: the sanitized library pulls it in (DT_NEEDED).
asan_rt=$("$CC" -print-file-name=libasan.so)
[ -f "$asan_rt" ] || fail "$CC has no libasan.so (install gcc's libasan, e.g. Debian libasan8)"
logs=$work/logs
mkdir -p "$logs"
# ASan writes its reports to $logs/asan.PID (any process, subprocesses too). UBSan (a runtime loaded
# with the library) ignores log_path and prints to stderr, and with -fno-sanitize-recover stops the
# process; the output (passing tests' captured output included: -rP) is searched for its reports.
san() {
    LD_PRELOAD="$asan_rt" ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$logs/asan" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1" PYTHONPATH="$work" "$@"
}
REPORT='AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|runtime error:'
reports() {  # reports LOG WHAT: fail, showing them, if ASan left reports or LOG holds one
    local found=0
    if compgen -G "$logs/asan.*" >/dev/null; then cat "$logs"/asan.* >&2; found=1; fi
    if grep -Eq "$REPORT" "$1"; then grep -E -A30 "$REPORT" "$1" | head -200 >&2; found=1; fi
    [ "$found" = 0 ] || fail "sanitizer report(s) above ($2)"
}
build() {  # build LEVEL OUT: the sanitized library for a CPU level (setup.py's -march for it)
    local march
    case "$1" in
        portable) march="-march=x86-64 -mtune=generic" ;;
        avx2) march="-march=x86-64-v3" ;;
        avx512) march="-march=x86-64-v4 -mavx512vnni" ;;
        *) fail "unknown level $1 (portable, avx2, avx512)" ;;
    esac
    # shellcheck disable=SC2086
    "$CC" $SAN_CFLAGS $march -std=c99 -shared -fPIC -pthread -o "$2" tzip/native/*.c -lm
    # The symbol table is read whole first: `nm | grep -q` under pipefail fails whenever grep exits at
    # its first match before nm has written everything (nm then dies of SIGPIPE).
    local symbols
    symbols=$(nm -D "$2")
    grep -q "__asan_report_load" <<<"$symbols" || fail "$2 has no ASan instrumentation"
    grep -q "__ubsan_handle_" <<<"$symbols" || fail "$2 has no UBSan instrumentation"
}
rank() { case "$1" in portable) echo 0 ;; avx2) echo 1 ;; avx512) echo 2 ;; *) fail "unknown level $1" ;; esac; }

# 0. The harness catches what it must: a heap overflow (ASan) and a signed overflow (UBSan) in a
#    library built with the same flags, called through ctypes as tzip calls its library.
step "canaries (the harness must catch a planted bug)"
cat > "$work/canary.c" <<'CANARY'
#include <stdlib.h>
int canary_overflow(int x) { return x + 1; }
int canary_heap(int i) { volatile int n = 4; int *p = malloc(n * sizeof(int)); int v = p[i]; free(p); return v; }
CANARY
# shellcheck disable=SC2086
"$CC" $SAN_CFLAGS -shared -fPIC -o "$work/canary.so" "$work/canary.c"
for call in "canary_heap(4)" "canary_overflow(2147483647)"; do
    set +e
    san "$PY" -c "import ctypes; ctypes.CDLL('$work/canary.so').$call" > "$work/canary.log" 2>&1
    rc=$?
    set -e
    case "$call" in
        canary_heap*) compgen -G "$logs/asan.*" >/dev/null && caught=1 || caught=0 ;;
        *) grep -q "runtime error: signed integer overflow" "$work/canary.log" && caught=1 || caught=0 ;;
    esac
    if [ "$rc" = 0 ] || [ "$caught" = 0 ]; then
        cat "$work/canary.log" "$logs"/asan.* >&2 || true
        fail "the planted bug $call went unreported (exit status $rc): the sanitizer harness does not work"
    fi
    echo "   $call: caught (exit status $rc)"
    rm -f "$logs"/asan.*
done

# What this CPU runs, asked of a portable build (any x86-64 CPU runs that), decides the runs.
step "portable: building tzip/native with $SAN_CFLAGS"
build portable "$work/tzip_native_asan_portable.so"
cpu=$(san "$PY" -c "import ctypes
print(('portable', 'avx2', 'avx512')[ctypes.CDLL('$work/tzip_native_asan_portable.so').tzip_cpu_level()])")
if [ -n "${SANITIZE_RUNS:-}" ]; then
    read -r -a runs <<<"$SANITIZE_RUNS"
elif [ "$cpu" = avx512 ]; then
    runs=(avx512:all:thorough portable:engine:quick)
else
    runs=(portable:all:quick)
fi
echo "   this CPU runs the $cpu build at most; runs (level:tests:depth): ${runs[*]}"

for run in "${runs[@]}"; do
    IFS=: read -r level scope depth <<<"$run"
    case "$scope:$depth" in all:quick | all:thorough | engine:quick | engine:thorough) ;;
        *) fail "run $run: expected LEVEL:all|engine:quick|thorough" ;; esac
    lib=$work/tzip_native_asan_$level.so
    if [ "$(rank "$level")" -gt "$(rank "$cpu")" ]; then
        step "$level: skipped: this CPU runs the $cpu build at most"
        continue
    fi
    if [ ! -f "$lib" ]; then
        step "$level: building tzip/native with $SAN_CFLAGS"
        build "$level" "$lib"
    fi
    # 1. The sanitized build is the one tzip loads.
    check=$(TZIP_NATIVE_LIB="$lib" san "$PY" -c "
from tzip.engine import library
lib = library.library()
assert lib is not None, library.unavailable_reason()
print(library.level(), lib._name, library.LEVELS[lib.tzip_build_level()])
maps = open('/proc/self/maps').read()
assert 'libasan' in maps and 'libubsan' in maps, 'sanitizer runtimes not mapped'
")
    read -r how path built <<<"$check"
    { [ "$how" = TZIP_NATIVE_LIB ] && [ "$path" = "$lib" ]; } || fail "tzip loaded $path ($how), not $lib"
    [ "$built" = "$level" ] || fail "the $level build reports level $built"
    echo "   library.level() = $how: $path (built for $built)"

    # 2. The tests, with a plugin that checks in the pytest process itself which library it runs.
    cat > "$work/tzip_sanitize_check.py" <<PLUGIN
import pytest

WANT = "$lib"


def _check():
    from tzip.engine import library

    lib = library.library()
    if library.level() != "TZIP_NATIVE_LIB" or lib is None or lib._name != WANT:
        raise pytest.UsageError(f"sanitize: pytest runs {lib and lib._name} ({library.level()}), not {WANT}")


def pytest_sessionstart(session):
    _check()


def pytest_terminal_summary(terminalreporter):
    _check()
    terminalreporter.write_line(f"sanitize: these tests ran the sanitized library {WANT}")
PLUGIN
    if [ "$scope" = all ]; then tests=("${ALL_TESTS[@]}"); else tests=("${ENGINE_TESTS[@]}"); fi
    deselect=("${ENV_CONFLICTS[@]}")
    [ "$depth" = thorough ] || deselect+=("${SLOW_UNDER_SANITIZERS[@]}")
    step "$level: ${tests[*]} (not slow; deselected: ${deselect[*]##*::})"
    t0=$SECONDS
    set +e
    TZIP_NATIVE_LIB="$lib" san "$PY" -m pytest -q -rfEP --durations=10 -p tzip_sanitize_check "${tests[@]}" \
        "${deselect[@]/#/--deselect=}" 2>&1 | tee "$work/pytest-$level.log"
    rc=${PIPESTATUS[0]}
    set -e
    reports "$work/pytest-$level.log" "$level build"
    [ "$rc" = 0 ] || fail "pytest under the sanitizers failed (exit status $rc, $level build)"
    echo "   $level: no sanitizer reports ($((SECONDS - t0)) s)"
done
echo "sanitize: ok ($((SECONDS - started)) s)"
