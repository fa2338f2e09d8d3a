"""`appliance run` off a Pi printed four gpiozero warnings and a BadPinFactory traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _has_gpio() -> bool:
    return Path("/proc/device-tree/model").exists() or Path("/dev/gpiochip0").exists()


@pytest.mark.skipif(_has_gpio(), reason="this machine has GPIO: the no-GPIO message cannot be provoked here")
def test_run_without_gpio_is_one_clear_paragraph_and_a_non_zero_exit(tmp_path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"[device]\ndata_dir = '{tmp_path / 'data'}'\n")
    run = subprocess.run(
        [sys.executable, "-m", "appliance", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and "Warning" not in run.stderr, run.stderr
    assert run.stderr.startswith("error: button on GPIO 16: This computer has no GPIO")
    assert "add --simulate" in run.stderr and run.stderr.count("\n") == 1
    assert not (tmp_path / "data").exists()
