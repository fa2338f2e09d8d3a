"""Every adapter is a context manager whose close is idempotent; display.rotate and camera.rotate reach the parts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from appliance.config import SIMULATED_DISPLAY_SIZE, load_config
from appliance.errors import ConfigError
from appliance.hardware.camera_opencv import OpenCVCamera
from appliance.hardware.camera_sim import SimulatedCamera
from appliance.hardware.gpio import GpioButton, GpioLeds, RgbLeds
from appliance.hardware.rotated_display import RotatedDisplay
from appliance.hardware.sim_button import SimulatedButton
from appliance.hardware.sim_display import SimulatedDisplay
from appliance.hardware.sim_leds import SimulatedLeds
from appliance.ports import LedPattern
from appliance.samples import samples_dir
from appliance.wiring import make_camera, make_display


def adapters(tmp_path: Path) -> list[object]:
    factory, pwm = MockFactory(), MockFactory(pin_class=MockPWMPin)
    return [
        SimulatedCamera(samples_dir()),
        SimulatedDisplay(tmp_path / "display"),
        SimulatedLeds(),
        SimulatedButton(socket_path=tmp_path / "control.sock"),
        GpioLeds(green=5, amber=6, red=13, pin_factory=factory),
        RgbLeds(red=13, green=5, blue=19, pin_factory=pwm),
        GpioButton(pin=16, pin_factory=factory),
        RotatedDisplay(SimulatedDisplay(tmp_path / "turned"), 90),
        OpenCVCamera(index=63),  # never started: closing one that never opened must work too
    ]


def test_every_adapter_closes_on_leaving_a_with_block_and_again_harmlessly(tmp_path: Path) -> None:
    for adapter in adapters(tmp_path):
        with adapter as entered:
            assert entered is adapter
            if isinstance(adapter, SimulatedLeds | GpioLeds | RgbLeds):
                adapter.show(LedPattern.READY)
        adapter.close()  # a second close (selftest, the daemon's stop) must not raise


def test_a_with_block_closes_even_when_it_fails(tmp_path: Path) -> None:
    leds = SimulatedLeds()
    with pytest.raises(RuntimeError), leds:
        leds.show(LedPattern.BUSY)
        raise RuntimeError("the check failed")
    assert leds.closed and leds.current is LedPattern.OFF


def test_a_turned_panel_gets_the_screen_drawn_for_the_turned_size(tmp_path: Path) -> None:
    panel = SimulatedDisplay(tmp_path, width=480, height=320)
    turned = RotatedDisplay(panel, 90)
    assert turned.size == (320, 480)
    frame = np.zeros((480, 320, 3), np.uint8)
    frame[:40] = (255, 0, 0)  # a red band along the top of the portrait screen
    turned.show(frame)
    shown = cv2.cvtColor(cv2.imread(str(panel.latest_path)), cv2.COLOR_BGR2RGB)
    assert shown.shape == (320, 480, 3)
    assert shown[:, :40, 0].mean() > 200 and shown[:, 60:, 0].mean() < 20  # now the band is the left edge
    assert RotatedDisplay(panel, 180).size == (480, 320)
    with pytest.raises(ValueError, match="0, 90, 180 or 270"):
        RotatedDisplay(panel, 45)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[device]\ndata_dir = "{tmp_path / "data"}"\n' + text, encoding="utf-8")
    return path


def test_display_rotate_and_the_simulated_size_come_from_the_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[display]\nkind = "simulated"\nrotate = 270\n'))
    with make_display(cfg) as display:
        assert display.size == SIMULATED_DISPLAY_SIZE[::-1]
    cfg = load_config(write(tmp_path, '[display]\nkind = "simulated"\nwidth = 800\nheight = 480\n'))
    with make_display(cfg) as display:
        assert display.size == (800, 480) and not isinstance(display, RotatedDisplay)


def test_camera_rotate_reaches_the_camera_and_a_bad_angle_is_a_config_error(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[camera]\nkind = "opencv"\nrotate = 180\n'))
    with make_camera(cfg) as camera:
        assert isinstance(camera, OpenCVCamera) and camera.rotation == 180
    with pytest.raises(ConfigError, match=r"camera\.rotate"):
        load_config(write(tmp_path, "[camera]\nrotate = 45\n"))
