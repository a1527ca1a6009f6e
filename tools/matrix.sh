#!/usr/bin/env bash
# Builds elman and runs its test suite in clean Debian environments, one per configuration, and
# prints a table of the results (the table in docs/install.md comes from this script):
#
#   bullseye-amd64   Debian 11: Python 3.9, glibc 2.31, g++ 10, CMake 3.18: the oldest we claim
#   trixie-amd64     Debian 13: Python 3.13, g++ 14
#   bookworm-arm64   Debian 12 on aarch64 (NEON as the baseline ISA), run under qemu-user-static;
#                    emulation is slow, so it runs a reduced suite: parity, contract, determinism,
#                    model
#   wheel-bullseye   tools/build_wheel.sh inside bullseye: the portable wheel, repaired by
#                    auditwheel (manylinux_2_31), installed in a fresh venv and tested there
#
# Each environment is a debootstrap chroot (made on first use, then reused), entered in a mount
# namespace of its own (unshare), so that its /proc and /dev mounts vanish with it. The source is
# the working tree's files (tracked and untracked, not ignored), copied in afresh for every run;
# the build and the venv are made afresh too, so nothing of an earlier run is tested. pip reaches
# the same package index as the host (its pip configuration and CA bundle are copied in).
#
# Usage: sudo tools/matrix.sh [CONFIG ...]      (default: all four; needs root for chroot)
# Environment: ELMAN_CHROOTS (default /var/tmp/elman-chroots) holds the chroots;
# ELMAN_DEBIAN_MIRROR (default http://deb.debian.org/debian); ELMAN_MATRIX_OUT (default
# build/matrix) gets each run's log and results.md.
# Needs: debootstrap; for arm64 also qemu-user-static with binfmt_misc (Debian's binfmt-support
# registers it with the F flag, so the emulator works inside the chroot).
set -euo pipefail
cd "$(dirname "$0")/.."

