"""Tests of the appliance package's core: the daemon (on fakes and in simulation), the diagnosis and its
decision rule, screens, labels, config and the command line. The fakes of every port are below.

Small in-memory fakes of every port the daemon uses, as gpiozero's tests use its MockFactory.

Nothing here touches a camera, a GPIO pin, SQLite, onnxruntime, a stick or the network: the
state machine is tested on its own. Each fake records what it was asked, so tests assert on
what a person would see (screens, LEDs) and on what was kept (records).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from appliance.config import StorageConfig
from appliance.daemon import Appliance, State
from appliance.errors import CameraError, ModelError
from appliance.ports import ExportProgress, LedPattern, ModelInfo, Press
from appliance.result import Diagnosis, Quality, Ranked, RetakeReason, Timings, UnknownReason, Verdict
from appliance.vision.preprocess import InputSpec

FRAME = np.full((48, 64, 3), (40, 160, 60), dtype=np.uint8)
INFO = ModelInfo(Path("fake.onnx"), "ab" * 32, "fake", "9.9.9", "int8", ("apple__healthy",), InputSpec(), 1.0, 0.5, "")


def diagnosis(verdict: Verdict, reason: RetakeReason | UnknownReason | None = None) -> Diagnosis:
    healthy = verdict is Verdict.DIAGNOSIS
    return Diagnosis(
        verdict=verdict,
        reason=reason,
        top=(Ranked("apple__healthy", 0.9),),
        quality=Quality(120.0, 0.0, 0.0, 300.0, 0.5),
        timings=Timings(inference_ms=5.0),
        model_version=INFO.version,
        model_sha256=INFO.sha256,
        crop="Apple" if healthy else "",
        condition="Healthy" if healthy else "",
        healthy=healthy,
    )


class FakeCamera:
    def __init__(self) -> None:
        self.broken: str = ""  # a message: start and capture raise CameraError with it
        self.frame = FRAME  # what each capture returns (a copy)
        self.closed = False

    def start(self) -> None:
        if self.broken:
            raise CameraError(self.broken)

    def capture(self) -> np.ndarray:
        if self.broken:
            raise CameraError(self.broken)
        return self.frame.copy()

    def close(self) -> None:
        self.closed = True


class FakeButton:
    def __init__(self) -> None:
        self.on_press: Callable[[Press], None] | None = None
        self.closed = False

    def start(self, on_press: Callable[[Press], None]) -> None:
        self.on_press = on_press

    def close(self) -> None:
        self.closed = True


class FakeLeds:
    def __init__(self) -> None:
        self.shown: list[LedPattern] = []
        self.closed = False

    def show(self, pattern: LedPattern) -> None:
        self.shown.append(pattern)

    def close(self) -> None:
        self.closed = True


class FakeDisplay:
    size = (480, 320)

    def __init__(self) -> None:
        self.frames = 0
        self.wrong_shapes: list[tuple[int, ...]] = []  # the daemon logs a display error rather than fail
        self.closed = False

    def show(self, frame: np.ndarray) -> None:
        if frame.shape != (320, 480, 3) or frame.dtype != np.uint8:
            self.wrong_shapes.append(frame.shape)
        self.frames += 1

    def close(self) -> None:
        self.closed = True


class FakeDiagnoser:
    info = INFO
    language = "en"
    crops: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.answers: list[Diagnosis] = []
        self.gate: threading.Event | None = None  # when set, diagnose waits for it (a slow model)

    def diagnose(self, bgr: np.ndarray) -> Diagnosis:
        if self.gate is not None:
            self.gate.wait(5)
        return self.answers.pop(0) if self.answers else diagnosis(Verdict.DIAGNOSIS)


@dataclass(frozen=True)
class Saved:
    id: str


class FakeStore:
    def __init__(self) -> None:
        self.rows: list[tuple[Diagnosis, bytes]] = []
        self.free = 10 * 2**30
        self.fail: str = ""  # a message: record raises OSError with it
        self.closed = False

    def record(self, diagnosis: Diagnosis, jpeg: bytes, *, device_id: str, latency: dict[str, float]) -> Saved:
        if self.fail:
            raise OSError(self.fail)
        assert jpeg.startswith(b"\xff\xd8\xff") and device_id == "pi-test"
        self.rows.append((diagnosis, jpeg))
        return Saved(f"rec-{len(self.rows)}")

    def count(self) -> int:
        return len(self.rows)

    def free_bytes(self) -> int:
        return self.free

    def close(self) -> None:
        self.closed = True


class FakeNotifier:
    def __init__(self) -> None:
        self.events: list[str] = []

    def ready(self) -> None:
        self.events.append("READY=1")

    def status(self, text: str) -> None:
        self.events.append(f"STATUS={text}")

    def stopping(self) -> None:
        self.events.append("STOPPING=1")


@dataclass
class Outcome:
    rows: int = 0
    photos: int = 0
    already_on_stick: int = 0
    eject_message: str = ""
    safe_to_remove: bool = True


@dataclass
class Step:
    phase: str = "writing"
    records_done: int = 1
    records_total: int = 2
    bytes_done: int = 10
    bytes_total: int = 20


@dataclass
class FakeUsb:
    stick: Path | None = None
    fail: str = ""
    exported: int = 0
    made_room: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    def find(self) -> Path | None:
        return self.stick

    def export(self, store: FakeStore, stick: Path, progress: Callable[[ExportProgress], None]) -> Outcome:
        progress(Step())
        if self.fail:
            raise OSError(self.fail)
        self.exported += 1
        return Outcome(rows=store.count(), photos=store.count())

    def make_room(self, store: FakeStore) -> None:
        self.made_room += 1


class FakeSync:
    enabled = True

    def __init__(self) -> None:
        self.started = self.stopped = False
        self.new_records = 0

    def start(self) -> None:
        self.started = True

    def stop(self) -> bool:
        self.stopped = True
        return True

    def line(self, language: str = "en") -> str:
        return f"Offline, {self.new_records} waiting"

    def note_new_record(self) -> None:
        self.new_records += 1


@dataclass
class Rig:
    """One Appliance on fakes, running in its own thread like `appliance run`."""

    app: Appliance
    camera: FakeCamera
    button: FakeButton
    leds: FakeLeds
    display: FakeDisplay
    diagnoser: FakeDiagnoser
    store: FakeStore
    notifier: FakeNotifier
    usb: FakeUsb
    sync: FakeSync
    model_error: list[str]  # a message here: loading the model raises ModelError with it
    thread: threading.Thread | None = None

    def start(self) -> Rig:
        """Run the appliance's loop in its own thread; set up the fakes before this."""
        self.thread = threading.Thread(target=self.app.run, name="appliance", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.app.request_stop()
        if self.thread is not None:
            self.thread.join(5)
            assert not self.thread.is_alive(), "the appliance did not stop"

    def press(self, kind: Press = Press.SHORT, timeout: float = 5.0):
        before = self.app.cycles
        assert self.button.on_press is not None
        self.button.on_press(kind)
        cycle = self.app.wait_for_cycle(before, timeout)
        assert cycle is not None, "no press cycle finished"
        return cycle

    def wait_for(self, state: State, timeout: float = 5.0) -> None:
        pause = threading.Event()
        for _ in range(int(timeout / 0.01)):
            if self.app.state is state:
                return
            pause.wait(0.01)
        raise AssertionError(f"state is {self.app.state}, not {state}")

    def screen_names(self) -> list[str]:
        return [type(s).__name__ for s in self.app.screens_shown]


@pytest.fixture
def rig() -> Iterator[Rig]:
    camera, button, leds, display = FakeCamera(), FakeButton(), FakeLeds(), FakeDisplay()
    diagnoser, store, notifier, usb, sync = FakeDiagnoser(), FakeStore(), FakeNotifier(), FakeUsb(), FakeSync()
    model_error: list[str] = []

    def load() -> FakeDiagnoser:
        if model_error:
            raise ModelError(model_error[0])
        return diagnoser

    app = Appliance(
        camera=camera,
        button=button,
        leds=leds,
        display=display,
        load_diagnoser=load,
        open_store=lambda: store,
        notifier=notifier,
        device_id="pi-test",
        storage=StorageConfig(),  # the shipped defaults: warn below 500 MB, refuse below 100 MB
        result_seconds=0.2,
        retry_seconds=0.05,
        tick_seconds=0.01,
        usb=usb,
        sync=sync,
    )
    rig = Rig(app, camera, button, leds, display, diagnoser, store, notifier, usb, sync, model_error)
    yield rig
    rig.stop()
