"""What the appliance's screen shows during and after an export, and the watchdog kick on every step."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from appliance import screens
from appliance.errors import ExportError
from appliance.export import Exporter, ExportReport, Progress
from appliance.export_screens import DisplayProgress, failure_screen, no_stick_screen, progress_screen, report_screen
from tests.helpers.torture.support import clock, config, fill, open_store


def test_every_progress_call_kicks_the_watchdog_and_redraws_are_throttled(tmp_path: Path) -> None:
    data, stick = tmp_path / "data", tmp_path / "stick"
    stick.mkdir()
    kicks, shown = [], []
    hook = DisplayProgress(shown.append, lambda: kicks.append(1), every_s=3600)
    with open_store(data) as store:
        fill(store, 6, size=300_000)
        calls: list[Progress] = []

        def both(p: Progress) -> None:
            calls.append(p)
            hook(p)

        Exporter(store, config(data), now=clock()).run(stick, progress=both)
    assert len(kicks) == len(calls) > 20
    assert [s.detail for s in shown] == [
        "Preparing",
        "Do not remove the stick",
        "Reading the copy back",
        "Unmounting: do not remove the stick yet",
    ]
    assert all(isinstance(s, screens.ProgressScreen) for s in shown)


def test_the_screens_render_at_the_display_size() -> None:
    p = Progress("writing", 12, 40, 3_100_000, 9_800_000, records_done=11, records_total=38)
    report = ExportReport(target=Path("/media/x"), stick_id="s", full=False, rows=40, photos=38, ejected=True)
    failure = ExportError("The USB stick was removed or stopped answering while writing photos/x.jpg (EIO). " * 2)
    for screen in (progress_screen(p), report_screen(report), failure_screen(failure), no_stick_screen()):
        image = screens.render(screen, (480, 320))
        assert isinstance(image, np.ndarray) and image.shape[:2] == (320, 480)
    assert progress_screen(p).bytes_total == 9_800_000 and (progress_screen(p).done, progress_screen(p).total) == (
        11,
        38,
    )
    assert report_screen(report).body == "40 records, 38 photos copied and checked. Safe to remove the stick."
    assert report_screen(report).tone == "ok" and failure_screen(failure).tone == "error"
    unsure = ExportReport(target=Path("/media/x"), stick_id="s", full=False, rows=3, photos=3, eject_message="busy")
    assert report_screen(unsure).body.endswith("Wait a few seconds before removing the stick.")
    same = ExportReport(target=Path("/media/x"), stick_id="s", full=False, already_on_stick=7)
    assert (report_screen(same).title, report_screen(same).body) == (
        "Nothing new to export",
        "This stick already has all 7 records.",
    )
