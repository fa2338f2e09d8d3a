"""`appliance diagnose` on real samples and on every kind of bad file; the batch always goes on."""

from __future__ import annotations

import json
import os

import pytest

from appliance.cli import main
from appliance.samples import sample_paths


def _run(capsys, *args):
    code = main(["diagnose", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_samples_are_diagnosed_right_or_refused_never_guessed(capsys):
    """On the samples a diagnosis is never wrong: where the model is unsure it asks for a retake."""
    code, out, _ = _run(capsys, "--json", *sample_paths())
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == len(sample_paths())
    diagnosed = 0
    for row in rows:
        name = os.path.basename(row["file"])
        expected = name[3:].rsplit(".", 1)[0]  # "01-tomato-late-blight.jpg" -> "tomato-late-blight"
        top = row["top_k"][0]["slug"].replace("__", "-").replace("_", "-")
        assert len(row["top_k"]) == 3
        assert row["top_k"][0]["probability"] >= row["top_k"][1]["probability"]
        if "background" in name:
            assert row["verdict"] == "retake" and row["reason"] == "no_leaf"
        elif row["verdict"] == "diagnosis":
            assert top == expected, (name, row["top_k"])
            assert row["crop"] and row["advice"]
            diagnosed += 1
        elif row["verdict"] == "unknown":  # sure of the crop, not of the condition: the crop, never a guess
            assert row["reason"] == "unknown_condition", (name, row)
            assert expected.startswith(row["crop"].lower().replace(" ", "-")), (name, row["crop"])
            assert row["top_k"][0]["probability"] < 0.9
        else:
            assert row["reason"] == "not_sure", (name, row)
            assert row["top_k"][0]["probability"] < 0.9
    assert diagnosed >= len(rows) - 2  # all but at most one leaf sample are diagnosed
    assert all(row["crops"] == [] for row in rows)  # no crops configured: every crop the model knows


def test_table_is_readable(capsys):
    no_leaf = next(p for p in sample_paths() if "background" in p.name)
    code, out, _ = _run(capsys, sample_paths()[0], no_leaf)
    assert code == 0
    assert "Tomato" in out and "Late blight" in out and "%" in out
    assert "retake" in out and "No leaf in view" in out
    assert "2 photo(s): 1 diagnosed, 1 retake, 0 failed" in out


def _bad_files(tmp_path):
    good = sample_paths()[0].read_bytes()
    files = {
        "empty.jpg": b"",
        "truncated.jpg": good[:300],
        "notes.txt": b"a shopping list\n",
        "fake.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 50,
    }
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as fh:  # sparse: 60 MB on paper, nothing on disk
        fh.truncate(60 * 1024 * 1024)
    hostile = tmp_path / "leaf\nname\x1b[31m.jpg"
    hostile.write_bytes(good)
    return [*paths, huge, hostile, tmp_path / "does-not-exist.jpg"]


def test_bad_files_are_reported_per_file_and_the_batch_goes_on(tmp_path, capsys):
    bad = _bad_files(tmp_path)
    code, out, _ = _run(capsys, "--json", sample_paths()[0], *bad, sample_paths()[1])
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert len(rows) == len(bad) + 2
    assert rows[0]["verdict"] == "diagnosis" and rows[-1]["verdict"] == "diagnosis"
    errors = {os.path.basename(r["file"]): r["error"] for r in rows if "error" in r}
    assert "empty" in errors["empty.jpg"]
    assert "too large" in errors["huge.jpg"]
    assert "cannot read" in errors["does-not-exist.jpg"]
    assert "not a photo" in errors["notes.txt"]
    hostile = [r for r in rows if "leaf\nname" in r["file"]]
    assert hostile and hostile[0]["verdict"] == "diagnosis"


def test_hostile_names_cannot_drive_the_terminal(tmp_path, capsys):
    bad = _bad_files(tmp_path)
    code, out, _ = _run(capsys, *bad)
    assert code == 1
    assert "\x1b" not in out
    assert "ERROR" in out and "failed" in out


def test_folder_argument_and_empty_folder(tmp_path, capsys):
    code, out, _ = _run(capsys, "--json", sample_paths()[0].parent)
    assert code == 0 and len(out.splitlines()) == len(sample_paths())
    (tmp_path / "empty").mkdir()
    code, _, err = _run(capsys, tmp_path / "empty")
    assert code == 2 and "no photos" in err


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    code, _, err = _run(capsys, "--model", tmp_path / "gone.onnx", sample_paths()[0])
    assert code == 2 and "model file not found" in err


@pytest.mark.parametrize("flag", ["--json", None])
def test_unknown_config_key_stops_with_file_and_key(tmp_path, capsys, flag):
    cfg = tmp_path / "config.toml"
    cfg.write_text("[model]\nthreds = 2\n")
    args = ["--config", cfg, sample_paths()[0]] + ([flag] if flag else [])
    code, _, err = _run(capsys, *args)
    assert code == 2 and str(cfg) in err and "model.threds" in err


def test_a_closed_pipe_ends_diagnose_quietly(tmp_path) -> None:
    """`appliance diagnose --json samples | head -c 100` ended in a BrokenPipeError traceback."""
    import subprocess
    import sys

    from appliance.samples import samples_dir

    shell = f"'{sys.executable}' -m appliance diagnose --json '{samples_dir()}' | head -c 100"
    run = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, timeout=300)
    assert run.stdout.startswith('{"file": ') and len(run.stdout) == 100
    assert "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr, run.stderr
    assert run.returncode in (0, 141)


def test_the_table_cuts_names_with_an_ellipsis_and_caps_confidence_as_the_screen(tmp_path, capsys, monkeypatch):
    """Names were cut at 32 characters with no mark (three rows read the same); confidences read 100.0%."""
    monkeypatch.setenv("COLUMNS", "80")
    names = [f"{'field-photo-from-the-north-orchard-row-'}{i:02d}.jpg" for i in range(3)]
    for name in names:
        (tmp_path / name).write_bytes(sample_paths()[0].read_bytes())
    code, out, _ = _run(capsys, *(tmp_path / n for n in names))
    rows = [line for line in out.splitlines()[1:] if line[:1].strip()][:3]  # not the advice lines
    assert code == 0 and all("…" in row.split()[0] for row in rows)
    assert len({row.split()[0] for row in rows}) == 3, rows  # the end of each name is kept
    for row in rows:
        if " diagnosis " in row:
            percent = int(row.rsplit(None, 1)[1].rstrip("%"))
            assert percent <= 99 and "." not in row.rsplit(None, 1)[1]


def test_subfolders_are_said_to_be_skipped_or_read_with_recursive(tmp_path, capsys):
    (tmp_path / "row-1").mkdir()
    (tmp_path / "row-1" / "a.jpg").write_bytes(sample_paths()[0].read_bytes())
    (tmp_path / "b.jpg").write_bytes(sample_paths()[1].read_bytes())
    code, out, err = _run(capsys, "--json", tmp_path)
    assert code == 0 and len(out.splitlines()) == 1
    assert "1 subfolder(s) not looked into: add --recursive" in err
    code, out, err = _run(capsys, "--json", "--recursive", tmp_path)
    assert code == 0 and len(out.splitlines()) == 2 and "subfolder" not in err
