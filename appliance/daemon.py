"""The field loop as an explicit state machine.

idle -> capturing -> classifying -> showing_result -> idle, with fault states that recover
by themselves (camera unplugged, model missing, storage full or damaged). Button presses
arrive from other threads and are queued; the main loop alone touches the hardware, the
store and the display, so a SIGTERM lets the current write finish before "stopped".
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import numpy as np

from . import export_screens, labels, screens
from .errors import ApplianceError, CameraError, ConfigError
from .led_codes import LED_CODES
from .ports import (
    Button,
    Camera,
    DiagnoserPort,
    Display,
    LedPattern,
    Leds,
    Notifier,
    Press,
    RecordStore,
    SyncStatus,
    UsbExport,
    Watchdog,
)
from .result import Diagnosis, Verdict
from .storage_rule import MIB, StorageLevel, StorageLimits, storage_status
from .vision.jpeg import encode_jpeg
from .vision.preview import screen_preview
from .words import ENGLISH, say

log = logging.getLogger("appliance.daemon")


class State(StrEnum):
    STARTING = "starting"
    IDLE = "idle"
    CAPTURING = "capturing"
    CLASSIFYING = "classifying"
    SHOWING_RESULT = "showing_result"
    EXPORTING = "exporting"
    FAULT = "fault"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Fault:
    kind: str  # camera | model | storage | other
    title: str  # in the display's language
    detail: str
    todo: str
    key: str  # messages.toml's fault.<key>_title: the title the service manager and Ansible read

    @property
    def status_title(self) -> str:
        """The title in English whatever the screens say: systemd's status line is read by machines."""
        return say(f"fault.{self.key}_title")

    @property
    def led(self) -> LedPattern:
        return {
            "camera": LedPattern.FAULT_CAMERA,
            "storage": LedPattern.FAULT_STORAGE,
            "model": LedPattern.FAULT_MODEL,
        }.get(self.kind, LedPattern.FAULT_OTHER)

    @property
    def code(self) -> int:
        """The red blinks a person counts, from the LED table the hardware guide is built from."""
        return LED_CODES[self.led].blinks


@dataclass
class Cycle:
    """One press, timed: what the benchmark and `press --wait` report."""

    record_id: str = ""
    verdict: str = ""
    slug: str = ""
    ms: dict[str, float] = field(default_factory=dict)
    error: str = ""


