"""`appliance bench`: the shipped model timed beside the ONNX-zoo int8 MobileNetV2 in the same run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx
import pytest

from appliance.bench import ZOO_ENGINE, bench, zoo_gate
from appliance.bench_appliance import run
from appliance.errors import ConfigError
from tests.helpers.paths import MODEL


def test_bench_times_the_reference_in_the_same_run(tmp_path, shared_weights):
    out = tmp_path / "bench.json"
    report = bench(MODEL, out, threads=(1,), warmup=1, runs=3, reference=shared_weights)
    engines = {r["engine"] for r in report["results"] if "p50_ms" in r}
    assert ZOO_ENGINE in engines and "onnxruntime-int8" in engines
    assert report["int8_over_zoo_int8_p50_by_threads"]["1"] > 0
    assert json.loads(out.read_text())["reference"] == str(shared_weights)


def _at_input_size(src: Path, dst: Path, size: int) -> None:
    """A copy of a shipped model that takes size x size photos (its graph is convolutions and a global pool)."""
    model = onnx.load(str(src))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = dims[3].dim_value = size
    del model.graph.value_info[:]  # shapes inferred at 224 would no longer hold
    for entry in model.metadata_props:
        if entry.key == "appliance.input_size":
            entry.value = str(size)
    onnx.save(model, str(dst))
    dst.with_name(dst.name + ".sha256").write_text(f"{hashlib.sha256(dst.read_bytes()).hexdigest()}  {dst.name}\n")


def test_a_model_with_a_larger_input_is_timed_against_the_reference_at_its_own_size(tmp_path, shared_weights):
    """The zoo model takes 224 px: it is fed 224 px while the shipped model gets its own size."""
    for kind in ("int8", "fp32"):
        _at_input_size(MODEL.with_name(f"leafnet-{kind}.onnx"), tmp_path / f"leafnet-{kind}.onnx", 232)
    report = bench(
        tmp_path / "leafnet-int8.onnx", tmp_path / "b.json", threads=(1,), warmup=1, runs=3, reference=shared_weights
    )
    by = {r["engine"]: r for r in report["results"]}
    assert "error" not in by[ZOO_ENGINE], by[ZOO_ENGINE]
    assert by[ZOO_ENGINE]["input_size"] == 224 and by["onnxruntime-int8"]["input_size"] == 232
    assert report["int8_over_zoo_int8_p50_by_threads"]["1"] > 0


def test_without_the_reference_the_gate_says_so(tmp_path):
    report = bench(MODEL, tmp_path / "b.json", threads=(1,), warmup=1, runs=2, reference=tmp_path / "missing.onnx")
    assert all(r["engine"] != ZOO_ENGINE for r in report["results"])
    assert "reference model missing" in zoo_gate(report)[0]


def test_gate_fails_over_the_line():
    assert zoo_gate({"int8_over_zoo_int8_p50_by_threads": {"1": 1.05, "2": 1.2}}) == [
        "int8 p50 is 1.20x the ONNX-zoo model's at 2 thread(s) (line 1.1)"
    ]


def test_bench_appliance_refuses_a_bad_camera_size_before_starting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"camera\.simulated_size: must be empty"):
        run(1, tmp_path / "b.json", camera_size="99")
    assert not (tmp_path / "b.json").exists()


def test_bench_appliance_outlasts_the_daemons_log_filling_a_pipe(tmp_path: Path) -> None:
    """250 presses log ~75 KB, more than a pipe holds: the daemon must never block writing its log."""
    report = run(250, tmp_path / "b.json")
    assert report["presses"] == 250 and report["exit_code"] == 0 and report["stopping_sent"]
    assert json.loads((tmp_path / "b.json").read_text())["press_to_result_ms"]["p95"] > 0
