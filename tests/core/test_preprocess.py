"""The runtime's preprocessing must give the model exactly what training gave it."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from appliance.errors import ImageError
from appliance.samples import sample_paths
from appliance.vision.preprocess import (
    InputSpec,
    center_square,
    decode_image,
    model_view,
    preprocess,
    read_image,
    resize_square,
    to_tensor,
)
from models.pipeline.data import load_pixels
from models.pipeline.split import Entry, file_sha256
from models.pipeline.train import normalise_batch


def test_training_and_runtime_tensors_are_identical(tmp_path):
    """Training caches photos at 256 px and normalises batches; the device preprocesses one photo."""
    spec = InputSpec()
    paths = sample_paths()[:4]
    entries = [Entry("test", "x", p.name, file_sha256(p)) for p in paths]
    cached = load_pixels(entries, paths[0].parent, cache_dir=None)
    train_batch = normalise_batch(np.stack([resize_square(px, spec.size) for px in cached]), spec).numpy()
    runtime = np.concatenate([preprocess(read_image(p), spec) for p in paths])
    assert train_batch.shape == runtime.shape == (4, 3, 224, 224)
    assert np.array_equal(train_batch, runtime)


def test_normalisation_matches_the_model_metadata():
    spec = InputSpec(size=4, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    rgb = np.full((4, 4, 3), 255, np.uint8)
    x = to_tensor(rgb, spec)
    assert x.shape == (1, 3, 4, 4) and x.dtype == np.float32
    assert np.allclose(x[0, :, 0, 0], [1.0, 3.0, 1.0])


def test_colour_order_is_rgb():
    bgr = np.zeros((64, 64, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    view = model_view(bgr, 32)
    assert view[0, 0].tolist() == [255, 0, 0]


def test_center_square_keeps_the_middle_of_a_landscape_frame():
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[:, 50:350] = 200
    sq = center_square(frame)
    assert sq.shape == (300, 300, 3) and sq.min() == 200


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
