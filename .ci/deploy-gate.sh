#!/usr/bin/env bash
# CI gate for systemd/ and deploy/: lint, converge the Ansible role twice against a real Debian
# bookworm root (debootstrap + chroot connection), then check what it installed.
#
#   bash .ci/deploy-gate.sh          (from the repository root, as root)
#
# Needs: root, network to the Debian mirror and PyPI. Installs its own tools (apt: debootstrap,
# systemd, systemd-container; pip: ansible, ansible-lint, yamllint into /tmp/deploy-venv).
# Writes only under /tmp.
#
# `--check --diff` must succeed on the fresh root and report changed=0 on the converged one.
#
# When a real model is present, a last stage boots the converged root with systemd-nspawn and
# runs the play once more against the live systemd (simulated camera, button, LEDs, display):
# the hardened unit must reach READY and the post-deploy self-test must pass. Then a broken
# model with a correct checksum, and an app build that cannot start, are each deployed: the play
# must fail, and the service must end active and READY on the model, config and app it ran
# before (the automatic rollback), with every model kept under its checksum.
#
# Environment: KEEP_ROOT=1 keeps the root for inspection; DEBIAN_MIRROR overrides the mirror;
# LEAF_MODEL=path deploys another model (its .sha256 beside it); LIVE_SYSTEMD=0 skips the
# live stage.
set -euo pipefail

# --- pinned tool versions ---------------------------------------------------------------------
ANSIBLE_VERSION=12.3.0  # ansible-core 2.19; bundles community.general (chroot), community.docker (nsenter)
ANSIBLE_LINT_VERSION=26.10.1
YAMLLINT_VERSION=1.38.0
EXPOSURE_LIMIT=3.0
TOOLS_VENV=/tmp/deploy-venv
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
LIVE_SYSTEMD=${LIVE_SYSTEMD:-1}

started=$(date +%s)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
source "$repo/.ci/lib.sh"
need_root "debootstrap and chroot need it"

