# Shell helpers every CI gate sources:  source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# (bash, set -euo pipefail in the caller). One copy of each, so the gates cannot drift apart.

ci_started=${ci_started:-$SECONDS}

# A heading with the seconds since the gate started.
section() { printf '\n=== %s (%ds)\n' "$*" $((SECONDS - ci_started)); }

fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

need_root() { [[ $(id -u) -eq 0 ]] || fail "run as root ($*)"; }

# Install the Debian packages in "$@" that are not there yet (apt-get update first, as CI needs).
apt_install() {
    (($#)) || return 0
    echo "apt: installing $*"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" ca-certificates \
        >"${work:-/tmp}/apt.log" 2>&1 || { cat "${work:-/tmp}/apt.log"; fail "apt-get install $* failed"; }
}

# Unmount whatever is mounted below the folder $1, deepest first (before deleting it).
unmount_below() {
    [[ -d "$1" ]] || return 0
    findmnt --list --noheadings --output TARGET | grep -F "$1/" | sort -r | while read -r target; do
        umount --lazy "$target"
    done
}

# The device's wheel, built from a copy of the checkout so that setuptools' build/ and *.egg-info
# never land in the working tree. $1: the pip to build with, $2: a work folder. Prints the wheel.
build_app_wheel() {
    local pip=$1 dir=$2
    mkdir -p "$dir/src" "$dir/dist"
    tar --exclude=./.git --exclude=./.venv --exclude=./models --exclude=./dist --exclude=./build \
        --exclude='*.egg-info' --exclude=__pycache__ --exclude=./var --exclude=./.sim --exclude=./bench-results \
        -cf - . | tar -xf - -C "$dir/src"
    $pip wheel -q --disable-pip-version-check --no-deps -w "$dir/dist" "$dir/src" >"$dir/wheel.log" 2>&1 \
        || { cat "$dir/wheel.log" >&2; fail "building the app wheel failed"; }
    local wheel
    wheel=$(find "$dir/dist" -name 'leaf_appliance-*.whl' -print -quit)
    [[ -n "$wheel" ]] || fail "no leaf_appliance wheel was built"
    printf '%s\n' "$wheel"
}

# The shipped model and its .sha256, checked: $1 the model file.
check_model() {
    [[ -f "$1" ]] || fail "no model at $1 (set LEAF_MODEL to another one)"
    [[ -f "$1.sha256" ]] || fail "no $1.sha256 beside the model"
    (cd "$(dirname "$1")" && sha256sum --check --quiet "$(basename "$1").sha256") \
        || fail "$1 does not match $1.sha256"
}
