#!/usr/bin/env bash
# CI gate for the Pi's CPU: run the app and the shipped int8 model as aarch64 code (qemu user-mode
# emulation of the Raspberry Pi 4's and Pi 5's cores, on an arm64 Debian bookworm root with its
# Python 3.11) and check that every sample photo gets the same verdict and top-1 class as on x86-64.
#
#   bash .ci/arm-gate.sh          (from the repository root, as root; .venv must exist)
#
# Needs: root (debootstrap writes a root-owned tree), network to the Debian mirror and PyPI.
# Installs with apt (system-wide, left installed): qemu-user-static, debootstrap. Writes only under
# /tmp: one mktemp folder (arm64 root, wheels, pip's cache), removed on exit. Takes about 2 minutes.
#
# Environment:
#   ARM_CPUS      qemu CPU models to run, space separated (default "cortex-a72 cortex-a76": the Pi 4's
#                 and the Pi 5's cores; a wheel using instructions a Pi 4 lacks dies here as it would there)
#   ORT_VERSION   run this onnxruntime instead of the newest that pyproject.toml allows (may lie
#                 outside the pin: for trying a new release before changing the pin)
#   LEAF_MODEL    model to check (default models/leafnet-int8.onnx; its .sha256 beside it)
#   DEBIAN_MIRROR the Debian mirror (default http://deb.debian.org/debian)
#   KEEP_WORK=1   keep the work folder (arm64 root, wheels, outputs) for inspection
# Timings under emulation mean nothing: none are gated.
set -euo pipefail

ARM_CPUS=${ARM_CPUS:-cortex-a72 cortex-a76}
ORT_VERSION=${ORT_VERSION:-}
LEAF_MODEL=${LEAF_MODEL:-models/leafnet-int8.onnx}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
MAX_PROB_DIFF=0.01     # largest probability difference x86-64 vs aarch64 accepted for any class in the top 3
EMULATED_RUN_LIMIT=300 # seconds for one emulated diagnose run: a hang fails the gate, not the CI job
# Bookworm's glibc is 2.36; these are the wheel tags a Pi's pip accepts that PyPI's aarch64 wheels carry.
PLATFORMS=(--platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64)

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
why() { # a hint for an exit status from the emulated program
    case $1 in
        132) echo " = SIGILL: code for instructions this Pi's core lacks; it dies the same way on the Pi" ;;
        139) echo " = SIGSEGV" ;;
        124) echo " = timed out" ;;
        *) echo "" ;;
    esac
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
need_root "debootstrap writes a root-owned tree"
[[ -x .venv/bin/python ]] || fail ".venv is missing: set up the project first (python3 -m venv .venv; .venv/bin/pip install -e '.[dev]')"

ulimit -c 0 # qemu writes a crashing program's core file into the current folder: the repository
work=$(mktemp -d /tmp/arm-gate.XXXXXX)
root="$work/root"
export HOME="$work/home" # pip's cache and anything else that writes under $HOME stays in the work folder
mkdir -p "$HOME"
cleanup() {
    local status=$?
    set +e
    unmount_below "$root" # nothing is mounted on purpose; anything that was goes before deleting
    if [[ "${KEEP_WORK:-0}" == 1 ]]; then
        echo "Kept $work (KEEP_WORK=1)"
    else
        rm -rf --one-file-system "$work"
    fi
    exit "$status"
}
trap cleanup EXIT

