#!/usr/bin/env bash
# Build a wheelhouse: every wheel the appliance's venv needs, for one CPU architecture, so that
# the Pi installs with `pip install --no-index` and needs no access to PyPI.
#
#   deploy/build-wheelhouse.sh APP_WHEEL OUT_DIR [ARCH]
#
# APP_WHEEL  the app wheel (python3 -m pip wheel --no-deps -w dist .)
# OUT_DIR    folder to fill (created; existing wheels are kept, so it can be refreshed)
# ARCH       aarch64 (Raspberry Pi OS 64-bit, the default) or x86_64 (CI's Debian chroot)
#
# Targets CPython 3.11 on glibc (Raspberry Pi OS / Debian bookworm). Not downloaded on purpose:
# systemd-python (from apt: python3-systemd) and picamera2 (python3-picamera2); lgpio is added
# explicitly because plain Debian has no python3-lgpio package.
# The constraints match leaf_appliance_pip_constraints in roles/leaf_appliance/defaults/main.yml.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    sed -n '2,15p' "$0" >&2
    exit 2
fi
app_wheel=$1
out_dir=$2
arch=${3:-aarch64}
case "$arch" in
    aarch64 | x86_64) ;;
    *) echo "ARCH must be aarch64 or x86_64, not '$arch'" >&2; exit 2 ;;
esac
if [[ ! -f "$app_wheel" ]]; then
    echo "App wheel '$app_wheel' not found: build it with 'python3 -m pip wheel --no-deps -w dist .'" >&2
    exit 2
fi

constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
printf '%s\n' 'numpy<2' >"$constraints"

mkdir -p "$out_dir"
# Bookworm has glibc 2.36: accept every manylinux wheel up to that.
platforms=()
for minor in 36 35 34 33 32 31 30 29 28 27 26 25 24 23 22 21 20 19 18 17; do
    platforms+=(--platform "manylinux_2_${minor}_${arch}")
done
python3 -m pip download \
    --only-binary=:all: \
    --implementation cp --python-version 3.11 \
    "${platforms[@]}" --platform "manylinux2014_${arch}" \
    --constraint "$constraints" \
    --dest "$out_dir" \
    "$app_wheel" lgpio
cp -f "$app_wheel" "$out_dir/"
echo "Wheelhouse for $arch in $out_dir: $(find "$out_dir" -name '*.whl' | wc -l) wheels"
