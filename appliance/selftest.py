"""`appliance selftest`: what a technician runs after assembly; a pass/fail line per part.

It drives the real adapters the config names (or the simulated ones with --simulate), so
the service must not hold the camera and pins at the same time: stop it first
(`systemctl stop leaf-appliance`), as the Ansible post-deploy check does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from . import screens, words
from .ports import LedPattern, Press
from .storage_rule import MIB, StorageLevel, storage_status

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


@dataclass(frozen=True)
class Check:
    part: str
    result: str
    detail: str


def _check_model(cfg) -> str:
    from .samples import sample_paths
    from .wiring import make_diagnoser

    diagnoser = make_diagnoser(cfg)
    info = diagnoser.info
    d = diagnoser.diagnose_file(sample_paths()[0])
    return (
        f"{info.name} {info.version}, sha256 {info.sha256[:12]} verified, {len(info.classes)} classes; "
        f"sample photo -> {d.best.slug} in {d.timings.inference_ms:.0f} ms"
    )


def _check_storage(cfg) -> str:
    """The record store and its folder, creating neither: a self-test on a laptop must leave no trace."""
    from .whereabouts import other_place
    from .wiring import open_store

    if not cfg.db_path.exists():
        folder = cfg.data_dir
        while not folder.exists() and folder != folder.parent:  # the store is made where it will live
            folder = folder.parent
        if not os.access(folder, os.W_OK):
            raise RuntimeError(
                f"{cfg.data_dir} cannot be created or written by this user ({folder} is not writable); "
                f"{other_place(cfg, False)}"
            )
        free_mb = _free_mb_above_floor(shutil.disk_usage(folder).free, cfg)
        return f"{cfg.db_path}: no records yet (made at first start), {free_mb:.0f} MB free, writable"
    with open_store(cfg) as store:
        store.check_integrity(full=True)
        free_bytes = store.free_bytes()
        count = store.count()
    probe = cfg.data_dir / f".selftest-{os.getpid()}"
    probe.write_bytes(b"x" * 4096)
    with probe.open("rb+") as fh:
        os.fsync(fh.fileno())
    probe.unlink()
    free_mb = _free_mb_above_floor(free_bytes, cfg)
    return f"{cfg.db_path}: integrity ok, {count} records, {free_mb:.0f} MB free, writable"


def _free_mb_above_floor(free_bytes: int, cfg) -> float:
    """Free space in MB; a failure when the storage rule would refuse new photos."""
    if storage_status(free_bytes, cfg.storage).level is StorageLevel.REFUSE:
        raise RuntimeError(f"only {free_bytes / MIB:.0f} MB free (floor {cfg.storage.refuse_below_mb} MB)")
    return free_bytes / MIB


def _check_camera(cfg) -> str:
    from .wiring import make_camera

    with make_camera(cfg) as cam:
        cam.start()
        frame = cam.capture()
    return f"{cfg.camera.kind}: frame {frame.shape[1]}x{frame.shape[0]}"


def _check_display(cfg) -> str:
    from .wiring import make_display

    with contextlib.ExitStack() as stack:
        where = ""
        if cfg.display.kind == "simulated" and not cfg.display_out_dir.is_dir():
            # The simulated screen is a folder of PNGs: drawn in a temporary one, so a self-test
            # before the first `appliance run --simulate` leaves nothing behind.
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leaf-selftest-")))
            cfg = replace(cfg, display=replace(cfg.display, out_dir=scratch))
            where = " (in a temporary folder: no simulated screen yet)"
        display = stack.enter_context(make_display(cfg))
        language = cfg.device.language
        checking = screens.MessageScreen(
            words.say("selftest.title", language), words.say("selftest.checking", language)
        )
        display.show(screens.render(checking, display.size, language))
    return f"{cfg.display.kind}: {display.size[0]}x{display.size[1]} frame shown{where}"


def _check_leds(cfg, pause: float, say: Callable[[str], None]) -> str:
    from .wiring import make_leds

    shown = [LedPattern.READY, LedPattern.BUSY, LedPattern.HEALTHY, LedPattern.DISEASE, LedPattern.RETAKE]
    simulated = cfg.leds.kind == "simulated"
    with make_leds(cfg, say=say if simulated else None) as leds:
        for pattern in shown:
            leds.show(pattern)
            time.sleep(pause)
        leds.show(LedPattern.OFF)
    where = "printed above as 'LED: …' lines" if simulated else "look at them"
    return f"{cfg.leds.kind}: showed {', '.join(p.value for p in shown)} ({where})"


def _check_button(cfg, timeout: float, say: Callable[[str], None]) -> str:
    from .wiring import make_button

    pressed: list[Press] = []
    event = threading.Event()

    def on_press(press: Press) -> None:
        pressed.append(press)
        event.set()

    with make_button(cfg) as button:
        button.start(on_press)
        simulated = cfg.button.kind == "simulated"
        if simulated:  # there is no button to press: say how to press the simulated one
            say(
                "Press the simulated button now: in another terminal run `appliance press` with the same "
                f"--config/--simulate flags as this self-test (waiting up to {timeout:.0f} s)..."
            )
        else:
            say(f"Press the button now (waiting up to {timeout:.0f} s)...")
        if not event.wait(timeout):
            if simulated:
                raise RuntimeError(
                    f"no press within {timeout:.0f} s: nothing reached the simulated button at "
                    f"{cfg.control_socket_path} (`appliance press` with this self-test's flags presses it)"
                )
            raise RuntimeError(f"no press within {timeout:.0f} s: check the wiring to GPIO {cfg.button.pin}")
    return f"{pressed[0].value} press received"


def run_selftest(
    cfg, *, interactive: bool, press_timeout: float = 30.0, led_pause: float = 0.6, say: Callable[[str], None] = print
) -> list[Check]:
    steps: list[tuple[str, Callable[[], str] | None]] = [
        ("model", lambda: _check_model(cfg)),
        ("storage", lambda: _check_storage(cfg)),
        ("camera", lambda: _check_camera(cfg)),
        ("display", lambda: _check_display(cfg)),
        ("leds", lambda: _check_leds(cfg, led_pause, say)),
        ("button", (lambda: _check_button(cfg, press_timeout, say)) if interactive else None),
    ]
    results = []
    for part, step in steps:
        if step is None:
            results.append(Check(part, SKIP, "skipped (--non-interactive)"))
            continue
        try:
            results.append(Check(part, PASS, step()))
        except Exception as exc:  # every failure is a line in the table, never a traceback
            results.append(Check(part, FAIL, str(exc) or type(exc).__name__))
    _show_outcome(cfg, results)
    return results


def outcome_screen(results: list[Check], language: str = words.ENGLISH) -> screens.MessageScreen:
    """How the self-test ended, for the display: it must not stay on "Checking the appliance…".

    The parts are named as the table in the terminal names them, for the technician.
    """
    failed = [c.part for c in results if c.result == FAIL]
    if failed:
        body = words.say("selftest.failed", language, names=", ".join(failed))
        return screens.MessageScreen(words.say("selftest.failed_title", language), body, tone="error")
    skipped = [c.part for c in results if c.result == SKIP]
    if skipped:
        body = words.say("selftest.passed_with_skips", language, names=", ".join(skipped))
    else:
        body = words.say("selftest.passed", language)
    return screens.MessageScreen(words.say("selftest.passed_title", language), body, tone="ok")


def _show_outcome(cfg, results: list[Check]) -> None:
    """Leaves the outcome on the display, when the display itself passed (else there is nothing to show it on)."""
    from .wiring import make_display

    if not any(c.part == "display" and c.result == PASS for c in results):
        return
    if cfg.display.kind == "simulated" and not cfg.display_out_dir.is_dir():
        return  # the check drew in a temporary folder: nobody is looking at a simulated screen yet
    with contextlib.suppress(Exception), make_display(cfg) as display:  # the table already says it all
        language = cfg.device.language
        display.show(screens.render(outcome_screen(results, language), display.size, language))


def format_table(results: list[Check], config_source: str | Path) -> str:
    width = max(len(c.part) for c in results)
    lines = [f"self-test ({config_source})", f"{'PART':<{width}}  RESULT  DETAIL"]
    lines += [f"{c.part:<{width}}  {c.result:<6}  {c.detail}" for c in results]
    failed = [c.part for c in results if c.result == FAIL]
    lines.append(f"FAILED: {', '.join(failed)}" if failed else "all checks passed")
    return "\n".join(lines)
