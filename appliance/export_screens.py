"""What the appliance's display shows about an export, and the progress hook that also feeds the watchdog.

Core: the daemon shows these; it knows an export only by the ports ExportProgress and ExportOutcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from appliance.ports import ExportOutcome, ExportProgress
from appliance.words import ENGLISH, say

log = logging.getLogger("appliance.export")
SCREEN_EVERY_S = 0.5  # redraw at most this often; the watchdog is kicked on every call


def progress_screen(p: ExportProgress, language: str = ENGLISH) -> Any:
    from appliance import screens

    detail = {"writing": "export.writing", "verifying": "export.verifying", "finishing": "export.finishing"}
    return screens.ProgressScreen(
        title=say("export.checking" if p.phase == "verifying" else "export.exporting", language),
        done=p.records_done, total=p.records_total, bytes_done=p.bytes_done,
        bytes_total=p.bytes_total or None, detail=say(detail.get(p.phase, "export.preparing"), language),
    )  # fmt: skip


def report_screen(report: ExportOutcome, language: str = ENGLISH) -> Any:
    from appliance import screens

    if report.safe_to_remove:
        removal = say("export.safe", language)
    elif report.eject_message:
        removal = say("export.wait", language)
    else:
        removal = ""
    if report.rows:
        body = say("export.copied", language, records=report.rows, photos=report.photos)
    elif report.already_on_stick:
        body = say("export.already", language, records=report.already_on_stick)
    else:
        body = say("export.no_records", language)
    title = say("export.done_title" if report.rows else "export.nothing_new_title", language)
    return screens.MessageScreen(title=title, body=f"{body} {removal}".strip(), tone="ok")


def failure_screen(exc: BaseException, language: str = ENGLISH) -> Any:
    """The export's own message (ExportError words for the person at the stick) under a translated title."""
    from appliance import screens

    title = say("export.failed_title", language)
    return screens.MessageScreen(title=title, body=str(exc) or type(exc).__name__, tone="error")


def no_stick_screen(language: str = ENGLISH) -> Any:
    from appliance import screens

    return screens.MessageScreen(title=say("export.no_stick_title", language), body=say("export.no_stick", language))


class DisplayProgress:
    """The progress callback for the daemon: kick the watchdog every call, redraw now and then."""

    def __init__(
        self,
        show: Callable[[Any], Any],
        kick: Callable[[], Any] | None = None,
        language: str = ENGLISH,
        every_s: float = SCREEN_EVERY_S,
    ) -> None:
        self.show, self.kick, self.every_s = show, kick, every_s
        self.language = language
        self._last = float("-inf")
        self._phase = ""

    def __call__(self, p: ExportProgress) -> None:
        if self.kick is not None:
            self.kick()
        now = time.monotonic()
        if p.phase != self._phase or now - self._last >= self.every_s:
            self._phase, self._last = p.phase, now
            try:
                self.show(progress_screen(p, self.language))
            except Exception:  # a broken display must not fail the export
                log.exception("could not show export progress")
