"""`appliance selftest`, `config`, `history` and `press` as a technician or user runs them."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import threading

from appliance.cli import main
from appliance.config import load_config
from appliance.errors import ApplianceError
from appliance.export.formats import CSV_HEADER
from appliance.selftest import FAIL, PASS, SKIP, run_selftest
from tests.helpers.daemon import Running, simulated_config


def test_selftest_passes_on_the_simulated_appliance(tmp_path, capsys):
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(f"[device]\ndata_dir = '{tmp_path / 'data'}'\n")
    code = main(["selftest", "--simulate", "--non-interactive", "--config", str(cfg_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "all checks passed" in out
    for part in ("model", "storage", "camera", "display", "leds"):
        assert any(line.startswith(part) and PASS in line for line in out.splitlines()), part
    assert any(line.startswith("button") and SKIP in line for line in out.splitlines())


def test_selftest_reports_each_broken_part(tmp_path):
    missing = {"model": f"path = '{tmp_path / 'missing.onnx'}'", "camera": f"folder = '{tmp_path / 'none'}'"}
    cfg = simulated_config(tmp_path, **missing)
    results = {c.part: c for c in run_selftest(cfg, interactive=False, led_pause=0)}
    assert results["model"].result == FAIL and "not found" in results["model"].detail
    assert results["camera"].result == FAIL
    assert results["storage"].result == PASS


def test_selftest_button_waits_for_a_press(tmp_path):
    cfg = simulated_config(tmp_path)
    lines = []

    def press_soon() -> None:
        from appliance.hardware.sim_button import send_press

        # the self-test closes the button as soon as the press arrives, so the "ok" answer may be cut
        # off; what is checked here is that the press reached it
        with contextlib.suppress(OSError, ApplianceError):
            send_press(cfg.control_socket_path)

    def say(text):
        lines.append(text)
        if "Press the simulated button" in text:  # the LED check says its simulated LEDs here too
            threading.Timer(0.3, press_soon).start()

    results = {c.part: c for c in run_selftest(cfg, interactive=True, press_timeout=10, led_pause=0, say=say)}
    assert results["button"].result == PASS and "short" in results["button"].detail
    prompt = next(t for t in lines if not t.startswith("LED: "))
    assert prompt.startswith("Press the simulated button now: in another terminal run `appliance press`")


def test_selftest_in_simulation_does_not_blame_gpio_wiring(tmp_path):
    """A timeout in simulation said "check the wiring to GPIO 16"; there is no wiring to check."""
    cfg = simulated_config(tmp_path)
    results = {
        c.part: c for c in run_selftest(cfg, interactive=True, press_timeout=0.2, led_pause=0, say=lambda t: None)
    }
    assert results["button"].result == FAIL
    assert "GPIO" not in results["button"].detail
    assert f"nothing reached the simulated button at {cfg.control_socket_path}" in results["button"].detail


def test_config_check_and_show(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text("[button]\npin = 21\n")
    assert main(["config", "check", "--config", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["config", "show", "--config", str(good)]) == 0
    shown = capsys.readouterr().out
    (tmp_path / "shown.toml").write_text(shown)
    assert load_config(tmp_path / "shown.toml").button.pin == 21
    bad = tmp_path / "bad.toml"
    bad.write_text("[button]\npin = 40\nlong_press = 2\n")
    assert main(["config", "check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "button.pin" in err and "button.long_press" in err


def test_history_after_presses(tmp_path, capsys):
    cfg = simulated_config(tmp_path)
    cfg_file = tmp_path / "config.toml"
    with Running(cfg):
        from appliance.hardware.sim_button import send_press

        for _ in range(2):
            assert send_press(cfg.control_socket_path, wait=True, timeout=30).startswith("ok ")
        assert main(["press", "--simulate", "--config", str(cfg_file), "--wait"]) == 0
        assert capsys.readouterr().out.startswith("ok ")
    assert main(["history", "--simulate", "--config", str(cfg_file), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and rows[0]["top1_slug"] == "apple__apple_scab"  # newest first: third sample
    assert main(["history", "--simulate", "--config", str(cfg_file)]) == 0
    assert "Apple" in capsys.readouterr().out
    assert main(["history", "--simulate", "--config", str(cfg_file), "--csv", "-n", "2"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("\ufeff")  # the export's CSV, BOM and all
    parsed = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert list(parsed[0]) == list(CSV_HEADER) and len(parsed) == 2
    assert [p["id"] for p in parsed] == [r["id"] for r in rows[:2]]
    assert {p["photo_status"] for p in parsed} == {"included"}


def test_press_without_a_running_appliance(tmp_path, capsys):
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(f"[device]\ndata_dir = '{tmp_path}'\n")
    assert main(["press", "--simulate", "--config", str(cfg_file)]) == 2
    assert f"is `appliance run --config {cfg_file} --simulate` running?" in capsys.readouterr().err
    assert main(["press", "--config", str(cfg_file)]) == 2  # the config's folder: the other one is named
    err = capsys.readouterr().err
    assert "(the config's data folder)" in err and "add --simulate" in err and "Traceback" not in err


def test_read_only_commands_create_nothing_and_name_both_places(tmp_path, capsys, monkeypatch):
    """selftest and history on a laptop created /var/lib/leaf-appliance/diagnoses.sqlite3."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    data = tmp_path / "lib" / "leaf-appliance"
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(f"[device]\ndata_dir = '{data}'\n")
    assert main(["history", "--config", str(cfg_file)]) == 0
    err = capsys.readouterr().err
    assert f"no record store at {data / 'diagnoses.sqlite3'} (the config's data folder)" in err
    assert str(tmp_path / "xdg" / "leaf-appliance") in err and "add --simulate" in err
    main(["selftest", "--simulate", "--non-interactive", "--config", str(cfg_file)])
    storage = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("storage"))
    assert PASS in storage and "no records yet (made at first start)" in storage
    assert not (tmp_path / "lib").exists() and not (tmp_path / "xdg").exists()


def test_history_counts_are_checked_and_0_means_all(tmp_path, capsys):
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(f"[device]\ndata_dir = '{tmp_path}'\n")
    with contextlib.suppress(SystemExit):
        main(["history", "--config", str(cfg_file), "-n", "-5"])
    assert "-n/--limit: must be 0 (all) or more, got -5" in capsys.readouterr().err


def test_every_option_of_every_command_says_what_it_does() -> None:
    """`press --timeout`, `history --json`, `bench --runs` had no help; `config check --help` showed config's."""
    import argparse

    from appliance.cli import build_parser

    def walk(parser: argparse.ArgumentParser, name: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    yield from walk(sub, f"{name} {sub_name}")
            elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
                yield name, action

    missing = [
        f"{name} {'/'.join(a.option_strings) or a.dest}" for name, a in walk(build_parser(), "appliance") if not a.help
    ]
    assert missing == []
    check = (
        build_parser()._subparsers._group_actions[0].choices["config"]._subparsers._group_actions[0].choices["check"]
    )
    assert "every problem listed" in check.format_help()