class Appliance:
    """Owns the adapters and runs the loop; everything it needs is passed in (see wiring.py)."""

    def __init__(
        self,
        *,
        camera: Camera,
        button: Button,
        leds: Leds,
        display: Display,
        load_diagnoser: Callable[[], DiagnoserPort],
        open_store: Callable[[], RecordStore],
        notifier: Notifier,
        watchdog: Watchdog | None = None,
        device_id: str,
        storage: StorageLimits,  # the config's [storage] section: warn and refuse levels
        result_seconds: float = 20.0,
        retry_seconds: float = 3.0,
        tick_seconds: float = 0.25,
        on_state: Callable[[State], None] | None = None,
        usb: UsbExport | None = None,
        sync: SyncStatus | None = None,
        language: str = ENGLISH,  # the config's device.language: every screen's words
    ) -> None:
        self.camera, self.button, self.leds, self.display = camera, button, leds, display
        self._load_diagnoser, self._open_store = load_diagnoser, open_store
        self.notifier, self.watchdog = notifier, watchdog
        self.device_id = device_id
        self.result_seconds = result_seconds
        self.storage = storage
        self.retry_seconds, self.tick_seconds = retry_seconds, tick_seconds
        self._on_state = on_state
        self.usb = usb  # finds a stick, exports to it, frees space (wiring.StickExport); None: no export
        self.sync = sync  # background SyncWorker (appliance.sync); None or disabled: no sync
        self._sync_line = ""
        self.language = language
        self.diagnoser: DiagnoserPort | None = None
        self.store: RecordStore | None = None
        self.camera_up = False
        self.state = State.STARTING
        self.fault: Fault | None = None
        self.ready_sent = False
        self.ignored_presses = 0
        self.last_cycle: Cycle | None = None
        self._events: queue.Queue[tuple[str, Press | None]] = queue.Queue()
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._press_lock = threading.Lock()
        self._cycle_done = threading.Condition()
        self._cycles = 0
        self._result_until = 0.0
        self._next_retry = 0.0
        self._shown_minute = -1
        self.screens_shown: deque[screens.Screen] = deque(maxlen=64)  # what the display was last given

    # ----- called from other threads -------------------------------------------------
    def on_press(self, press: Press) -> bool:
        """Queue a press; False (ignored) while one is queued or being handled: one press, one result."""
        with self._press_lock:
            if self._busy.is_set():
                self.ignored_presses += 1
                log.info("%s press ignored: still working on the last one", press.value)
                return False
            self._busy.set()  # from the moment it is queued, so a second press cannot queue behind it
        self._events.put(("press", press))
        return True

    def request_stop(self, *_: object) -> None:
        """Safe from a signal handler: the loop finishes what it is doing, then stops."""
        self._stop.set()
        self._events.put(("stop", None))

    def wait_for_cycle(self, after: int, timeout: float) -> Cycle | None:
        """Block until a press cycle numbered above ``after`` has finished (for `press --wait`)."""
        with self._cycle_done:
            self._cycle_done.wait_for(lambda: self._cycles > after, timeout)
            return self.last_cycle if self._cycles > after else None

    def result_waiter(self, press: Callable[[], bool], timeout: float) -> str:
        """For the control socket's `press wait`: press, wait for the outcome, answer in one line.

        An ignored press is answered as such: waiting would report the other press's record.
        """
        before = self.cycles
        if not press():
            return "error: busy: still working on the last press; press again when its result shows"
        cycle = self.wait_for_cycle(before, timeout)
        if cycle is None:
            return f"error: no result within {timeout:.0f} s"
        if cycle.error:
            return f"error: {cycle.error}"
        return "ok " + json.dumps(
            {"id": cycle.record_id, "verdict": cycle.verdict, "slug": cycle.slug, "ms": cycle.ms}, ensure_ascii=False
        )

    @property
    def cycles(self) -> int:
        return self._cycles

    # ----- the loop -----------------------------------------------------------------
    def run(self) -> int:
        self.button.start(self.on_press)
        if self.watchdog is not None:
            self.watchdog.start()
        if self.sync is not None:
            self.sync.start()  # its own thread and store connection: never blocks this loop
        self.leds.show(LedPattern.BUSY)  # amber fast blink while the model loads (hardware guide)
        self._show(screens.WorkingScreen(stage=self._say("working.loading_model"), title=self._say("working.starting")))
        self._bring_up()
        while not self._stop.is_set():
            if self.watchdog is not None:
                self.watchdog.kick()
            try:
                kind, value = self._events.get(timeout=self.tick_seconds)
            except queue.Empty:
                kind, value = "tick", None
            if kind == "press" and value is not None:
                self._handle_press(value)
            self._tick()
        self._shutdown()
        return 0

    def _set_state(self, state: State) -> None:
        if state != self.state:
            log.debug("state %s -> %s", self.state.value, state.value)
        self.state = state
        if self._on_state:
            self._on_state(state)

    def _tick(self) -> None:
        now = time.monotonic()
        if self.state is State.FAULT and now >= self._next_retry:
            self._bring_up()
        elif self.state is State.SHOWING_RESULT and now >= self._result_until:
            self._show_ready()
        elif self.state is State.IDLE and (
            datetime.now().minute != self._shown_minute or self._sync_line != self._current_sync_line()
        ):
            self._show_ready()  # keep the clock and the sync state on the ready screen current

    # ----- start-up and faults -----------------------------------------------------------
    def _bring_up(self) -> None:
        """Try each part that is not up yet; READY=1 once model, store and camera all are."""
        self._next_retry = time.monotonic() + self.retry_seconds
        try:
            if self.diagnoser is None:
                self.notifier.status("loading the model")
                self.diagnoser = self._load_diagnoser()
            if self.store is None:
                self.notifier.status("opening the record store")
                self.store = self._open_store()
            if not self.camera_up:
                self.notifier.status("starting the camera")
                self.camera.start()
                self.camera_up = True
        except CameraError as exc:
            self._camera_fault(exc)
            return
        except ConfigError as exc:  # e.g. diagnosis.crops names a crop the installed model does not know
            self._enter_fault(self._fault("other", "config", str(exc)))
            return
        except ApplianceError as exc:
            kind = "model" if self.diagnoser is None else "storage"
            self._enter_fault(self._fault(kind, kind, str(exc)))
            return
        except Exception as exc:  # an unexpected error must show, not kill the appliance
            log.exception("start-up failed")
            self._enter_fault(self._fault("other", "unexpected", str(exc) or type(exc).__name__))
            return
        if self.fault is not None:
            log.info("recovered from %s fault", self.fault.kind)
        self.fault = None
        if not self.ready_sent:
            self.ready_sent = True
            self.notifier.ready()
            info = self.diagnoser.info
            log.info(
                "ready: model %s %s (sha256 %s), %d records stored",
                info.name,
                info.version,
                info.sha256[:12],
                self.store.count(),
            )
        self._show_ready()

    def _camera_fault(self, exc: CameraError) -> None:
        self.camera_up = False
        self._enter_fault(self._fault("camera", "camera", str(exc)))

    def _fault(self, kind: str, key: str, detail: str) -> Fault:
        """A fault with messages.toml's fault.<key>_title and fault.<key>_todo in the display's language."""
        return Fault(kind, self._say(f"fault.{key}_title"), detail, self._say(f"fault.{key}_todo"), key)

    def _enter_fault(self, fault: Fault) -> None:
        if self.fault != fault:
            log.error("%s fault: %s", fault.kind, fault.detail)
        self.fault = fault
        self._set_state(State.FAULT)
        self.notifier.status(f"fault: {fault.status_title}: {fault.detail}")
        self.leds.show(fault.led)
        self._show(screens.FaultScreen(title=fault.title, problem=fault.detail, action=fault.todo, code=fault.code))

    # ----- screens ---------------------------------------------------------------------
    def _show(self, screen: screens.Screen) -> float:
        """Render and show; returns the milliseconds it took. A broken display is logged, not fatal."""
        t0 = time.perf_counter()
        self.screens_shown.append(screen)
        try:
            self.display.show(screens.render(screen, self.display.size, self.language))
        except Exception:
            log.exception("display failed")
        return (time.perf_counter() - t0) * 1e3

    def _say(self, key: str, **fields: object) -> str:
        return say(key, self.language, **fields)

    def _current_sync_line(self) -> str:
        return self.sync.line(self.language) if self.sync is not None and self.sync.enabled else ""

    def _show_ready(self) -> None:
        self._set_state(State.IDLE)
        self.leds.show(LedPattern.READY)
        self._shown_minute = datetime.now().minute
        free = self.store.free_bytes() if self.store else 0
        self._sync_line = self._current_sync_line()
        status, warning = self._sync_line, False
        room = storage_status(free, self.storage)
        if room.level is not StorageLevel.OK:
            status, warning = room.short(self.language), True
        records = self.store.count() if self.store else 0
        self.notifier.status(f"ready, {records} records")
        self._show(
            screens.ReadyScreen(
                model_version=self.diagnoser.info.version if self.diagnoser else "-",
                records=records,
                free_mb=free / MIB,
                now=datetime.now(),
                status=status,
                warning=warning,
                crops=self._crop_names(),
            )
        )

    def _crop_names(self) -> tuple[str, ...] | None:
        """Display names of the crops the diagnoser chooses among; () = all it knows; None = no diagnoser."""
        if self.diagnoser is None:
            return None
        return tuple(labels.crop_name(c, self.diagnoser.language) for c in self.diagnoser.crops)

    # ----- a press ---------------------------------------------------------------------
    def _handle_press(self, press: Press) -> None:
        cycle = Cycle()
        try:
            if self.state is State.FAULT:
                self._bring_up()  # a press during a fault is a request to try again now
            if self.state is State.FAULT:
                cycle.error = f"{self.fault.status_title}: {self.fault.detail}" if self.fault else "fault"
            elif self.store is None or self.diagnoser is None:  # not reached: no fault means both are up
                cycle.error = "not ready"
            elif press is Press.LONG:
                self._long_press(cycle, self.store)
            else:
                self._diagnose(cycle, self.store, self.diagnoser)
        finally:
            self._busy.clear()
            with self._cycle_done:
                self.last_cycle = cycle
                self._cycles += 1
                self._cycle_done.notify_all()

    def _kick(self) -> None:
        if self.watchdog is not None:
            self.watchdog.kick()

    def _long_press(self, cycle: Cycle, store: RecordStore) -> None:
        """Export to the USB stick: progress on screen, "safe to remove" only once it is."""
        usb = self.usb
        stick = usb.find() if usb else None
        self._result_until = time.monotonic() + self.result_seconds
        if usb is None or stick is None:
            self._show(export_screens.no_stick_screen(self.language))
            cycle.verdict = "no_usb_stick"
            self._set_state(State.SHOWING_RESULT)
            return
        self._set_state(State.EXPORTING)
        self.leds.show(LedPattern.EXPORTING)
        self.notifier.status(f"exporting to {stick}")
        try:
            report = usb.export(store, stick, export_screens.DisplayProgress(self._show, self._kick, self.language))
        except Exception as exc:  # ExportError carries words for the screen; anything else too
            log.error("export to %s failed: %s", stick, exc)
            cycle.error = f"export failed: {exc}"
            self.leds.show(LedPattern.RETAKE)
            self._show(export_screens.failure_screen(exc, self.language))
        else:
            cycle.verdict = "exported"
            # Logged as a diagnosis is: the terminal (and the journal) says what the stick received.
            log.info(
                "export to %s: %d records, %d photos%s",
                stick,
                report.rows,
                report.photos,
                "; safe to remove" if report.safe_to_remove else "",
            )
            self.leds.show(LedPattern.SAFE_TO_REMOVE if report.safe_to_remove else LedPattern.READY)
            self._show(export_screens.report_screen(report, self.language))
            usb.make_room(store)
        self._result_until = time.monotonic() + self.result_seconds
        self._set_state(State.SHOWING_RESULT)

    def _diagnose(self, cycle: Cycle, store: RecordStore, diagnoser: DiagnoserPort) -> None:
        t0 = time.perf_counter()
        if storage_status(store.free_bytes(), self.storage).level is StorageLevel.REFUSE:
            cycle.error = "storage full"
            self._enter_fault(self._fault("storage", "full", self._say("fault.full_problem")))
            return
        self._set_state(State.CAPTURING)
        self.leds.show(LedPattern.BUSY)
        self._show(screens.WorkingScreen())
        t_capture = time.perf_counter()
        try:
            frame = self.camera.capture()
        except CameraError as exc:
            cycle.error = str(exc)
            self._camera_fault(exc)
            return
        t_classify = time.perf_counter()
        # The screens (and the last 64 kept in screens_shown) get a copy the display's size, never the
        # full frame: at 2304x1296 each would hold 9 MB. The full frame lives only until it is saved.
        preview = screen_preview(frame, self.display.size)
        self._set_state(State.CLASSIFYING)
        diagnosis: Diagnosis = diagnoser.diagnose(frame)
        t_commit = time.perf_counter()
        latency = {
            "working_screen_ms": round((t_capture - t0) * 1e3, 3),
            "capture_ms": round((t_classify - t_capture) * 1e3, 3),
            "quality_ms": diagnosis.timings.quality_ms,
            "inference_ms": diagnosis.timings.inference_ms,
        }
        try:
            record = store.record(diagnosis, encode_jpeg(frame), device_id=self.device_id, latency=latency)
        except Exception as exc:  # disk full, I/O error: nothing shown as saved that is not
            log.exception("could not save the diagnosis")
            cycle.error = str(exc)
            self._enter_fault(self._fault("storage", "save", str(exc) or type(exc).__name__))
            return
        t_render = time.perf_counter()
        render_ms = self._show_result(diagnosis, preview)
        if self.sync is not None:
            self.sync.note_new_record()
        if self.usb is not None and storage_status(store.free_bytes(), self.storage).level is not StorageLevel.OK:
            self.usb.make_room(store)  # prune photos already exported, never others
        t_end = time.perf_counter()
        cycle.record_id, cycle.verdict, cycle.slug = record.id, diagnosis.verdict.value, diagnosis.best.slug
        cycle.ms = {
            **latency,
            "classify_ms": round((t_commit - t_classify) * 1e3, 3),
            "commit_ms": round((t_render - t_commit) * 1e3, 3),
            "render_ms": round(render_ms, 3),
            "total_ms": round((t_end - t0) * 1e3, 3),
        }
        words = f"{diagnosis.crop} {diagnosis.condition}".strip()
        log.info(
            "%s: %s (%s %.1f%%) in %.0f ms, record %s",
            diagnosis.verdict.value,
            words,
            diagnosis.best.slug,
            diagnosis.best.probability * 100,
            cycle.ms["total_ms"],
            record.id,
        )
        self._result_until = time.monotonic() + self.result_seconds
        self._set_state(State.SHOWING_RESULT)

    def _show_result(self, d: Diagnosis, photo: np.ndarray) -> float:
        if d.verdict is Verdict.RETAKE:
            self.leds.show(LedPattern.RETAKE)
            return self._show(screens.RetakeScreen(reason=d.reason, photo=photo, headline=d.condition, hint=d.advice))
        if d.verdict is Verdict.UNKNOWN:
            self.leds.show(LedPattern.UNKNOWN)
            return self._show(screens.UnknownScreen.of(d, photo))
        self.leds.show(LedPattern.HEALTHY if d.healthy else LedPattern.DISEASE)
        return self._show(screens.ResultScreen(diagnosis=d, photo=photo))

    # ----- stopping -----------------------------------------------------------------------
    def _shutdown(self) -> None:
        self.notifier.stopping()
        self._set_state(State.STOPPED)
        self._show(screens.MessageScreen(title=self._say("stopped.title"), body=self._say("stopped.body")))
        self.leds.show(LedPattern.OFF)
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.sync is not None:
            self.sync.stop()
        for part in (self.button, self.camera, self.leds, self.display, self.store):
            try:
                if part is not None:
                    part.close()
            except Exception:
                log.exception("closing %s failed", type(part).__name__)