chroots=${ELMAN_CHROOTS:-/var/tmp/elman-chroots}
mirror=${ELMAN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
out=$(realpath -m "${ELMAN_MATRIX_OUT:-build/matrix}")
configs=("$@")
[ ${#configs[@]} -eq 0 ] && configs=(bullseye-amd64 trixie-amd64 bookworm-arm64 wheel-bullseye)
reduced="tests/test_parity.py tests/test_contract.py tests/test_determinism.py tests/test_model.py"
packages=python3,python3-venv,python3-dev,g++,make,cmake,ca-certificates

[ "$(id -u)" -eq 0 ] || { echo "matrix: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
mkdir -p "$chroots" "$out"
source_rev=$(git describe --always --dirty 2>/dev/null || echo unknown)

# The chroot of a suite and architecture, made on first use.
make_chroot() {
  local suite=$1 arch=$2 root="$chroots/$1-$2"
  if [ ! -x "$root/usr/bin/python3" ] || [ ! -x "$root/usr/bin/g++" ]; then
    echo "matrix: debootstrap $suite ($arch) into $root" >&2
    debootstrap --variant=minbase --arch="$arch" --include="$packages" "$suite" "$root" "$mirror" >&2
  fi
  echo "$root"
}

# Runs a bash script inside the chroot root, with /proc, /dev, the host's DNS, pip configuration
# and CA bundle, and a fresh copy of the source in /root/elman.
in_chroot() {
  local root=$1 script=$2
  rm -rf "$root/root/elman"
  mkdir -p "$root/root/elman"
  git ls-files -z --cached --others --exclude-standard | tar -c --null -T - | tar -x -C "$root/root/elman"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$root/etc/host-ca.crt"
  # pip's settings of this machine (an index or mirror), without paths that exist only here.
  python3 -m pip config list 2>/dev/null | grep -v -E "cert|find-links|constraint|extra-index-url='file:" \
    | sed -E "s/^[a-z:.]+\.([a-z-]+)='(.*)'$/\1 = \2/" | { echo "[global]"; grep " = " || true; } > "$root/etc/pip.conf"
  unshare --mount --propagation private bash -euo pipefail -c '
    root=$1; script=$2
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    exec chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
      PIP_CERT=/etc/host-ca.crt SSL_CERT_FILE=/etc/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
      CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" bash -euo pipefail -c "$script"
  ' in_chroot "$root" "$script"
}

# The suite installed from source in a fresh venv, then pytest on `tests` (a list of paths).
source_script() {
  cat <<EOF
cd /root/elman
python3 --version; g++ --version | sed -n 1p; cmake --version | sed -n 1p; ldd --version | sed -n 1p; uname -m
rm -rf /root/venv && python3 -m venv /root/venv
/root/venv/bin/pip install -q --upgrade pip
/root/venv/bin/pip install -q ".[test]"
/root/venv/bin/python -c "import elman; elman.show_config()"
/root/venv/bin/python -m pytest -q -p no:cacheprovider $1
EOF
}

wheel_script() {
  cat <<'EOF'
cd /root/elman
python3 --version; g++ --version | sed -n 1p; ldd --version | sed -n 1p
rm -rf /root/wheel-venv /root/wheelhouse && python3 -m venv /root/wheel-venv  # Debian's python3 has no pip
/root/wheel-venv/bin/pip install -q --upgrade pip
PYTHON=/root/wheel-venv/bin/python ELMAN_WHEEL_EXTRAS=test tools/build_wheel.sh /root/wheelhouse
EOF
}

results="$out/results.md"
printf '| configuration | Python | compiler | suite | result | time | date |\n|---|---|---|---|---|---|---|\n' > "$results.new"
status=0
for config in "${configs[@]}"; do
  case $config in
    bullseye-amd64) root=$(make_chroot bullseye amd64); script=$(source_script tests); suite=full ;;
    trixie-amd64) root=$(make_chroot trixie amd64); script=$(source_script tests); suite=full ;;
    bookworm-arm64) root=$(make_chroot bookworm arm64); script=$(source_script "$reduced"); suite="reduced (parity, contract, determinism, model)" ;;
    wheel-bullseye) root=$(make_chroot bullseye amd64); script=$(wheel_script); suite="full, on the repaired wheel" ;;
    *) echo "matrix: unknown configuration $config" >&2; exit 2 ;;
  esac
  log="$out/$config.log"
  echo "== $config (log: $log)" >&2
  start=$(date +%s)
  if in_chroot "$root" "$script" > "$log" 2>&1; then verdict=pass; else verdict=FAIL; status=1; fi
  seconds=$(( $(date +%s) - start ))
  python=$(grep -m1 -o "^Python [0-9.]*" "$log" || echo "?")
  compiler=$(grep -m1 -E "^g\+\+ " "$log" | sed -E 's/^g\+\+ \(Debian ([0-9.]+)[^)]*\).*/g++ \1/' || true)
  counts=$(grep -E "^=*.*[0-9]+ (passed|failed|error)" "$log" | tail -1 | sed -E 's/=+//g; s/^ +| +$//g' || true)
  tag=$(grep -m1 "^tag:" "$log" | cut -d' ' -f2- || true)
  [ -n "$tag" ] && mkdir -p dist && cp "$root"/root/wheelhouse/*.whl dist/ && compiler="${compiler:-g++} → $tag"
  printf '| %s | %s | %s | %s | %s: %s | %d s | %s |\n' "$config" "${python#Python }" "${compiler:-?}" \
    "$suite" "$verdict" "${counts:-no test summary}" "$seconds" "$(date -u +%Y-%m-%d)" | tee -a "$results.new" >&2
done
echo "source: $source_rev, host: $(uname -m), $(lscpu | sed -n 's/^Model name: *//p' | head -1)" >> "$results.new"
mv "$results.new" "$results"
cat "$results"
exit $status
