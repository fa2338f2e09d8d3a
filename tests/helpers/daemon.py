"""The real appliance in simulation, running in a thread: for the daemon and self-test tests."""

from __future__ import annotations

import threading
import time

from appliance.config import load_config
from appliance.daemon import State
from appliance.wiring import make_appliance


def simulated_config(tmp_path, **sections):
    """A simulated appliance's config under tmp_path; each keyword is a [section] with its TOML body."""
    text = "[device]\nid = 'test-pi'\ndata_dir = '%s'\n[daemon]\nresult_seconds = 2.0\n" % (tmp_path / "data")
    sections.setdefault("web", "enabled = false")  # --simulate turns the page on; tests that want it say so
    for name, body in sections.items():
        text += f"[{name}]\n{body}\n"
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path, simulate=True)


class Running:
    """An appliance running its loop in a thread, stopped (as SIGTERM would) on exit."""

    def __init__(self, cfg, **kw):
        self.app = make_appliance(cfg, **kw)
        self.app.retry_seconds = 0.2
        self.thread = threading.Thread(target=self.app.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_for(lambda: self.app.state in (State.IDLE, State.FAULT))
        return self.app

    def __exit__(self, *exc):
        self.app.request_stop()
        self.thread.join(10)
        assert not self.thread.is_alive()


def wait_for(cond, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")