# ------------------------------------------------------------------------------------------------
section "1. Tools: qemu-user-static, debootstrap"
need_apt=()
command -v qemu-aarch64-static >/dev/null || need_apt+=(qemu-user-static)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v findmnt >/dev/null || need_apt+=(util-linux)
((${#need_apt[@]})) && apt_install "${need_apt[@]}" debian-archive-keyring
qemu-aarch64-static --version | sed -n 1p
[[ -n "${ARM_CPUS// /}" ]] || fail "ARM_CPUS is empty: nothing would be checked"
for cpu in $ARM_CPUS; do
    case "$cpu" in
        cortex-a72 | cortex-a76) ;;
        *) fail "ARM_CPUS: '$cpu' is not a Pi's core; use cortex-a72 (Pi 4) and/or cortex-a76 (Pi 5)" ;;
    esac
done

# ------------------------------------------------------------------------------------------------
section "2. arm64 Debian bookworm root (debootstrap first stage + dpkg -x)"
# binfmt_misc may be missing, so the second stage (which runs arm64 code) cannot run: unpack every
# downloaded package instead. Nothing is configured; python3 needs nothing configured to run.
debootstrap --arch=arm64 --foreign --variant=minbase --include=python3 bookworm "$root" "$DEBIAN_MIRROR" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log"; fail "debootstrap (arm64) failed"; }
debs=("$root"/var/cache/apt/archives/*.deb)
[[ -e "${debs[0]}" ]] || fail "debootstrap left no packages in $root/var/cache/apt/archives"
for deb in "${debs[@]}"; do
    dpkg -x "$deb" "$root"
done
echo "unpacked ${#debs[@]} arm64 packages"
python_bin="$root/usr/bin/python3"
[[ -e "$python_bin" ]] || fail "no $python_bin after unpacking (did --include=python3 download it?)"
# qemu 7.2 passes the host's x86 /proc/cpuinfo through, which onnxruntime's CPU detection misreads
# (1.28 and later crash at import on it). qemu looks a path up under -L ROOT first, so ROOT/proc/cpuinfo
# is what the emulated program reads: give it the Pi's, matching the emulated core.
write_cpuinfo() { # $1: cortex-a72 (Pi 4, BCM2711: no crypto extension) or cortex-a76 (Pi 5, BCM2712)
    local features part variant revision model i
    if [[ $1 == cortex-a72 ]]; then
        features="fp asimd evtstrm crc32 cpuid" part=0xd08 variant=0x0 revision=3
        model="Raspberry Pi 4 Model B Rev 1.4"
    else
        features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
        part=0xd0b variant=0x4 revision=1 model="Raspberry Pi 5 Model B Rev 1.0"
    fi
    mkdir -p "$root/proc"
    for i in 0 1 2 3; do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\n' "$i" "$features"
        printf 'CPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
            "$variant" "$part" "$revision"
    done >"$root/proc/cpuinfo"
    printf 'Model\t\t: %s\n' "$model" >>"$root/proc/cpuinfo"
}
arm_command() { # sets arm=(...): this root's python3 under qemu as the core $1, a clean environment
    write_cpuinfo "$1"
    arm=(env -i PATH=/usr/bin:/bin LANG=C.UTF-8 HOME="$HOME" PYTHONPATH="$site" PYTHONNOUSERSITE=1
        PYTHONDONTWRITEBYTECODE=1 qemu-aarch64-static -L "$root" -cpu "$1" "$python_bin")
}
site="$root/opt/leaf-appliance/site-packages"
for cpu in $ARM_CPUS; do
    arm_command "$cpu"
    "${arm[@]}" -c 'import platform, sys
model = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("Model")]
print(platform.machine(), "Python", sys.version.split()[0], "as", model[0] if model else "NOT a Pi")
sys.exit(platform.machine() != "aarch64" or not model)' || fail "python3 from $root does not run as an aarch64 Pi"
done

# ------------------------------------------------------------------------------------------------
section "3. aarch64 wheels: the app and its runtime dependencies (numpy<2, as on the Pi)"
app_wheel=$(build_app_wheel .venv/bin/pip "$work")
echo "app wheel: $(basename "$app_wheel")"
printf '%s\n' 'numpy<2' >"$work/constraints.txt" # picamera2's apt packages need numpy 1 on the Pi
pip_aarch64=(.venv/bin/pip install -q --disable-pip-version-check --only-binary=:all: "${PLATFORMS[@]}"
    --python-version 3.11 --implementation cp --target "$site")
"${pip_aarch64[@]}" --constraint "$work/constraints.txt" "$app_wheel" >"$work/pip.log" 2>&1 \
    || { cat "$work/pip.log"; fail "installing the aarch64 wheels failed"; }
if [[ -n "$ORT_VERSION" ]]; then
    echo "replacing onnxruntime with $ORT_VERSION (ORT_VERSION)"
    rm -rf "$site"/onnxruntime "$site"/onnxruntime-*.dist-info
    "${pip_aarch64[@]}" --no-deps "onnxruntime==$ORT_VERSION" >"$work/pip-ort.log" 2>&1 \
        || { cat "$work/pip-ort.log"; fail "no aarch64 wheel of onnxruntime $ORT_VERSION for CPython 3.11"; }
fi
find "$site" -maxdepth 1 -name '*.dist-info' -printf '%f\n' | sed 's/\.dist-info$//' | sort | paste -sd' ' \
    | fold -s -w 100

# ------------------------------------------------------------------------------------------------
section "4. Model snapshot (both runs read these same bytes)"
model_dir="$root/opt/leaf-appliance/models"
mkdir -p "$model_dir"
model="$model_dir/$(basename "$LEAF_MODEL")"
cp "$LEAF_MODEL" "$model"
cp "$LEAF_MODEL.sha256" "$model.sha256" 2>/dev/null || fail "no $LEAF_MODEL.sha256 beside the model"
check_model "$model"
echo "$(basename "$model") sha256 $(awk '{print $1; exit}' "$model.sha256") ($(stat -c %s "$model") bytes)"
printf '' >"$work/config.toml" # built-in defaults, whatever /etc/leaf-appliance holds on this machine
photos=(appliance/samples/*.jpg)
[[ -e "${photos[0]}" ]] || fail "no sample photos in appliance/samples"
diagnose_args=(-m appliance diagnose --json --config "$work/config.toml" --model "$model" "${photos[@]}")

# ------------------------------------------------------------------------------------------------
section "5. Diagnose ${#photos[@]} photos on x86-64 (.venv)"
.venv/bin/python -c 'import onnxruntime, numpy; print("onnxruntime", onnxruntime.__version__, "numpy", numpy.__version__)'
.venv/bin/python "${diagnose_args[@]}" >"$work/x86.jsonl" 2>"$work/x86.err" \
    || { cat "$work/x86.err"; fail "diagnose failed on x86-64"; }
echo "$(wc -l <"$work/x86.jsonl") results"

# ------------------------------------------------------------------------------------------------
failed=0
for cpu in $ARM_CPUS; do
    section "6. Diagnose ${#photos[@]} photos on aarch64 (qemu -cpu $cpu)"
    # A wheel built for newer instructions than the CPU has dies here with SIGILL, as on the Pi.
    arm_command "$cpu"
    timeout 120 "${arm[@]}" -c 'import numpy, cv2, onnxruntime as ort
print("onnxruntime", ort.__version__, ort.get_available_providers(), "numpy", numpy.__version__, "opencv", cv2.__version__)' \
        2>&1 || {
        status=$?
        fail "importing numpy, cv2, onnxruntime failed under qemu -cpu $cpu (status $status$(why $status))"
    }
    status=0
    timeout "$EMULATED_RUN_LIMIT" "${arm[@]}" "${diagnose_args[@]}" \
        >"$work/arm-$cpu.jsonl" 2>"$work/arm-$cpu.err" || status=$?
    if ((status != 0)); then
        tail -n 20 "$work/arm-$cpu.err"
        ((status == 124)) && fail "diagnose under qemu -cpu $cpu took more than ${EMULATED_RUN_LIMIT}s"
        fail "diagnose failed under qemu -cpu $cpu (status $status$(why $status))"
    fi
    echo "$(wc -l <"$work/arm-$cpu.jsonl") results"

    section "7. Compare x86-64 with aarch64 ($cpu)"
    # Integer kernels give bit-equal results today; 0.01 leaves room for float rounding, not for drift.
    .venv/bin/python deploy/ci/compare_diagnoses.py --names "x86-64,aarch64/$cpu" --max-prob-diff "$MAX_PROB_DIFF" \
        "$work/x86.jsonl" "$work/arm-$cpu.jsonl" || failed=1
done

section "done"
((failed == 0)) || fail "aarch64 diagnoses differ from x86-64 (table above)"
echo "OK: the app and $(basename "$model") give the same verdicts and top-1 classes on aarch64 ($ARM_CPUS)"
