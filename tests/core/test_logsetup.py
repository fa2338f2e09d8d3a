from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.logsetup import setup_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def stderr_file(tmp_path: Path) -> Iterator[Any]:
    """A real file as stderr, so that its device and inode can stand for systemd's journal stream."""
    with (tmp_path / "stderr.log").open("w+", encoding="utf-8") as stream:
        yield stream


def ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if getattr(h, "_leaf_appliance_handler", False)]


def test_stderr_line_is_concise(stderr_file: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    setup_logging(stream=stderr_file)
    logging.getLogger("appliance.daemon").warning("camera missing")
    logging.getLogger("appliance.daemon").debug("not shown unless verbose")
    stderr_file.seek(0)
    lines = stderr_file.read().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d WARNING appliance\.daemon: camera missing", lines[0])


def test_calling_again_replaces_instead_of_duplicating(stderr_file: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    setup_logging(stream=stderr_file)
    setup_logging(verbose=True, stream=stderr_file)
    assert len(ours()) == 1
    assert logging.getLogger().level == logging.DEBUG
    logging.getLogger("appliance.x").debug("once")
    stderr_file.seek(0)
    assert stderr_file.read().count("once") == 1


def test_journal_is_used_under_systemd(stderr_file: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = pytest.importorskip("systemd.journal")
    stat = os.fstat(stderr_file.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
    handler = setup_logging(stream=stderr_file)
    assert isinstance(handler, journal.JournalHandler)
    assert ours() == [handler]
    sent: list[tuple[str, dict[str, Any]]] = []

    def sink(text: str, /, **fields: Any) -> None:  # stands in for the journal socket only
        sent.append((text, fields))

    handler.send = sink  # type: ignore[attr-defined]
    logging.getLogger("appliance.store").error("disk full")
    ((message, fields),) = sent
    assert message == "disk full"
    assert fields["SYSLOG_IDENTIFIER"] == "leaf-appliance"
    assert fields["PRIORITY"] == "3"


def test_a_journal_stream_that_is_not_our_stderr_is_ignored(stderr_file: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")  # inherited from a parent, stderr since redirected
    handler = setup_logging(stream=stderr_file)
    assert type(handler) is logging.StreamHandler