work=$(mktemp -d /tmp/deploy-gate.XXXXXX)
root="$work/root"
# pip, ansible and ansible-lint keep caches under $HOME: keep them in the work folder too.
export HOME="$work/home"
mkdir -p "$HOME"
cleanup() {
    local status=$?
    set +e  # clean up as much as possible, whatever fails
    if [[ -n "${nspawn_pid:-}" ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill "$nspawn_pid"  # systemd-nspawn shuts the container down
        for _ in $(seq 30); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 1; done
        kill -9 "$nspawn_pid" 2>/dev/null
    fi
    unmount_below "$root"  # whatever is mounted below the chroot goes before anything is deleted
    if [[ "${KEEP_ROOT:-0}" == 1 ]]; then
        echo "Kept $work (KEEP_ROOT=1)"
    else
        rm -rf --one-file-system "$work"
    fi
    exit "$status"
}
trap cleanup EXIT

# --------------------------------------------------------------------------------------------
section "1. Tools"
need_apt=()
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v findmnt >/dev/null || need_apt+=(util-linux)
command -v ssh >/dev/null || need_apt+=(openssh-client)  # the unreachable-host stage
command -v openssl >/dev/null || need_apt+=(openssl)  # the collector CA the role installs
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3 python3-venv)
if [[ "$LIVE_SYSTEMD" != 0 ]]; then
    command -v systemd-nspawn >/dev/null || need_apt+=(systemd-container)
    command -v nsenter >/dev/null || need_apt+=(util-linux)
fi
((${#need_apt[@]})) && apt_install "${need_apt[@]}"
pins=("ansible==$ANSIBLE_VERSION" "ansible-lint==$ANSIBLE_LINT_VERSION" "yamllint==$YAMLLINT_VERSION")
# Reuse the tools venv from an earlier run when it holds exactly these versions.
installed=$("$TOOLS_VENV/bin/python" -m pip freeze 2>/dev/null || true)
missing=0
for pin in "${pins[@]}"; do
    grep -qxF "$pin" <<<"$installed" || missing=1
done
if ((missing)); then
    echo "pip: installing ${pins[*]} into $TOOLS_VENV"
    rm -rf "$TOOLS_VENV"
    /usr/bin/python3 -m venv "$TOOLS_VENV"
    "$TOOLS_VENV/bin/python" -m pip install -q --disable-pip-version-check "${pins[@]}"
fi
export PATH="$TOOLS_VENV/bin:$PATH"
systemd-analyze --version | sed -n 1p
ansible --version | sed -n 1p

# --------------------------------------------------------------------------------------------
section "2. Lint (yamllint, ansible-lint --profile production)"
(cd deploy && yamllint --strict .)
echo "yamllint: clean"
(cd deploy && ansible-lint --offline --profile production .)

# --------------------------------------------------------------------------------------------
section "3. App wheel and x86-64 wheelhouse for the chroot's Python 3.11"
app_wheel=$(build_app_wheel "python3 -m pip" "$work")
echo "app wheel: $(basename "$app_wheel")"
bash deploy/build-wheelhouse.sh "$app_wheel" "$work/wheelhouse" x86_64 >"$work/wheelhouse.log" 2>&1 \
    || { cat "$work/wheelhouse.log"; fail "wheelhouse download failed"; }
tail -n1 "$work/wheelhouse.log"

model=${LEAF_MODEL:-$repo/models/leafnet-int8.onnx}
check_model "$model"
echo "model: $model (checksum from $model.sha256)"
model_sha=$(awk '{print $1; exit}' "$model.sha256")
model_name=$(basename "$model")
wheel_sha=$(sha256sum "$app_wheel" | awk '{print $1}')
# Where the role keeps them on the host: one folder per checksum, never overwritten.
model_on_host=/opt/leaf-appliance/models/$model_sha/$model_name
wheel_on_host=/opt/leaf-appliance/wheels/$wheel_sha/$(basename "$app_wheel")

# --------------------------------------------------------------------------------------------
section "4. Debian bookworm root (debootstrap --variant=minbase)"
t0=$(date +%s)
# The extra packages are what a stock Raspberry Pi OS has and minbase lacks.
debootstrap --variant=minbase --include=python3,python3-apt,systemd,systemd-sysv,udev,sudo \
    bookworm "$root" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log"; fail "debootstrap failed"; }
echo "debootstrap: $(($(date +%s) - t0)) s"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
# No service may start inside the chroot (a Pi runs them under systemd; here none runs).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
# The firmware files of Raspberry Pi OS, as on a freshly flashed card, so the boot tasks run.
mkdir -p "$root/boot/firmware"
printf '%s\n' '# Raspberry Pi OS default (abridged)' 'dtparam=audio=on' 'camera_auto_detect=1' \
    'display_auto_detect=1' 'auto_initramfs=1' 'dtoverlay=vc4-kms-v3d' 'max_framebuffers=2' \
    'arm_64bit=1' '[all]' >"$root/boot/firmware/config.txt"
echo 'console=serial0,115200 console=tty1 root=PARTUUID=0e0d1b5c-02 rootfstype=ext4 fsck.repair=yes rootwait' \
    >"$root/boot/firmware/cmdline.txt"

# --------------------------------------------------------------------------------------------
cat >"$work/inventory.yml" <<EOF
---
leaf_appliances:
  hosts:
    ci-chroot:
      ansible_connection: community.general.chroot
      ansible_host: $root
      ansible_python_interpreter: /usr/bin/python3
EOF
converge() {  # converge INVENTORY [ansible-playbook options...]
    local inventory=$1
    shift
    # A clean environment: nothing from this shell (proxies, pip settings) leaks into the chroot.
    env -i PATH="$TOOLS_VENV/bin:/usr/sbin:/usr/bin:/sbin:/bin" HOME="$HOME" LANG=C.UTF-8 \
        ANSIBLE_CONFIG="$repo/deploy/ansible.cfg" ANSIBLE_FORCE_COLOR=0 \
        ansible-playbook -i "$inventory" "$repo/deploy/site.yml" \
        -e "@$repo/deploy/ci/chroot-vars.yml" \
        -e "leaf_appliance_app_wheel=$app_wheel" \
        -e "leaf_appliance_wheelhouse_dir=$work/wheelhouse" \
        -e "leaf_appliance_model_src=$model" \
        -e "leaf_appliance_sync_ca_file_src=$work/ci-ca.pem" \
        -e "leaf_appliance_device_id=ci-chroot" "$@"
}
recap_changed() { grep -E '^ci-chroot +:' "$1" | sed -E 's/.*changed=([0-9]+).*/\1/'; }

# A collector CA for the role to install (the token comes from deploy/ci/chroot-vars.yml).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=ci collector CA" \
    -keyout "$work/ci-ca.key" -out "$work/ci-ca.pem" >"$work/openssl.log" 2>&1 \
    || { cat "$work/openssl.log"; fail "openssl could not make the CI collector CA"; }

section "5a. --check --diff on the fresh root: must succeed and write nothing"
t0=$(date +%s)
converge "$work/inventory.yml" --check --diff >"$work/check-fresh.log" 2>&1 \
    || { cat "$work/check-fresh.log"; fail "--check --diff fails on a fresh host"; }
grep -A1 'PLAY RECAP' "$work/check-fresh.log" | tail -n1
[[ ! -e "$root/opt/leaf-appliance" && ! -e "$root/etc/leaf-appliance" ]] \
    || fail "--check --diff wrote to the fresh host"
echo "check on the fresh root: passed, nothing written, $(($(date +%s) - t0)) s"

section "5. Converge (first run)"
t0=$(date +%s)
converge "$work/inventory.yml" >"$work/converge1.log" 2>&1 || { cat "$work/converge1.log"; fail "first converge failed"; }
grep -A3 'PLAY RECAP' "$work/converge1.log"
echo "first converge: $(($(date +%s) - t0)) s, changed=$(recap_changed "$work/converge1.log")"

section "6. Converge again: must change nothing"
t0=$(date +%s)
converge "$work/inventory.yml" >"$work/converge2.log" 2>&1 || { cat "$work/converge2.log"; fail "second converge failed"; }
grep -A3 'PLAY RECAP' "$work/converge2.log"
changed2=$(recap_changed "$work/converge2.log")
echo "second converge: $(($(date +%s) - t0)) s, changed=$changed2"
if [[ "$changed2" != 0 ]]; then
    grep -B2 -E '^changed:' "$work/converge2.log" || true
    fail "second converge changed $changed2 task(s): the role is not idempotent"
fi

section "6a. --check --diff on the converged root: must report changed=0"
t0=$(date +%s)
converge "$work/inventory.yml" --check --diff >"$work/check-converged.log" 2>&1 \
    || { cat "$work/check-converged.log"; fail "--check --diff fails on the converged host"; }
grep -A1 'PLAY RECAP' "$work/check-converged.log" | tail -n1
check_changed=$(recap_changed "$work/check-converged.log")
if [[ "$check_changed" != 0 ]]; then
    grep -B2 -E '^changed:' "$work/check-converged.log" || true
    fail "--check --diff on the converged host reports changed=$check_changed"
fi
echo "check on the converged root: changed=0, $(($(date +%s) - t0)) s"

section "6b. One host does not answer: the rollout stops before the next batch"
# The canary batch holds a host nobody answers at (a closed SSH port); the converged root is in
# the next batch. The play must fail, and not run a single role task on the root.
cat >"$work/inventory-unreachable.yml" <<EOF
---
leaf_appliances:
  hosts:
    ci-unreachable:
      ansible_connection: ssh
      ansible_host: 127.0.0.1
      ansible_port: 1
    ci-chroot:
      ansible_connection: community.general.chroot
      ansible_host: $root
      ansible_python_interpreter: /usr/bin/python3
EOF
status=0
converge "$work/inventory-unreachable.yml" -e leaf_appliance_reach_timeout_s=5 >"$work/unreachable.log" 2>&1 || status=$?
grep -A4 'PLAY RECAP' "$work/unreachable.log" || true
((status != 0)) || { cat "$work/unreachable.log"; fail "the play succeeded with a host that does not answer"; }
if grep -q 'TASK \[leaf_appliance' "$work/unreachable.log"; then
    cat "$work/unreachable.log"
    fail "role tasks ran although a host of the rollout does not answer"
fi
echo "unreachable host: the play stopped (exit $status) before any role task ran"

# --------------------------------------------------------------------------------------------
section "7. Verify the installed appliance"
in_root() { chroot "$root" "$@"; }
for path in /etc/systemd/system/leaf-appliance.service \
    /etc/systemd/system/leaf-appliance-export@.service \
    /etc/systemd/system/leaf-appliance.service.d/10-site.conf \
    /etc/udev/rules.d/90-leaf-appliance-usb-export.rules \
    /etc/leaf-appliance/config.toml \
    "$model_on_host" \
    "$model_on_host.sha256" \
    "$wheel_on_host" \
    /opt/leaf-appliance/venv/bin/appliance \
    /opt/leaf-appliance/TECHNICIAN.md; do
    [[ -e "$root$path" ]] || fail "missing $path"
done
echo "files: in place"
# stat inside the root: its user ids are not this machine's
token_stat=$(in_root stat -c '%a %U' /var/lib/leaf-appliance/sync.token) || fail "the sync token was not written"
[[ "$token_stat" == "600 leaf-appliance" ]] || fail "sync.token is '$token_stat', want '600 leaf-appliance'"
cmp -s "$work/ci-ca.pem" "$root/etc/leaf-appliance/collector-ca.pem" || fail "the collector CA was not installed"
grep -qx 'ca_file = "/etc/leaf-appliance/collector-ca.pem"' "$root/etc/leaf-appliance/config.toml" \
    || fail "config.toml does not point [sync] ca_file at the installed CA"
echo "sync: token 0600 for leaf-appliance, collector CA installed and in config.toml"
for unit in leaf-appliance.service leaf-appliance-export@.service 90-leaf-appliance-usb-export.rules; do
    installed=$root/etc/systemd/system/$unit
    [[ $unit == *.rules ]] && installed=$root/etc/udev/rules.d/$unit
    cmp -s "systemd/$unit" "$installed" || fail "installed $unit differs from systemd/$unit"
done
echo "units: identical to systemd/"
in_root getent passwd leaf-appliance >/dev/null || fail "user leaf-appliance missing"
groups_of_user=$(in_root id -nG leaf-appliance)
for group in leaf-appliance gpio video; do
    [[ " $groups_of_user " == *" $group "* ]] || fail "leaf-appliance is not in group $group ($groups_of_user)"
done
echo "user: leaf-appliance (groups: $groups_of_user)"
link="$root/etc/systemd/system/multi-user.target.wants/leaf-appliance.service"
[[ -L "$link" ]] || fail "leaf-appliance.service is not enabled (no $link)"
echo "enabled: multi-user.target.wants/leaf-appliance.service -> $(readlink "$link")"
(cd "$root$(dirname "$model_on_host")" && sha256sum --check --quiet "$model_name.sha256") \
    || fail "model checksum mismatch on the host"
grep -qxF "path = \"$model_on_host\"" "$root/etc/leaf-appliance/config.toml" \
    || fail "config.toml does not point [model] path at $model_on_host"
echo "model: kept under its checksum ($model_on_host), checksum OK, config.toml points at it"
numpy_version=$(in_root /opt/leaf-appliance/venv/bin/python -c \
    'import appliance, numpy, cv2, onnxruntime, gpiozero, lgpio, systemd.daemon; print(numpy.__version__)') \
    || fail "the venv cannot import the app and its dependencies"
[[ "$numpy_version" == 1.* ]] || fail "numpy $numpy_version in the venv; the Pi needs numpy<2"
echo "venv: app and dependencies import (numpy $numpy_version)"
grep -q '^# BEGIN leaf-appliance block' "$root/boot/firmware/config.txt" || fail "config.txt block missing"
grep -q 'vt.global_cursor_default=0' "$root/boot/firmware/cmdline.txt" || fail "cmdline.txt not updated"
[[ $(wc -l <"$root/boot/firmware/cmdline.txt") == 1 ]] || fail "cmdline.txt is no longer a single line"
echo "boot: config.txt block and cmdline.txt arguments present"

if in_root /opt/leaf-appliance/venv/bin/appliance config check --help >/dev/null 2>&1; then
    in_root /opt/leaf-appliance/venv/bin/appliance config check --config /etc/leaf-appliance/config.toml \
        || fail "appliance config check rejects the deployed config.toml"
    echo "config: appliance config check passed"
else
    echo "config: SKIPPED appliance config check (this app version has no 'config check' command yet)"
fi

section "8. systemd-analyze verify (must print nothing)"
verify_out=$(systemd-analyze verify --root="$root" leaf-appliance.service leaf-appliance-export@sda1.service 2>&1) \
    || fail "systemd-analyze verify failed: $verify_out"
[[ -z "$verify_out" ]] || fail "systemd-analyze verify printed:\n$verify_out"
echo "verify: leaf-appliance.service, leaf-appliance-export@sda1.service: no output"

section "9. systemd-analyze security (exposure <= $EXPOSURE_LIMIT)"
scores=()
for unit in leaf-appliance.service leaf-appliance-export@sda1.service; do
    line=$(systemd-analyze security --offline=true --root="$root" "$unit" 2>&1 | grep 'Overall exposure level')
    score=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$line")
    echo "$unit: exposure $score"
    awk -v s="$score" -v l="$EXPOSURE_LIMIT" 'BEGIN { exit !(s <= l) }' \
        || fail "$unit exposure $score is above $EXPOSURE_LIMIT"
    scores+=("$unit=$score")
done

section "10. Live systemd: boot the root, deploy again, service READY, self-test"
boot_container() {  # sets container_init and state; returns 1 when this machine cannot boot one
    # The chroot's bind mounts go; systemd-nspawn sets up its own /proc and /dev.
    findmnt --list --noheadings --output TARGET | grep -F "$root/" | sort -r | while read -r target; do
        umount --lazy "$target"
    done
    systemd-nspawn --quiet --directory="$root" --boot --register=no --keep-unit --console=pipe \
        >"$work/nspawn.log" 2>&1 &
    nspawn_pid=$!
    container_init="" state=""
    for _ in $(seq 90); do
        kill -0 "$nspawn_pid" 2>/dev/null || return 1
        container_init=$(pgrep -P "$nspawn_pid" | head -n1 || true)
        if [[ -n "$container_init" ]]; then
            state=$(nsenter -t "$container_init" -a systemctl is-system-running 2>/dev/null || true)
            [[ "$state" == running || "$state" == degraded ]] && return 0
        fi
        sleep 1
    done
    return 1
}
live="skipped"
if [[ "$LIVE_SYSTEMD" == 0 ]]; then
    echo "SKIPPED: LIVE_SYSTEMD=0"
elif ! boot_container; then
    # Booting a container needs privileges some CI sandboxes lack; that says nothing about the
    # appliance, so it is reported loudly instead of failing the gate.
    tail -n 20 "$work/nspawn.log"
    echo "SKIPPED: systemd-nspawn cannot boot a container on this machine (systemd: ${state:-no answer})"
    live="skipped (this machine cannot boot a container)"
else
    echo "container booted: systemd is $state (init pid $container_init)"
    live_inventory="$work/inventory-live.yml"
    printf '%s\n' '---' 'leaf_appliances:' '  hosts:' '    ci-chroot:' \
        '      ansible_connection: community.docker.nsenter' \
        "      ansible_nsenter_pid: $container_init" \
        '      ansible_python_interpreter: /usr/bin/python3' >"$live_inventory"
    t0=$(date +%s)
    converge "$live_inventory" -e "@$repo/deploy/ci/live-vars.yml" >"$work/live1.log" 2>&1 \
        || { cat "$work/live1.log"; fail "deploy against the live systemd failed"; }
    sed -n '/Show the self-test results/,/^$/p' "$work/live1.log"
    grep -A2 'PLAY RECAP' "$work/live1.log"
    converge "$live_inventory" -e "@$repo/deploy/ci/live-vars.yml" >"$work/live2.log" 2>&1 \
        || { cat "$work/live2.log"; fail "second deploy against the live systemd failed"; }
    live_changed=$(recap_changed "$work/live2.log")
    [[ "$live_changed" == 0 ]] || fail "second deploy against the live systemd changed $live_changed task(s)"
    nsenter -t "$container_init" -a systemctl is-active --quiet leaf-appliance.service \
        || fail "leaf-appliance.service is not active after the deploy"
    live="passed (READY, self-test passed, second run changed=0, $(($(date +%s) - t0)) s)"
    echo "live systemd: $live"

    in_container() { nsenter -t "$container_init" -a "$@"; }
    # Active means READY for this Type=notify unit; the daemon's last "ready:" line names the model.
    check_ready_on() {  # check_ready_on SHA256 WHAT
        in_container systemctl is-active --quiet leaf-appliance.service \
            || fail "$2: leaf-appliance.service is not active: $(in_container systemctl is-active leaf-appliance.service)"
        local ready
        ready=$(in_container journalctl --unit leaf-appliance.service --output cat --no-pager | grep 'ready: model' | tail -n1 || true)
        [[ "$ready" == *"sha256 ${1:0:12}"* ]] || fail "$2: the service's last READY is not on model ${1:0:12}: $ready"
        echo "$2: active, READY on model ${1:0:12} ($ready)"
    }
    expect_rollback() {  # expect_rollback LOG WHAT: the play failed, said so, and rolled back
        grep -A2 'PLAY RECAP' "$1"
        grep -q 'ROLLED BACK to what ran before this deploy' "$1" || { cat "$1"; fail "$2: no automatic rollback"; }
        grep -o 'ROLLED BACK to what ran before this deploy[^"]*' "$1" | head -n1 | cut -c1-300
    }

    section "10b. Live: a broken model with a correct checksum is rolled back, the rollout stops"
    t0=$(date +%s)
    # The same file name as the good model, truncated: its own checksum is correct, it cannot load.
    mkdir -p "$work/broken-model"
    broken_model="$work/broken-model/$model_name"
    head -c 100000 "$model" >"$broken_model"
    (cd "$work/broken-model" && sha256sum "$model_name" >"$model_name.sha256")
    broken_sha=$(awk '{print $1}' "$broken_model.sha256")
    cp "$root/etc/leaf-appliance/config.toml" "$work/config-before.toml"
    status=0
    converge "$live_inventory" -e "@$repo/deploy/ci/live-vars.yml" -e "leaf_appliance_model_src=$broken_model" \
        >"$work/live-broken-model.log" 2>&1 || status=$?
    ((status != 0)) || { cat "$work/live-broken-model.log"; fail "the play succeeded with a broken model"; }
    expect_rollback "$work/live-broken-model.log" "broken model"
    check_ready_on "$model_sha" "after the broken model"
    cmp -s "$work/config-before.toml" "$root/etc/leaf-appliance/config.toml" \
        || fail "config.toml is not the one from before the broken model: $(diff "$work/config-before.toml" "$root/etc/leaf-appliance/config.toml")"
    (cd "$root/opt/leaf-appliance/models/$broken_sha" && sha256sum --check --quiet "$model_name.sha256") \
        || fail "the broken model is not kept under its checksum"
    (cd "$root$(dirname "$model_on_host")" && sha256sum --check --quiet "$model_name.sha256") \
        || fail "the good model was overwritten by the new one of the same name"
    echo "models kept: $(cd "$root/opt/leaf-appliance/models" && ls -d ./*/"$model_name" | cut -c3- | tr '\n' ' ')"
    echo "broken model: play failed (exit $status), rolled back, config.toml as before, $(($(date +%s) - t0)) s"

    section "10c. Live: an app build that cannot start is rolled back, the rollout stops"
    t0=$(date +%s)
    # The same app with a new version whose `appliance run` exits at once (config check still works).
    rm -rf "$work/broken-app"
    cp -a "$work/src" "$work/broken-app"
    sed -i 's/^__version__ = .*/__version__ = "0.0.0+ci.broken"/' "$work/broken-app/appliance/__init__.py"
    sed -i 's/^def cmd_run(args: argparse.Namespace) -> int:$/&\n    raise SystemExit("CI: this build cannot start")/' \
        "$work/broken-app/appliance/cli.py"
    grep -q 'CI: this build cannot start' "$work/broken-app/appliance/cli.py" || fail "could not make the broken app build"
    python3 -m pip wheel -q --disable-pip-version-check --no-deps -w "$work/broken-app/dist" "$work/broken-app" \
        >"$work/broken-app.log" 2>&1 || { cat "$work/broken-app.log"; fail "building the broken app wheel failed"; }
    broken_wheel=$(find "$work/broken-app/dist" -name 'leaf_appliance-*.whl' -print -quit)
    app_version() { in_container /opt/leaf-appliance/venv/bin/python -c \
        'import importlib.metadata as m; print(m.version("leaf-appliance"))'; }
    version_before=$(app_version)
    cp "$root/opt/leaf-appliance/requirements.txt" "$work/requirements-before.txt"
    status=0
    converge "$live_inventory" -e "@$repo/deploy/ci/live-vars.yml" -e "leaf_appliance_app_wheel=$broken_wheel" \
        >"$work/live-broken-app.log" 2>&1 || status=$?
    ((status != 0)) || { cat "$work/live-broken-app.log"; fail "the play succeeded with an app that cannot start"; }
    grep -q 'CI: this build cannot start' "$work/live-broken-app.log" \
        || { cat "$work/live-broken-app.log"; fail "the broken app was not what failed"; }
    expect_rollback "$work/live-broken-app.log" "broken app"
    check_ready_on "$model_sha" "after the broken app"
    version_after=$(app_version)
    [[ "$version_after" == "$version_before" ]] || fail "app $version_after runs after the rollback, not $version_before"
    cmp -s "$work/requirements-before.txt" "$root/opt/leaf-appliance/requirements.txt" \
        || fail "requirements.txt is not the one from before the broken app"
    echo "broken app: play failed (exit $status), rolled back to app $version_after, $(($(date +%s) - t0)) s"

    section "10d. Live: after the rollbacks the good deploy changes nothing"
    t0=$(date +%s)
    converge "$live_inventory" -e "@$repo/deploy/ci/live-vars.yml" >"$work/live3.log" 2>&1 \
        || { cat "$work/live3.log"; fail "the good deploy after the rollbacks failed"; }
    live_changed=$(recap_changed "$work/live3.log")
    [[ "$live_changed" == 0 ]] || { grep -B2 -E '^changed:' "$work/live3.log"; fail "the good deploy after the rollbacks changed $live_changed task(s)"; }
    echo "good deploy after the rollbacks: changed=0, $(($(date +%s) - t0)) s"
    live="$live; rollback of a broken model and a broken app: passed"
fi

section "Summary"
echo "exposure: ${scores[*]} (limit $EXPOSURE_LIMIT)"
echo "second converge: changed=$changed2"
echo "live systemd stage: $live"
echo "deploy gate passed in $(($(date +%s) - started)) s"
