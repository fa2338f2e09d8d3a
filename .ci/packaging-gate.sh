#!/usr/bin/env bash
# Packaging gate: the collector installs and imports with only its own dependencies, and the
# device's wheel carries no server code and no test fixtures. Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh
work=$(mktemp -d)
# pip builds ./leaf_collector in place: leave the checkout as it was
trap 'rm -rf "$work" leaf_collector/build leaf_collector/leaf_collector.egg-info' EXIT

echo "collector alone: a fresh venv with pip install ./leaf_collector"
python3 -m venv "$work/collector"
"$work/collector/bin/pip" install -q ./leaf_collector
(cd "$work" && "$work/collector/bin/python" - <<'PY'
import importlib, importlib.util, pkgutil
import leaf_collector, leaf_wire
for package in (leaf_collector, leaf_wire):
    for module in pkgutil.iter_modules(package.__path__):
        if module.name != "__main__":
            importlib.import_module(f"{package.__name__}.{module.name}")
present = [p for p in ("appliance", "numpy", "cv2", "onnxruntime", "PIL", "gpiozero", "sqlite_utils") if importlib.util.find_spec(p)]
assert not present, f"the collector's venv holds device packages: {present}"
assert "site-packages" in leaf_collector.__file__, leaf_collector.__file__
print("imported every leaf_collector and leaf_wire module; no device package installed")
PY
)
"$work/collector/bin/leaf-collector" --version

echo "the README's try-it venv (pip install -e .): the appliance runs, no training, test or server package"
python3 -m venv "$work/try"
"$work/try/bin/pip" install -q -e .
"$work/try/bin/python" - <<'PY'
import importlib.util
present = [p for p in ("torch", "onnx", "psycopg", "waitress", "pytest") if importlib.util.find_spec(p)]
assert not present, f"the try-it venv holds training/test/server packages: {present}"
print("no torch, onnx, psycopg, waitress or pytest")
PY
"$work/try/bin/appliance" diagnose appliance/samples/01-tomato-late-blight.jpg | tail -n 1
du -sh "$work/try" | sed 's/^/try-it venv: /'

echo "device wheel: appliance and leaf_wire only"
.venv/bin/pip wheel -q --no-deps -w "$work/wheels" .
.venv/bin/python - "$work"/wheels/leaf_appliance-*.whl <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
tops = sorted({n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")})
assert tops == ["appliance", "leaf_wire"], tops
leaked = [n for n in names if "collector" in n or "throwaway" in n or n.startswith("tests/")]
assert not leaked, leaked
print(f"{len(names)} files in {tops}; no server code, no test fixtures")
PY
