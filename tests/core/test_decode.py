"""Decoding within budget: bytes, formats, decoded pixels and time; a clear error for each refusal."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from appliance.errors import CameraError, ImageError
from appliance.hardware.camera_sim import SimulatedCamera
from appliance.samples import sample_paths
from appliance.vision import decode
from appliance.vision.decode import MAX_DECODED_PIXELS, decode_image, read_image


def _jpeg_with_orientation(orientation: int) -> bytes:
    img = np.zeros((60, 100, 3), np.uint8)
    img[:, :50] = (255, 0, 0)  # left half red (RGB)
    pil = Image.fromarray(img)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", exif=exif, quality=95)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    upright = decode_image(_jpeg_with_orientation(1))
    rotated = decode_image(_jpeg_with_orientation(6))  # "rotate 90 CW to display"
    assert upright.shape[:2] == (60, 100)
    assert rotated.shape[:2] == (100, 60)
    # After a 90 degree clockwise turn the red half is on top.
    assert rotated[:50, :, 2].mean() > 200 and rotated[60:, :, 2].mean() < 50


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a photo"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "not a readable image"),
    ],
)
def test_bad_bytes_give_clear_errors(data, words):
    with pytest.raises(ImageError, match=words):
        decode_image(data, "upload.jpg")


def test_truncated_jpeg_is_refused_or_decoded_never_crashes(tmp_path):
    data = sample_paths()[0].read_bytes()
    for cut in (10, 200, len(data) // 2):
        try:
            img = decode_image(data[:cut], "cut.jpg")
        except ImageError as exc:
            assert "cut.jpg" in str(exc)
        else:
            assert img.ndim == 3


def test_decompression_bomb_is_refused_before_decoding():
    ok, png = cv2.imencode(".png", np.zeros((8000, 8000), np.uint8))  # 64 Mpx of zeros: a tiny file
    assert ok and len(png) < 1_000_000
    with pytest.raises(ImageError, match="too large"):
        decode_image(png.tobytes(), "bomb.png")


def test_folder_and_missing_file(tmp_path):
    with pytest.raises(ImageError, match="folder"):
        read_image(tmp_path)
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path / "nope.jpg")


def test_formats_no_camera_writes_are_refused_before_decoding() -> None:
    """A 3 MB Radiance .hdr of 7000x7000 took 793 MB to decode; no camera or phone writes one."""
    ok, hdr = cv2.imencode(".hdr", np.ones((64, 64, 3), np.float32))
    assert ok
    with pytest.raises(ImageError, match="not a photo"):
        decode_image(hdr.tobytes(), "x.hdr")


def test_a_jpeg_of_thousands_of_scans_is_refused_before_decoding() -> None:
    """20,000 scans in 808 KB took 25 s to decode and blocked the button loop as long."""
    photo = np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)
    ok, progressive = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok and decode_image(progressive.tobytes()).shape == (64, 64, 3)  # an ordinary one is fine
    data = progressive.tobytes()
    at = data.rindex(b"\xff\xda")
    bomb = data[:at] + data[at:-2] * 200 + b"\xff\xd9"  # the last scan repeated
    with pytest.raises(ImageError, match="scans"):
        decode_image(bomb, "bomb.jpg")


def _jpeg(width: int, height: int, **save: object) -> bytes:
    """A smooth photo-like JPEG (a gradient compresses small and decodes fast at any size)."""
    ramp = np.linspace(0, 255, width, dtype=np.uint8)
    rgb = np.repeat(np.stack([ramp, ramp[::-1], np.full_like(ramp, 90)], -1)[None], height, axis=0)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=85, **save)
    return buf.getvalue()


def test_a_50_mp_jpeg_is_decoded_scaled_down_within_the_pixel_budget() -> None:
    """49-MP photos decoded whole took ~370 MB; libjpeg scales by 2, 4 or 8 while decoding."""
    image = decode_image(_jpeg(8000, 6000), "phone.jpg")  # 48 MP: half of each side fits
    assert image.shape == (3000, 4000, 3)
    assert image.shape[0] * image.shape[1] <= MAX_DECODED_PIXELS
    assert decode_image(_jpeg(4056, 3040), "hq.jpg").shape == (3040, 4056, 3)  # the HQ camera's frame: whole


def test_a_scaled_down_jpeg_is_still_turned_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image = decode_image(_jpeg(8000, 6000, exif=exif), "portrait.jpg")
    assert image.shape == (4000, 3000, 3)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (_jpeg(4800, 3000, progressive=True), "progressive.jpg"),  # keeps all coefficients at full size
        (cv2.imencode(".png", np.zeros((3000, 4800, 3), np.uint8))[1].tobytes(), "big.png"),
        (_jpeg(10000, 6000), "huge.jpg"),  # 60 MP
    ],
)
def test_what_cannot_be_decoded_small_is_refused_by_its_header(data: bytes, name: str) -> None:
    with pytest.raises(ImageError, match=rf"{name}: image too large .*at most"):
        decode_image(data, name)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels and holds none: what a decompression bomb starts with."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_a_header_past_every_decoders_limit_is_named_too_large_not_an_opencv_assertion() -> None:
    """900 MP: Pillow refused to read its size, and OpenCV's own assertion reached the user (or, for a
    header with no pixels behind it, "not a readable image")."""
    with pytest.raises(ImageError) as refused:
        decode_image(_png_header_only(30000, 30000), "bomb.png")
    assert str(refused.value) == (
        "bomb.png: image too large (more than 179 MP; a PNG may have at most 13 MP, a camera JPEG up to 50 MP)"
    )


def test_a_header_only_opencv_reads_past_its_limit_is_named_too_large(monkeypatch) -> None:
    monkeypatch.setattr(decode, "_header", lambda data, kind, source: None)  # as for a header Pillow cannot read
    _, png = cv2.imencode(".png", np.zeros((8000, 8000), np.uint8))  # 64 MP, over OpenCV's 50-MP cap
    with pytest.raises(ImageError) as refused:
        decode_image(png.tobytes(), "wide.png")
    assert str(refused.value).startswith("wide.png: image too large (more than 50 MP; a PNG may have at most 13 MP")


def _slow_decode_budget() -> tuple[bytes, float]:
    """A 12-MP JPEG and a budget it cannot meet on any machine."""
    return _jpeg(4000, 3000), 1e-4


def test_a_decode_over_its_time_budget_is_a_clear_error_and_the_caller_moves_on() -> None:
    """A 20,000-scan JPEG held the button loop for 25 s; now the caller waits at most the budget."""
    data, budget = _slow_decode_budget()
    with pytest.raises(ImageError, match=r"slow\.jpg: took longer than 0\.0001 s to decode"):
        decode_image(data, "slow.jpg", budget_s=budget)
    # That decode goes on in the background; the next photo does not start a second one...
    with pytest.raises(ImageError, match=r"next\.jpg: not decoded: an earlier photo is still decoding"):
        decode_image(data, "next.jpg", budget_s=budget)
    # ...and, given time, is decoded once the first is done.
    assert decode_image(data, "later.jpg", budget_s=60).shape == (3000, 4000, 3)
    assert decode._overrun_slot.acquire(timeout=0)  # nothing left running
    decode._overrun_slot.release()


def test_a_slow_photo_in_the_simulated_camera_folder_is_a_camera_error_not_a_stall(tmp_path) -> None:
    data, budget = _slow_decode_budget()
    (tmp_path / "a.jpg").write_bytes(data)
    camera = SimulatedCamera(tmp_path, decode_budget_s=budget)
    with pytest.raises(CameraError, match=r"cannot use a\.jpg: .*took longer than"):
        camera.capture()
    assert decode_image(data, "after.jpg", budget_s=60).shape == (3000, 4000, 3)


def test_training_decodes_inline_without_a_time_budget() -> None:
    """The pipeline's photos are decoded in the caller's thread: a busy machine must not drop them."""
    data, _ = _slow_decode_budget()
    assert decode._overrun_slot.acquire(timeout=60)  # as if a runaway decode were still going
    try:
        assert decode_image(data, "train.jpg").shape == (3000, 4000, 3)
        with pytest.raises(ImageError, match="still decoding"):
            decode_image(data, "device.jpg", budget_s=0.01)
    finally:
        decode._overrun_slot.release()
