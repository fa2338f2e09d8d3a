"""Cameras: the picamera2 adapter against a stand-in with picamera2's API, real OpenCV, real files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.errors import CameraError
from appliance.hardware.camera_opencv import OpenCVCamera
from appliance.hardware.camera_picamera2 import Picamera2Camera
from appliance.hardware.camera_sim import SimulatedCamera
from appliance.ports import Camera


class Rig:
    """What is plugged in, shared by every stand-in camera the adapter opens."""

    def __init__(self, plugged: bool = True, autofocus: bool = True) -> None:
        self.plugged = plugged
        self.autofocus = autofocus
        self.opened: list[FakePicamera2] = []
        self.frame_no = 0

    def factory(self) -> FakePicamera2:
        if not self.plugged:
            raise IndexError("list index out of range")  # what Picamera2() does with no camera
        cam = FakePicamera2(self)
        self.opened.append(cam)
        return cam


class FakePicamera2:
    """Same method names and signatures as picamera2.Picamera2 for what the adapter uses."""

    def __init__(self, rig: Rig, camera_num: int = 0) -> None:
        self.rig = rig
        self.camera_controls = {"ExposureTime": (1, 1000000, None)}
        if rig.autofocus:
            self.camera_controls["AfMode"] = (0, 2, 0)
        self.configs: list[dict] = []
        self.controls: list[dict] = []
        self.started = False
        self.closed = False
        self.af_cycles = 0
        self.captures: list[str] = []

    def create_still_configuration(
        self,
        main=None,
        lores=None,
        raw=None,
        transform=None,
        colour_space=None,
        buffer_count=1,
        controls=None,
        display=None,
        encode=None,
        queue=True,
        sensor=None,
        use_case="still",
    ):
        return {"use_case": use_case, "main": dict(main or {}), "buffer_count": buffer_count, "queue": queue}

    def configure(self, camera_config=None):
        assert not self.started, "picamera2 refuses configure() while started"
        self.configs.append(camera_config)

    def start(self, config=None, show_preview=False):
        self.started = True

    def stop(self):
        self.started = False

    def close(self):
        self.started = False
        self.closed = True

    def set_controls(self, controls):
        self.controls.append(dict(controls))

    def autofocus_cycle(self, wait=None, signal_function=None):
        self.af_cycles += 1
        return True

    def capture_array(self, name="main", wait=None, signal_function=None):
        assert self.started, "capture before start"
        self.captures.append(name)
        return ("job", name)

    def wait(self, job, timeout=None):
        if not self.rig.plugged:
            raise RuntimeError("Camera frontend has timed out!")
        self.rig.frame_no += 1
        w, h = self.configs[-1]["main"]["size"]
        frame = np.zeros((h, w, 3), np.uint8)
        frame[..., 0] = 200  # RGB888 is B, G, R in memory: blue first
        frame[0, 0, 1] = self.rig.frame_no
        return frame


def make_pi(rig: Rig, **kw) -> Picamera2Camera:
    return Picamera2Camera(width=64, height=48, factory=rig.factory, **kw)


def test_picamera2_returns_bgr_frames_without_reconfiguring_per_capture():
    rig = Rig()
    cam = make_pi(rig)
    assert isinstance(cam, Camera)
    cam.start()
    frames = [cam.capture() for _ in range(3)]
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert [int(f[0, 0, 1]) for f in frames] == [1, 2, 3]  # a new frame each time
    assert int(frames[0][5, 5, 0]) == 200  # blue stays in channel 0 (BGR)
    (fake,) = rig.opened
    assert len(fake.configs) == 1
    assert fake.configs[0]["main"] == {"size": (64, 48), "format": "RGB888"}
    assert fake.configs[0]["queue"] is False
    assert fake.captures == ["main"] * 3


def test_picamera2_continuous_autofocus_only_when_supported():
    rig = Rig(autofocus=True)
    make_pi(rig).start()
    assert {"AfMode": 2} in rig.opened[0].controls

    rig = Rig(autofocus=False)
    cam = make_pi(rig)
    cam.capture()
    assert rig.opened[0].controls == []
    assert rig.opened[0].af_cycles == 0


def test_picamera2_autofocus_cycle_per_capture_when_asked():
    rig = Rig()
    cam = make_pi(rig, focus="cycle")
    cam.capture()
    cam.capture()
    assert rig.opened[0].af_cycles == 2
    assert all("AfMode" not in c for c in rig.opened[0].controls)

    rig = Rig(autofocus=False)
    make_pi(rig, focus="cycle").capture()
    assert rig.opened[0].af_cycles == 0

    rig = Rig()
    make_pi(rig, autofocus=False).capture()
    assert rig.opened[0].controls == [] and rig.opened[0].af_cycles == 0


def test_picamera2_missing_camera_is_a_camera_error():
    cam = make_pi(Rig(plugged=False))
    with pytest.raises(CameraError, match="no camera found"):
        cam.start()


def test_picamera2_recovers_after_unplug_and_close_is_idempotent():
    rig = Rig()
    cam = make_pi(rig)
    cam.start()
    cam.capture()
    rig.plugged = False
    with pytest.raises(CameraError, match="camera stopped working"):
        cam.capture()
    assert rig.opened[0].closed  # the broken stream was released
    with pytest.raises(CameraError, match="no camera found"):
        cam.start()
    rig.plugged = True
    cam.start()
    assert cam.capture().shape == (48, 64, 3)
    assert len(rig.opened) == 2
    cam.close()
    cam.close()
    assert rig.opened[1].closed


def test_picamera2_rotation_turns_the_frame():
    rig = Rig()
    frame = make_pi(rig, rotation=90).capture()
    assert frame.shape == (64, 48, 3)
    with pytest.raises(ValueError, match="rotation"):
        make_pi(rig, rotation=45)


@pytest.mark.skipif(importlib.util.find_spec("picamera2") is not None, reason="picamera2 is installed here")
def test_picamera2_without_the_library_says_what_to_install():
    cam = Picamera2Camera()  # picamera2 cannot be imported off a Pi
    with pytest.raises(CameraError, match="picamera2"):
        cam.start()


def test_opencv_camera_missing_device_is_a_camera_error():
    cam = OpenCVCamera(index=97)
    with pytest.raises(CameraError, match="no USB camera at index 97"):
        cam.start()
    with pytest.raises(CameraError):
        cam.capture()
    cam.close()
    cam.close()


def _write_photos(folder: Path, colours: list[tuple[int, int, int]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, bgr in enumerate(colours):
        p = folder / f"leaf-{i}.png"
        cv2.imwrite(str(p), np.full((40, 50, 3), bgr, np.uint8))
        paths.append(p)
    return paths


def test_simulated_camera_replays_files_in_name_order_and_loops(tmp_path):
    paths = _write_photos(tmp_path / "photos", [(10, 0, 0), (20, 0, 0)])
    (tmp_path / "photos" / "notes.txt").write_text("not a photo")
    cam = SimulatedCamera(tmp_path / "photos")
    assert isinstance(cam, Camera)
    cam.start()
    seen = []
    for _ in range(3):
        frame = cam.capture()
        assert frame.shape == (40, 50, 3) and frame.dtype == np.uint8
        seen.append((int(frame[0, 0, 0]), cam.last_path))
    assert seen == [(10, paths[0]), (20, paths[1]), (10, paths[0])]


def test_simulated_camera_without_loop_runs_out(tmp_path):
    _write_photos(tmp_path, [(10, 0, 0)])
    cam = SimulatedCamera(tmp_path, loop=False)
    cam.capture()
    with pytest.raises(CameraError, match="no more photos"):
        cam.capture()


def test_simulated_camera_empty_or_missing_folder(tmp_path):
    with pytest.raises(CameraError, match="no photos in"):
        SimulatedCamera(tmp_path).start()
    with pytest.raises(CameraError, match="does not exist"):
        SimulatedCamera(tmp_path / "nope").start()


def test_simulated_camera_bad_file_is_named_and_skipped(tmp_path):
    _write_photos(tmp_path, [(10, 0, 0)])
    (tmp_path / "leaf-0b.jpg").write_bytes(b"\xff\xd8 truncated")
    cam = SimulatedCamera(tmp_path)
    assert int(cam.capture()[0, 0, 0]) == 10
    with pytest.raises(CameraError, match=r"leaf-0b\.jpg"):
        cam.capture()
    assert int(cam.capture()[0, 0, 0]) == 10  # moved on


def test_simulated_camera_unplug_and_replug(tmp_path):
    _write_photos(tmp_path, [(10, 0, 0), (20, 0, 0)])
    cam = SimulatedCamera(tmp_path)
    cam.start()
    cam.set_connected(False)
    with pytest.raises(CameraError, match="not connected"):
        cam.capture()
    with pytest.raises(CameraError, match="not connected"):
        cam.start()
    cam.set_connected(True)
    cam.start()
    assert cam.capture().shape == (40, 50, 3)
    cam.close()
    cam.close()
