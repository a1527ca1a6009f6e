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
#   wheel-bullseye-cp311, wheel-bullseye-cp313
#                    the same for Python 3.11 / 3.13, built in the chroot (once, into /opt) from
#                    the source packages of bookworm / trixie: the Pythons those systems run
#   wheel-bookworm   bookworm (Debian 12, no compiler installed): the cp311 wheel installed from
#                    $ELMAN_MATRIX_OUT/wheels in a fresh venv, the suite from a copy of tests/
#   wheel-trixie     trixie: the same with the cp313 wheel
#
# Each environment is a debootstrap chroot (made on first use, then reused), entered in a mount
# namespace of its own (unshare), so that its /proc and /dev mounts vanish with it. The source is
# the working tree's files (tracked and untracked, not ignored), copied in afresh for every run;
# the build and the venv are made afresh too, so nothing of an earlier run is tested. pip reaches
# the same package index as the host (its pip configuration and CA bundle are copied in).
#
# Usage: sudo tools/matrix.sh [CONFIG ...]      (default: all, in the order above; root for chroot)
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
[ ${#configs[@]} -eq 0 ] && configs=(bullseye-amd64 trixie-amd64 bookworm-arm64 wheel-bullseye
  wheel-bullseye-cp311 wheel-bullseye-cp313 wheel-bookworm wheel-trixie)
reduced="tests/test_parity.py tests/test_contract.py tests/test_determinism.py tests/test_model.py"
packages=python3,python3-venv,python3-dev,g++,make,cmake,ca-certificates
runtime_packages=python3,python3-venv,ca-certificates  # where only a wheel is installed

[ "$(id -u)" -eq 0 ] || { echo "matrix: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
mkdir -p "$chroots" "$out"
source_rev=$(git describe --always --dirty 2>/dev/null || echo unknown)

# The chroot of a suite and architecture, made on first use.
# With $3 = runtime: no compiler, for installing a wheel.
make_chroot() {
  local suite=$1 arch=$2 root="$chroots/$1-$2" include=$packages
  [ "${3:-}" = runtime ] && include=$runtime_packages
  if [ ! -x "$root/usr/bin/python3" ] || { [ "$include" = "$packages" ] && [ ! -x "$root/usr/bin/g++" ]; }; then
    echo "matrix: debootstrap $suite ($arch) into $root" >&2
    debootstrap --variant=minbase --arch="$arch" --include="$include" "$suite" "$root" "$mirror" >&2
  fi
  echo "$root"
}

# CPython's source as Debian's suite $1 ships it (package $2, e.g. python3.11), unpacked into the
# chroot $3 at /root/src/$2 unless there already: the orig tarball named by the suite's Sources.
fetch_cpython_source() {
  local suite=$1 package=$2 root=$3 index dir file
  [ -f "$root/root/src/$package/configure" ] && return 0
  index=$(curl -fsSL "$mirror/dists/$suite/main/source/Sources.xz" | xz -dc)
  dir=$(awk -v p="$package" '$1 == "Package:" { on = ($2 == p) } on && $1 == "Directory:" { print $2; exit }' <<< "$index")
  file=$(awk -v p="$package" '$1 == "Package:" { on = ($2 == p) } on && $3 ~ /orig[.]tar[.](gz|xz)$/ { print $3; exit }' <<< "$index")
  [ -n "$dir" ] && [ -n "$file" ] || { echo "matrix: no $package source in $suite" >&2; return 1; }
  mkdir -p "$root/root/src/$package"
  curl -fsSL "$mirror/$dir/$file" -o "$root/root/src/$file"
  tar -xaf "$root/root/src/$file" --strip-components=1 -C "$root/root/src/$package"
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
    exec chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 \
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

# The portable wheel for Python $1: 3.9 is bullseye's own python3; another version is built from
# the source fetch_cpython_source unpacked, once, into /opt/python$1 (with the libraries that pip
# and the suite need: ssl, zlib, ctypes, bz2, lzma, sqlite3).
wheel_script() {
  local version=$1 python=python3
  [ "$version" != 3.9 ] && python=/opt/python$version/bin/python$version
  cat <<EOF
cd /root/elman
if [ ! -x $python ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q libssl-dev zlib1g-dev libffi-dev libbz2-dev \
    liblzma-dev libsqlite3-dev uuid-dev > /dev/null
  (cd /root/src/python$version && ./configure -q --prefix=/opt/python$version && make -s -j\$(nproc) \
     && make -s altinstall) > /root/python$version-build.log 2>&1 || { tail -30 /root/python$version-build.log; exit 1; }
fi
$python --version; g++ --version | sed -n 1p; ldd --version | sed -n 1p
rm -rf /root/wheel-venv /root/wheelhouse && $python -m venv /root/wheel-venv  # Debian's python3 has no pip
/root/wheel-venv/bin/pip install -q --upgrade pip
PYTHON=/root/wheel-venv/bin/python ELMAN_WHEEL_EXTRAS=test tools/build_wheel.sh /root/wheelhouse
EOF
}

# The wheel for this chroot's python3 (tag $1, e.g. cp311) from $out/wheels, installed in a fresh
# venv; the suite runs from a copy of the tests, so `import elman` can only find the wheel.
install_script() {
  cat <<EOF
python3 --version; ldd --version | sed -n 1p; command -v g++ cc || echo "no C/C++ compiler installed"
rm -rf /root/venv /root/suite && python3 -m venv /root/venv
/root/venv/bin/pip install -q --upgrade pip
wheel=\$(ls /root/wheels/elman-*-$1-$1-manylinux_*.whl)
echo "wheel: \$wheel"
/root/venv/bin/pip install -q "\$wheel[test]"
mkdir /root/suite && cd /root/elman && cp -r tests examples bench pyproject.toml README.md /root/suite/
cd /root/suite
/root/venv/bin/python -c "import elman; assert 'site-packages' in elman.__file__, elman.__file__; elman.show_config()"
/root/venv/bin/python -m pytest -q -p no:cacheprovider
EOF
}

# Copies the wheels of $out/wheels into the chroot $1, for install_script.
put_wheels() {
  rm -rf "$1/root/wheels" && mkdir -p "$1/root/wheels"
  cp "$out"/wheels/*.whl "$1/root/wheels/" 2>/dev/null ||
    { echo "matrix: no wheels in $out/wheels: run the wheel-bullseye configurations first" >&2; return 1; }
}

results="$out/results.md"
printf '| configuration | Python | compiler | suite | result | time | date |\n|---|---|---|---|---|---|---|\n' > "$results.new"
status=0
for config in "${configs[@]}"; do
  case $config in
    bullseye-amd64) root=$(make_chroot bullseye amd64); script=$(source_script tests); suite=full ;;
    trixie-amd64) root=$(make_chroot trixie amd64); script=$(source_script tests); suite=full ;;
    bookworm-arm64) root=$(make_chroot bookworm arm64); script=$(source_script "$reduced"); suite="reduced (parity, contract, determinism, model)" ;;
    wheel-bullseye) root=$(make_chroot bullseye amd64); script=$(wheel_script 3.9); suite="full, on the repaired wheel" ;;
    wheel-bullseye-cp311) root=$(make_chroot bullseye amd64); fetch_cpython_source bookworm python3.11 "$root"
                          script=$(wheel_script 3.11); suite="full, on the repaired wheel" ;;
    wheel-bullseye-cp313) root=$(make_chroot bullseye amd64); fetch_cpython_source trixie python3.13 "$root"
                          script=$(wheel_script 3.13); suite="full, on the repaired wheel" ;;
    wheel-bookworm) root=$(make_chroot bookworm amd64 runtime); put_wheels "$root"; script=$(install_script cp311); suite="full, on the cp311 wheel" ;;
    wheel-trixie) root=$(make_chroot trixie amd64); put_wheels "$root"; script=$(install_script cp313); suite="full, on the cp313 wheel" ;;
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
  [ -n "$tag" ] && mkdir -p "$out/wheels" && cp "$root"/root/wheelhouse/*.whl "$out/wheels/" && compiler="${compiler:-g++} → $tag"
  installed=$(grep -m1 "^wheel: " "$log" | sed 's#.*/##' || true)
  [ -n "$installed" ] && compiler="none: $installed"
  printf '| %s | %s | %s | %s | %s: %s | %d s | %s |\n' "$config" "${python#Python }" "${compiler:-?}" \
    "$suite" "$verdict" "${counts:-no test summary}" "$seconds" "$(date -u +%Y-%m-%d)" | tee -a "$results.new" >&2
done
echo "source: $source_rev, host: $(uname -m), $(lscpu | sed -n 's/^Model name: *//p' | head -1)" >> "$results.new"
mv "$results.new" "$results"
cat "$results"
exit $status
