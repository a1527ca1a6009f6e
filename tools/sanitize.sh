#!/usr/bin/env bash
# Builds elman with AddressSanitizer + UndefinedBehaviorSanitizer and runs the whole test suite
# on that build: any out-of-bounds access, use after free or undefined behaviour in the C++ code
# (the kernels under every ISA, the bindings, the dispatch) fails the run, with the report.
#
# Usage: tools/sanitize.sh [PYTEST_ARGS...]      (default: the whole suite, quietly)
#        UBSAN_OPTIONS=halt_on_error=0 tools/sanitize.sh    (go on past UB, list all of it)
#
# The build lives in its own virtual environment and build directory (build/asan/), so the
# development install is untouched. Python itself is not instrumented, so the ASan runtime must
# be loaded before anything else: LD_PRELOAD names g++'s libasan. Leak detection is off because
# CPython and NumPy keep memory alive until exit by design (it would report them, not elman);
# tests/test_memory.py checks elman for growth instead. UBSan halts on the first error, with a
# stack trace. pytest captures only Python's sys.stdout/stderr (--capture=sys), so the
# sanitizers' reports, written to file descriptor 2, reach the terminal and the log
# build/asan/pytest.log; ASan also writes its reports to build/asan/reports/, from every process,
# the tests' subprocesses included. Any report fails the run. ELMAN_ASAN_EXTRAS (default
# "test,torch,onnx") are the extras installed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
extras=${ELMAN_ASAN_EXTRAS:-test,torch,onnx}
root=build/asan
venv=$root/venv
sanitizers="-fsanitize=address,undefined -fno-omit-frame-pointer -g"

step() { printf '\n== %s\n' "$*"; }

step "building elman with ASan + UBSan in $venv"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install -q scikit-build-core pybind11 cmeel-eigen numpy threadpoolctl
# No build isolation: the build reuses the venv's build dependencies, and build-dir keeps the
# object files between runs, so a second run only recompiles what changed.
"$venv/bin/pip" install -q --no-build-isolation ".[$extras]" \
    -C build-dir="$root/build" -C install.strip=false \
    -C cmake.define.CMAKE_CXX_FLAGS="$sanitizers" \
    -C cmake.define.CMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -C cmake.define.CMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"

libasan=$(g++ -print-file-name=libasan.so)
libubsan=$(g++ -print-file-name=libubsan.so)
export LD_PRELOAD="$libasan:$libubsan"
# halt_on_error + abort_on_error: the first finding ends the process with a report, which fails
# the run; detect_odr_violation=0: each ISA's kernel module legitimately defines the same inline
# Eigen functions (they are hidden, but ASan's ODR check looks at globals of every module);
# allocator_may_return_null=1: an allocation too large for memory fails as it does without ASan
# (malloc returns NULL, new throws), so the tests that expect MemoryError see it instead of
# ASan's own abort.
reports=$PWD/$root/reports
rm -rf "$reports" && mkdir -p "$reports"
asan="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_odr_violation=0"
asan="$asan:allocator_may_return_null=1:log_path=$reports/asan"
export ASAN_OPTIONS="$asan:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"

step "checking that the instrumented build is the one imported"
# From a directory without python/elman, so `import elman` can only be the venv's build.
(cd "$root" && venv/bin/python - <<'EOF'
import elman, os, glob
where = os.path.dirname(elman.__file__)
assert "/build/asan/venv/" in where, f"imported elman from {where}, not from the ASan build"
for so in sorted(glob.glob(os.path.join(where, "*.so"))):
    with open(so, "rb") as f:
        assert b"__asan_init" in f.read(), f"{so} is not instrumented with AddressSanitizer"
print(f"elman from {where}: every extension module instrumented")
elman.show_config()
EOF
)

step "running the test suite under the sanitizers"
# The tests are the source tree's; the package they import is the venv's instrumented build.
log=$root/pytest.log
status=0
"$venv/bin/python" -m pytest -q --capture=sys "${@}" 2>&1 | tee "$log" || status=$?

# A report is a finding; ASan's warnings about allocations too large for memory (which the
# MemoryError tests cause on purpose) are not.
pattern="ERROR: AddressSanitizer|runtime error:|SUMMARY: "
findings=$(grep -l -E "$pattern" "$log" "$reports"/* 2>/dev/null || true)
if [ -n "$findings" ]; then
  step "the sanitizers reported, in $findings:"
  # shellcheck disable=SC2086  # one file name per word
  grep -h -E "$pattern" $findings | sort | uniq -c
  echo "sanitize: FAILED, the sanitizers found errors (pytest exit code $status)"
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "sanitize: FAILED, pytest exit code $status (no sanitizer report)"
  exit "$status"
fi
echo "sanitize: the suite ran clean under AddressSanitizer + UndefinedBehaviorSanitizer"
