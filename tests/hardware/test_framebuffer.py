"""Framebuffer and simulated display, written to real files laid out like the devices."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.errors import DisplayError
from appliance.hardware.framebuffer import FramebufferDisplay, fit_frame
from appliance.hardware.sim_display import SimulatedDisplay
from appliance.ports import Display


def fake_fb(tmp_path: Path, width: int, height: int, bpp: int, stride: int | None = None) -> tuple[Path, Path]:
    """A regular file sized like /dev/fb0 and a sysfs folder describing it."""
    stride = stride or width * bpp // 8
    sysfs = tmp_path / "sys"
    info = sysfs / "fb0"
    info.mkdir(parents=True)
    (info / "virtual_size").write_text(f"{width},{height}\n")
    (info / "bits_per_pixel").write_text(f"{bpp}\n")
    (info / "stride").write_text(f"{stride}\n")
    device = tmp_path / "fb0"
    device.write_bytes(b"\xaa" * (stride * height))
    return device, sysfs


def decode(device: Path, width: int, height: int, bpp: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The RGB pixels back from the file, and the padding bytes after each row."""
    raw = np.frombuffer(device.read_bytes(), np.uint8).reshape(height, stride)
    row = width * bpp // 8
    if bpp == 16:
        v = raw[:, :row].copy().view("<u2").astype(np.uint32)
        rgb = np.stack([(v >> 11) << 3, ((v >> 5) & 0x3F) << 2, (v & 0x1F) << 3], axis=-1)
    else:
        bgrx = raw[:, :row].reshape(height, width, 4)
        assert (bgrx[..., 3] == 0xFF).all()
        rgb = bgrx[..., [2, 1, 0]]
    return rgb.astype(np.uint8), raw[:, row:]


def random_frame(width: int, height: int) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(("bpp", "pad"), [(16, 0), (16, 24), (32, 0), (32, 64)])
def test_frame_round_trips_through_the_framebuffer(tmp_path, bpp, pad):
    w, h = 40, 30
    stride = w * bpp // 8 + pad
    device, sysfs = fake_fb(tmp_path, w, h, bpp, stride)
    display = FramebufferDisplay(device=device, sysfs_root=sysfs)
    assert isinstance(display, Display)
    assert display.size == (w, h) and display.stride == stride
    frame = random_frame(w, h)
    display.show(frame)
    display.close()
    display.close()
    rgb, padding = decode(device, w, h, bpp, stride)
    diff = np.abs(rgb.astype(int) - frame.astype(int))
    if bpp == 16:  # RGB565 drops the low 3/2/3 bits
        assert diff[..., 0].max() <= 7 and diff[..., 1].max() <= 3 and diff[..., 2].max() <= 7
    else:
        assert diff.max() == 0
    assert (padding == 0).all()
    assert device.stat().st_size == stride * h  # nothing written past the end


def test_byte_order_of_both_formats(tmp_path):
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    dev16, sys16 = fake_fb(tmp_path / "a", 2, 2, 16)
    FramebufferDisplay(device=dev16, sysfs_root=sys16).show(red)
    assert dev16.read_bytes()[:2] == b"\x00\xf8"  # 0xF800 little-endian
    dev32, sys32 = fake_fb(tmp_path / "b", 2, 2, 32)
    FramebufferDisplay(device=dev32, sysfs_root=sys32).show(red)
    assert dev32.read_bytes()[:4] == b"\x00\x00\xff\xff"  # B, G, R, X


def test_wrong_size_frame_is_letterboxed_not_refused(tmp_path):
    device, sysfs = fake_fb(tmp_path, 80, 60, 32)
    display = FramebufferDisplay(device=device, sysfs_root=sysfs)
    display.show(np.full((50, 100, 3), (0, 200, 0), np.uint8))  # 2:1 onto 4:3
    rgb, _ = decode(device, 80, 60, 32, 320)
    assert (rgb[30, 40] == (0, 200, 0)).all()
    assert (rgb[0] == 0).all() and (rgb[-1] == 0).all()  # bars above and below
    display.show(np.zeros((0, 0, 3), np.uint8))  # nothing to show: black, no exception
    display.show(np.full((10, 10), 128, np.uint8))  # grey, single channel
    rgb, _ = decode(device, 80, 60, 32, 320)
    assert (rgb[30, 40] == 128).all()


def test_explicit_geometry_needs_no_sysfs(tmp_path):
    device = tmp_path / "fb1"
    device.write_bytes(bytes(16 * 8 * 2))
    display = FramebufferDisplay(device=device, width=16, height=8, bits_per_pixel=16, sysfs_root=tmp_path / "none")
    assert display.size == (16, 8) and display.stride == 32
    display.show(random_frame(16, 8))
    display.close()


def test_missing_device_or_sysfs_or_bad_depth_are_clear_errors(tmp_path):
    with pytest.raises(DisplayError, match="does not exist"):
        FramebufferDisplay(device=tmp_path / "fb9", sysfs_root=tmp_path)
    device = tmp_path / "fb0"
    device.write_bytes(b"")
    with pytest.raises(DisplayError, match="virtual_size"):
        FramebufferDisplay(device=device, sysfs_root=tmp_path / "nosys")
    with pytest.raises(DisplayError, match="24 bits per pixel"):
        FramebufferDisplay(device=device, width=8, height=8, bits_per_pixel=24, sysfs_root=tmp_path)


def test_fit_frame_keeps_aspect_and_type():
    out = fit_frame(np.full((10, 40), 300.0), 20, 20)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    assert out[10, 10, 0] == 255 and out[0, 0, 0] == 0
    rgba = np.zeros((20, 20, 4), np.uint8)
    assert fit_frame(rgba, 20, 20).shape == (20, 20, 3)


def test_simulated_display_writes_latest_and_bounded_history(tmp_path):
    out = tmp_path / "screen"
    display = SimulatedDisplay(out, width=48, height=32, history=3)
    assert isinstance(display, Display) and display.size == (48, 32)
    for i in range(5):
        display.show(np.full((32, 48, 3), (i * 40, 10, 200), np.uint8))
    assert display.frames_written == 5
    numbered = sorted(p.name for p in out.glob("frame-*.png"))
    assert numbered == ["frame-000003.png", "frame-000004.png", "frame-000005.png"]
    latest = cv2.cvtColor(cv2.imread(str(out / "latest.png")), cv2.COLOR_BGR2RGB)
    assert (latest[0, 0] == (160, 10, 200)).all()
    assert (display.last_frame == latest).all()
    assert not list(out.glob("*.tmp"))  # no temporary files left behind

    again = SimulatedDisplay(out, width=48, height=32, history=3)  # a restart continues numbering
    again.show(np.zeros((10, 10, 3), np.uint8))  # wrong size: scaled, not refused
    assert again.last_frame.shape == (32, 48, 3)
    assert sorted(p.name for p in out.glob("frame-*.png"))[-1] == "frame-000006.png"
    assert len(list(out.glob("frame-*.png"))) == 3


def test_simulated_display_without_history_keeps_only_latest(tmp_path):
    display = SimulatedDisplay(tmp_path, width=20, height=20, history=0)
    display.show(np.zeros((20, 20, 3), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["latest.png"]
