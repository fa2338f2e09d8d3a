"""The composition root: turns a Config into the adapters and core objects it names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .classifier import OnnxClassifier
from .diagnosis import Diagnoser, resolve_crops
from .errors import ConfigError, ModelError
from .vision.quality import QualityThresholds


def _set(path: object) -> Path | None:
    """Config paths left empty mean "the default"."""
    text = str(path or "")
    return Path(text) if text not in ("", ".") else None


def _classifier(cfg, model: str | None = None) -> OnnxClassifier:
    path = Path(model) if model else _set(cfg.model.path)
    return OnnxClassifier(path, sha256="" if model else cfg.model.sha256, threads=cfg.model.threads)


def make_diagnoser(
    cfg, model: str | None = None, top_k: int = 3, crops: list[str] | tuple[str, ...] | None = None
) -> Diagnoser:
    """The Diagnoser the config describes; ``crops`` (``diagnose --crop``) overrides [diagnosis] crops.

    Raises ConfigError when a crop is not one the model knows (see diagnosis.resolve_crops).
    """
    clf = _classifier(cfg, model)
    q = cfg.quality
    thresholds = QualityThresholds(
        min_brightness=q.min_brightness,
        max_brightness=q.max_brightness,
        min_sharpness=q.min_sharpness,
        min_plant_fraction=q.min_plant_fraction,
    )
    chosen = crops if crops is not None else cfg.diagnosis.crops
    return Diagnoser(
        clf, clf.info, thresholds, cfg.model.refuse_below or None, cfg.device.language, top_k, crops=chosen
    )


def check_crops(cfg) -> None:
    """`config check`: the configured crops against the model's classes; raises ConfigError (message
    starting "diagnosis.crops: ") naming the crops the model knows. Nothing to check when the key is absent."""
    if cfg.diagnosis.crops is None:
        return
    try:
        info = _classifier(cfg).info
    except ModelError as exc:
        raise ConfigError(f"diagnosis.crops: cannot be checked against the model: {exc}") from None
    resolve_crops(cfg.diagnosis.crops, info.classes)


def make_camera(cfg):
    c = cfg.camera
    if c.kind == "simulated":
        from .hardware.camera_sim import SimulatedCamera
        from .samples import samples_dir

        size = tuple(int(n) for n in c.simulated_size.split("x")) if c.simulated_size else None
        return SimulatedCamera(_set(c.folder) or samples_dir(), frame_size=size)
    if c.kind == "opencv":
        from .hardware.camera_opencv import OpenCVCamera

        return OpenCVCamera(index=c.opencv_index, width=c.width, height=c.height, rotation=c.rotate)
    from .hardware.camera_picamera2 import Picamera2Camera

    return Picamera2Camera(width=c.width, height=c.height, autofocus=c.autofocus, rotation=c.rotate)


def make_button(cfg, stdin: bool = False):
    b = cfg.button
    if b.kind == "simulated":
        from .hardware.sim_button import SimulatedButton

        return SimulatedButton(socket_path=cfg.control_socket_path, stdin=stdin)
    from .hardware.gpio import GpioButton

    return GpioButton(pin=b.pin, pull_up=b.pull_up, bounce_ms=b.bounce_ms, long_press_s=b.long_press_s)


def make_leds(cfg, say: Callable[[str], None] | None = None):
    """The LEDs the config names; simulated ones log each change, or hand it to ``say`` (e.g. print)."""
    c = cfg.leds
    if c.kind == "simulated":
        from .hardware.sim_leds import SimulatedLeds, describe

        return SimulatedLeds() if say is None else SimulatedLeds(lambda p: say(describe(p)))
    from .hardware.gpio import GpioLeds, RgbLeds

    if c.kind == "rgb":
        return RgbLeds(red=c.red_pin, green=c.green_pin, blue=c.blue_pin, active_high=c.active_high)
    return GpioLeds(green=c.green_pin, amber=c.amber_pin, red=c.red_pin, active_high=c.active_high)


def make_display(cfg):
    """The display the config names, turned by display.rotate (the screens are drawn for the turned size)."""
    from .hardware.rotated_display import RotatedDisplay

    d = cfg.display
    if d.kind == "simulated":
        from .config import SIMULATED_DISPLAY_SIZE
        from .hardware.sim_display import SimulatedDisplay

        width, height = d.width or SIMULATED_DISPLAY_SIZE[0], d.height or SIMULATED_DISPLAY_SIZE[1]
        panel = SimulatedDisplay(cfg.display_out_dir, width=width, height=height)
    else:
        from .hardware.framebuffer import FramebufferDisplay

        panel = FramebufferDisplay(device=str(d.device), width=d.width or None, height=d.height or None)
    return RotatedDisplay(panel, d.rotate) if d.rotate else panel


def open_store(cfg):
    from .store import SqliteStore

    return SqliteStore.open(cfg.db_path, cfg.data_dir)


class StickExport:
    """The export package as the daemon's UsbExport port, bound to one Config."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg

    def find(self) -> Path | None:
        from .export.media import find_stick

        return find_stick(self.cfg)

    def export(self, store, stick: Path, progress):
        from .export import Exporter

        return Exporter(store, self.cfg).run(stick, progress=progress)

    def make_room(self, store) -> None:
        from .export.policy import make_room

        make_room(store, self.cfg)


def make_appliance(cfg, *, stdin: bool = False, on_state=None):
    """Everything `appliance run` needs, built from one validated Config."""
    from .daemon import Appliance
    from .hardware.sim_button import SimulatedButton
    from .notify import Notifier, WatchdogGate
    from .sync import SyncWorker

    notifier = Notifier()
    inner_button = make_button(cfg, stdin=stdin)
    button, leds, display = inner_button, make_leds(cfg), make_display(cfg)
    page = None
    if cfg.web.enabled:  # the page watches the display and LEDs and presses like the button
        from .web.button import ButtonWithPage
        from .web.server import WebPage
        from .web.watch import WatchedDisplay, WatchedLeds

        display, leds = WatchedDisplay(display), WatchedLeds(leds)
        page = WebPage(cfg.web.listen, cfg.web.pin, display, leds)
        button = ButtonWithPage(inner_button, page)
    app = Appliance(
        camera=make_camera(cfg),
        button=button,
        leds=leds,
        display=display,
        load_diagnoser=lambda: make_diagnoser(cfg),
        open_store=lambda: open_store(cfg),
        notifier=notifier,
        watchdog=WatchdogGate(notifier) if notifier.watchdog_interval() else None,
        device_id=cfg.device_id,
        result_seconds=cfg.daemon.result_seconds,
        storage=cfg.storage,
        on_state=on_state,
        usb=StickExport(cfg),
        sync=SyncWorker(cfg),
        language=cfg.device.language,
    )
    if isinstance(inner_button, SimulatedButton):  # `appliance press --wait` answers with the outcome
        inner_button.set_result_waiter(app.result_waiter)
    if page is not None:
        page.attach(app)
    return app


def web_url(app) -> str | None:
    """The page's address when [web] is enabled (for the run banner), else None."""
    page = getattr(app.button, "web", None)
    return page.url if page is not None else None
