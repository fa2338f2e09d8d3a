"""Start-up and self-test screens say what is happening, not what happened before or has not begun."""

from __future__ import annotations

import cv2

from appliance import screens
from appliance.screens.render import draw_screen
from appliance.selftest import outcome_screen, run_selftest
from tests.helpers.daemon import Running, simulated_config


def test_start_up_does_not_claim_to_look_at_a_leaf(tmp_path):
    cfg = simulated_config(tmp_path)
    with Running(cfg) as app:
        first = app.screens_shown[0]
    assert isinstance(first, screens.WorkingScreen)
    words = " ".join(draw_screen(first, (320, 240)).texts)
    assert "Starting up" in words and "leaf" not in words.lower()
    # a capture still says it
    assert "Looking at the leaf" in " ".join(draw_screen(screens.WorkingScreen(), (320, 240)).texts)


def _shown(cfg):
    return cv2.cvtColor(cv2.imread(str(cfg.display_out_dir / "latest.png")), cv2.COLOR_BGR2RGB)


def test_selftest_ends_by_showing_how_it_ended(tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "broken").mkdir()
    good = simulated_config(tmp_path / "good")
    good.display_out_dir.mkdir(parents=True)  # a simulated screen someone is watching
    results = run_selftest(good, interactive=False, led_pause=0)
    ending = outcome_screen(results)
    assert ending.title == "Self-test passed" and "All checks passed" in ending.body
    size = _shown(good).shape[1::-1]
    assert (_shown(good) == screens.render(ending, size)).all()

    broken = simulated_config(tmp_path / "broken", camera=f"folder = '{tmp_path / 'none'}'")
    broken.display_out_dir.mkdir(parents=True)
    ending = outcome_screen(run_selftest(broken, interactive=False, led_pause=0))
    assert ending.title == "Self-test failed" and ending.body == "Failed: camera"
    assert (_shown(broken) == screens.render(ending, size)).all()


def test_rotate_90_turns_the_simulated_screen_of_the_running_appliance(tmp_path):
    cfg = simulated_config(tmp_path, display="rotate = 90")
    with Running(cfg) as app:
        assert isinstance(app.screens_shown[-1], screens.ReadyScreen)
        assert app.display.size == (320, 480)  # the screens are drawn portrait
        shown = _shown(cfg)
    assert shown.shape == (320, 480, 3)  # the panel (and its PNG) stays landscape
    assert (shown[:, :5] == screens.BLUE).all(axis=2).mean() > 0.9  # the header band is now the left edge
    assert not (shown[:5, 60:] == screens.BLUE).all(axis=2).any()
