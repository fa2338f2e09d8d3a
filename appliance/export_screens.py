"""What the appliance's display shows about an export, and the progress hook that also feeds the watchdog.

Core: the daemon shows these; it knows an export only by the ports ExportProgress and ExportOutcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from appliance.ports import ExportOutcome, ExportProgress

log = logging.getLogger("appliance.export")
SCREEN_EVERY_S = 0.5  # redraw at most this often; the watchdog is kicked on every call


def progress_screen(p: ExportProgress) -> Any:
    from appliance import screens

    detail = {
        "writing": "Do not remove the stick",
        "verifying": "Reading the copy back",
        "finishing": "Unmounting: do not remove the stick yet",
    }.get(p.phase, "Preparing")
    return screens.ProgressScreen(
        title=p.title, done=p.files_done, total=p.files_total, bytes_done=p.bytes_done,
        bytes_total=p.bytes_total or None, detail=detail,
    )  # fmt: skip


def report_screen(report: ExportOutcome) -> Any:
    from appliance import screens

    if report.safe_to_remove:
        removal = "Safe to remove the stick."
    elif report.eject_message:
        removal = "Wait a few seconds before removing the stick."
    else:
        removal = ""
    if report.rows:
        body = f"{report.rows} records, {report.photos} photos copied and checked. {removal}"
    elif report.already_on_stick:
        body = f"This stick already has all {report.already_on_stick} records. {removal}"
    else:
        body = f"No records yet. {removal}"
    return screens.MessageScreen(title=report.title, body=body.strip(), tone="ok")


def failure_screen(exc: BaseException) -> Any:
    from appliance import screens

    return screens.MessageScreen(title="Export failed", body=str(exc) or type(exc).__name__, tone="error")


def no_stick_screen() -> Any:
    from appliance import screens

    return screens.MessageScreen(title="No USB stick", body="Plug in a USB stick, wait a moment, then hold the button.")


class DisplayProgress:
    """The progress callback for the daemon: kick the watchdog every call, redraw now and then."""

    def __init__(
        self, show: Callable[[Any], Any], kick: Callable[[], Any] | None = None, every_s: float = SCREEN_EVERY_S
    ) -> None:
        self.show, self.kick, self.every_s = show, kick, every_s
        self._last = float("-inf")
        self._phase = ""

    def __call__(self, p: ExportProgress) -> None:
        if self.kick is not None:
            self.kick()
        now = time.monotonic()
        if p.phase != self._phase or now - self._last >= self.every_s:
            self._phase, self._last = p.phase, now
            try:
                self.show(progress_screen(p))
            except Exception:  # a broken display must not fail the export
                log.exception("could not show export progress")
