"""Files named by a person or a config: a FIFO, a device or an oversized file is refused at once, never read."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config import load_config
from appliance.errors import ConfigError, ImageError
from appliance.files import FileRefused, read_regular_file
from appliance.samples import sample_paths
from appliance.vision.decode import read_image


def fifo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


def finishes(call, seconds: float = 10.0):
    """Run call in a thread; a hang (the defect) fails the test instead of stalling the run."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(_outcome(call)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "hung"
    return result[0]


def _outcome(call):
    try:
        return call()
    except Exception as exc:  # returned, so the test can assert on it
        return exc


def test_a_named_pipe_or_a_device_is_refused_without_reading(tmp_path: Path) -> None:
    pipe = fifo(tmp_path, "f.jpg")
    outcome = finishes(lambda: read_image(pipe))
    assert isinstance(outcome, ImageError) and "named pipe" in str(outcome) and str(pipe) in str(outcome)
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    outcome = finishes(lambda: read_image(zero))
    assert isinstance(outcome, ImageError) and "character device" in str(outcome)
    with pytest.raises(ImageError, match="folder"):
        read_image(tmp_path)


def test_only_up_to_the_cap_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 2001)
    with pytest.raises(FileRefused, match="too large"):
        read_regular_file(big, 2000)
    assert read_regular_file(big, 2001) == b"x" * 2001
    link = tmp_path / "link.jpg"
    link.symlink_to(sample_paths()[0])  # a link to a real photo is fine
    assert read_image(link).shape[2] == 3


def test_diagnose_reports_the_pipe_and_goes_on_with_the_next_photo(tmp_path: Path, capsys) -> None:
    pipe = fifo(tmp_path, "f.jpg")
    config = tmp_path / "config.toml"
    config.write_text("")
    status = finishes(lambda: main(["diagnose", "--json", "--config", str(config), str(pipe), str(sample_paths()[0])]))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "named pipe" in lines[0] and '"verdict"' in lines[1]
    assert status != 0  # one file failed


def test_a_config_that_is_a_pipe_or_a_device_is_a_config_error(tmp_path: Path) -> None:
    pipe = fifo(tmp_path, "config.toml")
    outcome = finishes(lambda: load_config(pipe))
    assert isinstance(outcome, ConfigError) and "named pipe" in str(outcome)
    zero = tmp_path / "zero.toml"
    zero.symlink_to("/dev/zero")
    outcome = finishes(lambda: load_config(zero))
    assert isinstance(outcome, ConfigError) and "character device" in str(outcome)


def test_a_config_saved_with_a_byte_order_mark_reads_as_without(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes("\ufeff[button]\npin = 21\n".encode())
    assert load_config(path).button.pin == 21


def test_diagnose_json_with_a_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    """Under a strict UTF-8 stdout the batch must not stop, and every line must be valid JSON."""
    import json
    import subprocess
    import sys

    folder = os.fsencode(tmp_path)
    odd = os.path.join(folder, b"leaf-\xff\xfe.jpg")
    with open(odd, "wb") as out:
        out.write(sample_paths()[0].read_bytes())
    broken = os.path.join(folder, b"broken-\xff.jpg")
    with open(broken, "wb") as out:
        out.write(b"not a photo")
    config = tmp_path / "config.toml"
    config.write_text("")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
    command = [sys.executable, "-m", "appliance", "diagnose", "--json", "--config", str(config)]
    result = subprocess.run([*command, odd, broken, str(sample_paths()[1])], capture_output=True, env=env, timeout=120)
    lines = result.stdout.decode("utf-8").splitlines()  # strict: invalid UTF-8 would raise here
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 3, result.stderr.decode(errors="replace")
    assert rows[0]["file"].endswith("leaf-\\xff\\xfe.jpg") and rows[0]["verdict"] == "diagnosis"
    assert "broken-\\xff.jpg" in rows[1]["file"] and "error" in rows[1]
    assert rows[2]["verdict"] == "diagnosis"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[quality]\nmax_brightness = 1" + "0" * 400 + "\n", "max_brightness: must be a number of ordinary size"),
        ("[button]\npin = 1" + "0" * 3900 + "\n", "got an integer too large to be a setting"),
        ("[device]\nid = " + "[" * 1500 + "]" * 1500 + "\n", "nested too deeply"),
        ("a" + ".a" * 20_000 + " = 1\n", "characters; a config line has at most 4,000"),
    ],
    ids=["int-beyond-float", "3900-digit-int", "arrays-1500-deep", "key-dotted-20000-deep"],
)
def test_a_hostile_config_is_a_config_error_not_a_traceback(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    outcome = finishes(lambda: load_config(path))
    assert isinstance(outcome, ConfigError), repr(outcome)
    assert message in str(outcome) and str(path) in str(outcome)
