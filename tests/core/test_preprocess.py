"""The runtime's preprocessing must give the model exactly what training gave it."""

from __future__ import annotations

import numpy as np

from appliance.samples import sample_paths
from appliance.vision.decode import read_image
from appliance.vision.preprocess import (
    InputSpec,
    center_square,
    model_view,
    preprocess,
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
