"""Frames as large as a real camera's from the simulated camera, and the screen's reduced copy."""

from __future__ import annotations

import numpy as np

from appliance.hardware.camera_sim import SimulatedCamera, cover
from appliance.samples import samples_dir
from appliance.vision.preview import screen_preview


def test_the_simulated_camera_delivers_the_configured_frame_size() -> None:
    with SimulatedCamera(samples_dir(), frame_size=(2304, 1296)) as camera:
        assert camera.capture().shape == (1296, 2304, 3)
    with SimulatedCamera(samples_dir()) as camera:
        assert camera.capture().shape[:2] == (256, 256)  # the sample as it is


def test_cover_scales_without_stretching_and_crops_the_middle() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    image[:, 45:55] = 255  # a vertical stripe in the middle
    framed = cover(image, 400, 200)
    assert framed.shape == (200, 400, 3)
    stripe = np.flatnonzero(framed[100, :, 0] > 128)
    assert stripe.min() >= 170 and stripe.max() <= 230  # still centred, 4x wider: not stretched sideways only


def test_the_screen_preview_is_the_centre_square_as_large_as_a_screen_draws_it() -> None:
    frame = np.zeros((1296, 2304, 3), np.uint8)
    frame[:, 1100:1200] = 255  # a stripe in the middle survives, the edges are cropped away
    preview = screen_preview(frame, (480, 320))
    assert preview.shape == (160, 160, 3) and preview[:, 76:84].mean() > 200 and preview[:, :60].max() == 0
    small = np.zeros((48, 64, 3), np.uint8)
    copy = screen_preview(small, (480, 320))
    assert copy.shape == (48, 48, 3) and not np.shares_memory(copy, small)
