from __future__ import annotations

import re
import socket
import tomllib
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest

from appliance.config import (
    Config,
    DaemonConfig,
    DeviceConfig,
    ModelConfig,
    config_check,
    default_pins,
    load_config,
    schema,
    simulated_data_dir,
)
from appliance.config import loading as config_loading
from appliance.errors import ConfigError

EXAMPLE = Path(str(resources.files("appliance") / "data" / "config.example.toml"))


@pytest.fixture(autouse=True)
def no_system_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the real /etc file, whatever machine they run on."""
    monkeypatch.setattr(config_loading, "DEFAULT_CONFIG_PATH", tmp_path / "etc" / "config.toml")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    lines = str(caught.value).splitlines()
    assert lines == config_check(path)
    for line in lines:
        assert line.startswith(f"{path}: "), line
    return lines


# ---------------------------------------------------------------- good files


def test_no_file_anywhere_gives_the_defaults() -> None:
    assert load_config(None) == Config()
    assert config_check(None) == []


def test_default_path_is_read_when_it_exists(tmp_path: Path) -> None:
    config_loading.DEFAULT_CONFIG_PATH.parent.mkdir()
    config_loading.DEFAULT_CONFIG_PATH.write_text("[button]\npin = 21\n")
    assert load_config(None).button.pin == 21


def test_a_partial_file_changes_only_what_it_sets(tmp_path: Path) -> None:
    path = write(tmp_path, '[button]\npin = 21\n[daemon]\nresult_seconds = 30\n[device]\ndata_dir = "/srv/leaf"\n')
    config = load_config(path)
    assert config.button.pin == 21
    assert config.daemon.result_seconds == 30.0
    assert isinstance(config.daemon.result_seconds, float)  # floats accept ints
    assert config.device.data_dir == Path("/srv/leaf")
    assert config.leds == Config().leds
    assert config_check(path) == []


def test_example_file_loads_to_the_defaults() -> None:
    assert load_config(EXAMPLE) == Config()


def test_example_file_shows_every_key_with_a_comment(tmp_path: Path) -> None:
    # A key whose default is to be left out (diagnosis.crops) is shown commented out; uncommented it is valid.
    text = re.sub(r"^# (\w+ = )", r"\1", EXAMPLE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    parsed = tomllib.loads(text)
    documented = {f"{section}.{key}" for section, table in parsed.items() for key in table}
    assert documented == {spec.dotted for spec in schema()}
    assert config_check(write(tmp_path, text)) == []
    for spec in schema():
        line = next(line for line in text.splitlines() if line.startswith(f"{spec.name} = "))
        assert re.search(r"#\s*\S", line), f"{spec.dotted} has no comment in the example"


def test_defaults_round_trip_through_to_toml(tmp_path: Path) -> None:
    for comments in (True, False):
        assert load_config(write(tmp_path, Config().to_toml(comments=comments))) == Config()


def test_a_changed_config_round_trips_through_to_toml(tmp_path: Path) -> None:
    config = replace(
        Config(),
        device=DeviceConfig(id="farm-7.pi_2", data_dir=Path('/srv/we"ird\\dir'), language="en-GB"),
        model=ModelConfig(path=Path("/opt/models/leaf.onnx"), sha256="ab" * 32, threads=4, refuse_below=0.5),
        daemon=DaemonConfig(result_seconds=2.5, control_socket=Path("/run/leaf/control.sock")),
    )
    assert load_config(write(tmp_path, config.to_toml())) == config


def test_empty_strings_mean_the_documented_fallbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(write(tmp_path, '[device]\ndata_dir = "/data"\nid = ""\n[display]\nout_dir = ""\n'))
    assert config.model.path is None
    assert config.db_path == Path("/data/diagnoses.sqlite3")
    assert config.photos_dir == Path("/data/photos")
    assert config.display_out_dir == Path("/data/display")
    assert config.control_socket_path == Path("/data/control.sock")
    assert config.device_id == socket.gethostname()

    config = load_config(
        write(
            tmp_path,
            '[device]\nid = "pi-42"\n[display]\nout_dir = "/tmp/frames"\n[daemon]\ncontrol_socket = "/run/c"\n',
        )
    )
    assert config.device_id == "pi-42"
    assert config.display_out_dir == Path("/tmp/frames")
    assert config.control_socket_path == Path("/run/c")


def test_home_relative_paths_are_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load_config(write(tmp_path, '[camera]\nfolder = "~/leaves"\n'))
    assert config.camera.folder == tmp_path / "home" / "leaves"


def test_sha256_is_accepted_in_either_case_and_kept_lowercase(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, f'[model]\nsha256 = "{"AB" * 32}"\n'))
    assert config.model.sha256 == "ab" * 32


def test_defaults_for_pins_and_display_are_readable() -> None:
    assert default_pins() == {
        "button.pin": 16,
        "leds.green_pin": 5,
        "leds.amber_pin": 6,
        "leds.red_pin": 13,
        "leds.blue_pin": 19,
    }
    display = {spec.name: spec.default for spec in schema() if spec.section == "display"}
    assert display["device"] == Path("/dev/fb0")
    assert display["kind"] == "framebuffer"


# ---------------------------------------------------------------- mistakes


def test_the_message_names_file_key_and_reason(tmp_path: Path) -> None:
    path = write(tmp_path, "[button]\npin = 40\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: button.pin: must be a BCM GPIO number 0-27, got 40")):
        load_config(path)


def test_unknown_section_suggests_the_closest(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "[buton]\npin = 3\n") == [
        f"{tmp_path}/config.toml: buton: unknown section; did you mean [button]?"
    ]


def test_unknown_section_without_a_close_one_lists_the_sections(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, "[weather]\nrain = true\n")
    assert "weather: unknown section" in line
    assert "device, model, diagnosis, quality, camera, button, leds, display, daemon, storage" in line


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, '[device]\nlangauge = "en"\n')
    assert line.endswith("device.langauge: unknown key; did you mean 'device.language'?")


def test_key_under_the_wrong_section_points_to_the_right_one(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, "[camera]\nbounce_ms = 10\n")
    assert "camera.bounce_ms: unknown key in [camera]; did you mean 'button.bounce_ms' under [button]?" in line


def test_key_outside_any_section_points_to_its_section(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, "pin = 16\n")
    assert "pin: keys belong in a section; did you mean 'button.pin' under [button]?" in line


def test_unknown_key_without_a_close_one_lists_the_keys(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, "[storage]\ncolour = 1\n")
    assert "storage.colour: unknown key; [storage] has: warn_below_mb, refuse_below_mb" in line


def test_a_nested_table_is_an_unknown_key(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, "[button.extra]\nx = 1\n")
    assert "button.extra: unknown key" in line


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[button]\npin = true", "button.pin", "must be a whole number, got true (a boolean)"),
        ('[button]\npin = "16"', "button.pin", 'must be a whole number, got "16" (a string)'),
        ("[button]\npin = 16.0", "button.pin", "must be a whole number, got 16.0 (a number)"),
        ("[button]\nlong_press_s = false", "button.long_press_s", "must be a number, got false (a boolean)"),
        ('[button]\npull_up = "yes"', "button.pull_up", 'must be true or false, got "yes" (a string)'),
        ("[device]\nlanguage = 1", "device.language", "must be a string, got 1 (an integer)"),
        ("[device]\ndata_dir = 5", "device.data_dir", "must be a path in quotes, got 5 (an integer)"),
        ("[display]\nheight = [320]", "display.height", "must be a whole number, got an array"),
        ("[storage]\nwarn_below_mb = 1979-05-27", "storage.warn_below_mb", "must be a whole number, got a date/time"),
        ("button = 3", "button", "must be a table written as [button], got an integer"),
        ("[quality]\nmin_sharpness = nan", "quality.min_sharpness", "must be a finite number, got nan"),
    ],
)
def test_wrong_types_are_named(tmp_path: Path, text: str, key: str, reason: str) -> None:
    assert problems_of(tmp_path, text + "\n") == [f"{tmp_path}/config.toml: {key}: {reason}"]


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[model]\nthreads = 0", "model.threads", "must be between 1 and 8, got 0"),
        ("[model]\nrefuse_below = 0.01", "model.refuse_below", "must be 0 (the model's own threshold) or between"),
        ('[model]\nsha256 = "abc"', "model.sha256", "exactly 64 hex digits"),
        ("[quality]\nmin_plant_fraction = 1.5", "quality.min_plant_fraction", "must be between 0 and 1, got 1.5"),
        ("[quality]\nmin_sharpness = -1", "quality.min_sharpness", "must be at least 0, got -1.0"),
        ("[camera]\nwidth = 10000", "camera.width", "must be between 64 and 9152, got 10000"),
        ("[camera]\nopencv_index = 64", "camera.opencv_index", "must be between 0 and 63"),
        ("[button]\nlong_press_s = 0.1", "button.long_press_s", "must be between 0.5 and 10, got 0.1"),
        ("[leds]\nred_pin = -1", "leds.red_pin", "must be a BCM GPIO number 0-27, got -1"),
        ("[display]\nheight = 100", "display.height", "must be 0 (automatic) or between 240 and 2160, got 100"),
        ("[display]\nrotate = 45", "display.rotate", "must be one of 0, 90, 180, 270, got 45"),
        ("[daemon]\nresult_seconds = 1", "daemon.result_seconds", "must be between 2 and 600, got 1.0"),
        ("[storage]\nrefuse_below_mb = -5", "storage.refuse_below_mb", "must be at least 0, got -5"),
        ('[device]\nid = "my pi"', "device.id", "must be empty (use the hostname) or 1-64 characters"),
        ('[device]\nid = "' + "x" * 65 + '"', "device.id", "1-64 characters"),
        ('[device]\nlanguage = "EN"', "device.language", "must be a language the appliance has words in (en"),
        # "fr" once fell back to English without a word; a language with no words is refused, naming those there are.
        (
            '[device]\nlanguage = "de"',
            "device.language",
            'must be a language the appliance has words in (en, es, fr, hi, pt, sw), got "de"',
        ),
        ('[device]\ndata_dir = "var/lib"', "device.data_dir", 'must be an absolute path (starting with "/" or "~/")'),
        ('[device]\ndata_dir = ""', "device.data_dir", "must not be empty"),
        ('[camera]\nkind = "usb"', "camera.kind", 'must be one of "picamera2", "opencv", "simulated", got "usb"'),
        ('[leds]\nkind = "neopixel"', "leds.kind", 'must be one of "gpio", "rgb", "simulated", got "neopixel"'),
    ],
)
def test_invalid_values_are_named(tmp_path: Path, text: str, key: str, reason: str) -> None:
    (line,) = problems_of(tmp_path, text + "\n")
    assert line.startswith(f"{tmp_path}/config.toml: {key}: "), line
    assert reason in line


def test_max_brightness_must_exceed_min(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, "[quality]\nmin_brightness = 200\nmax_brightness = 200\n")
    assert "quality.max_brightness: must be greater than quality.min_brightness (200.0), got 200.0" in line


def test_refuse_below_must_not_exceed_warn_below(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, "[storage]\nwarn_below_mb = 50\n")
    assert "storage.refuse_below_mb: must be at most storage.warn_below_mb (50), got 100" in line


def test_led_pin_on_the_button_pin_names_both_keys(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, "[leds]\namber_pin = 16\n")
    assert "leds.amber_pin: GPIO 16 is also used by button.pin" in line


def test_rgb_leds_check_the_blue_pin_and_ignore_amber(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, '[leds]\nkind = "rgb"\nblue_pin = 5\n')
    assert "leds.blue_pin: GPIO 5 is also used by leds.green_pin" in line
    assert load_config(write(tmp_path, '[leds]\nkind = "rgb"\namber_pin = 16\n')).leds.amber_pin == 16


def test_pins_of_unused_parts_may_overlap(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "[leds]\nblue_pin = 16\n")).leds.blue_pin == 16  # gpio kind has no blue LED
    text = '[button]\nkind = "simulated"\n[leds]\ngreen_pin = 16\n'
    assert load_config(write(tmp_path, text)).leds.green_pin == 16


def test_a_cross_rule_is_skipped_when_one_of_its_keys_is_already_wrong(tmp_path: Path) -> None:
    lines = problems_of(tmp_path, "[button]\npin = 99\n[leds]\namber_pin = 99\n")
    assert len(lines) == 2
    assert all("BCM GPIO number" in line for line in lines)


def test_a_control_socket_path_too_long_for_unix_is_refused(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, f'[device]\ndata_dir = "/{"d" * 120}"\n')
    assert "daemon.control_socket:" in line and "set daemon.control_socket to a shorter path" in line


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    lines = problems_of(
        tmp_path,
        '[buton]\n[device]\nlanguage = "english"\n[button]\npin = 40\n'
        '[leds]\nkind = "disco"\n[storage]\nwarn_below_mb = 1\n',
    )
    keys = [line.split(": ")[1] for line in lines]
    assert keys == ["buton", "device.language", "button.pin", "leds.kind", "storage.refuse_below_mb"]


def test_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, "[button]\npin = 16\nkind = gpio\n")
    assert re.fullmatch(rf"{re.escape(str(tmp_path))}/config\.toml: TOML syntax error at line 3, column 8: .+", line)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: file not found")):
        load_config(missing)


def test_unreadable_content_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[device]\nid = "\xff"\n')
    with pytest.raises(ConfigError, match=re.escape(f"{path}: is not UTF-8 text")):
        load_config(path)
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


# ---------------------------------------------------------------- simulation


def test_simulate_swaps_hardware_and_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    config = load_config(write(tmp_path, '[camera]\nkind = "opencv"\n[button]\npin = 21\n'), simulate=True)
    assert (config.camera.kind, config.button.kind, config.leds.kind, config.display.kind) == ("simulated",) * 4
    assert config.button.pin == 21
    assert config.data_dir == tmp_path / "xdg" / "leaf-appliance"
    assert load_config(None, simulate=True).data_dir == tmp_path / "xdg" / "leaf-appliance"


def test_simulate_keeps_a_data_dir_the_file_sets(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[device]\ndata_dir = "/srv/sim"\n'), simulate=True)
    assert config.data_dir == Path("/srv/sim")
    assert config.camera.kind == "simulated"


def test_simulated_data_dir_falls_back_to_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert simulated_data_dir() == tmp_path / ".local" / "share" / "leaf-appliance"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")  # not absolute: the XDG spec says ignore it
    assert simulated_data_dir() == tmp_path / ".local" / "share" / "leaf-appliance"


def test_simulate_does_not_hide_mistakes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"button\.pin: must be a BCM GPIO number"):
        load_config(write(tmp_path, "[button]\npin = 99\n"), simulate=True)


# ---------------------------------------------------------------- [export]


def test_export_defaults_and_a_configured_folder(tmp_path: Path) -> None:
    export = load_config(None).export
    assert (export.auto_on_insert, export.media_root, export.folder, export.prune_exported_photos) == (
        True,
        Path("/media"),
        None,
        True,
    )
    text = '[export]\nauto_on_insert = false\nmedia_root = "/mnt/usb"\nfolder = "/srv/stick"\n'
    text += "prune_exported_photos = false\n"
    export = load_config(write(tmp_path, text)).export
    assert (export.auto_on_insert, export.media_root, export.folder, export.prune_exported_photos) == (
        False,
        Path("/mnt/usb"),
        Path("/srv/stick"),
        False,
    )


def test_simulate_exports_to_a_folder_beside_the_data_dir_unless_one_is_set(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[device]\ndata_dir = "/srv/sim"\n'), simulate=True)
    assert config.export.folder == Path("/srv/sim-usb-stick")
    config = load_config(write(tmp_path, '[export]\nfolder = "/srv/stick"\n'), simulate=True)
    assert config.export.folder == Path("/srv/stick")
    assert load_config(write(tmp_path, '[device]\ndata_dir = "/srv/sim"\n')).export.folder is None


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[export]\nauto_on_insert = "yes"', "export.auto_on_insert", 'must be true or false, got "yes"'),
        ('[export]\nmedia_root = "media"', "export.media_root", "must be an absolute path"),
        ('[export]\nmedia_root = ""', "export.media_root", "must not be empty"),
        ("[export]\nfolder = 3", "export.folder", "must be a path in quotes, got 3"),
        ("[export]\nprune_exported_photos = 1", "export.prune_exported_photos", "must be true or false, got 1"),
        ("[export]\nauto_insert = true", "export.auto_insert", "did you mean 'export.auto_on_insert'?"),
    ],
)
def test_export_mistakes_are_named(tmp_path: Path, text: str, key: str, reason: str) -> None:
    (line,) = problems_of(tmp_path, text + "\n")
    assert line.startswith(f"{tmp_path}/config.toml: {key}: "), line
    assert reason in line


# ---------------------------------------------------------------- [sync]


def test_sync_is_off_by_default_and_the_token_lives_in_the_data_dir(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[device]\ndata_dir = "/data"\n'))
    assert config.sync.enabled is False
    assert config.sync.url == ""
    assert (config.sync.include_photos, config.sync.batch_size, config.sync.interval_s) == ("thumbnail", 100, 300)
    assert config.sync.ca_file is None
    assert config.sync_token_path == Path("/data/sync.token")


def test_a_sync_section_round_trips(tmp_path: Path) -> None:
    text = (
        '[sync]\nenabled = true\nurl = "https://collector.example.org/leaf"\ntoken_file = "/etc/leaf/sync.token"\n'
        'ca_file = "/etc/leaf/ca.pem"\ninterval_s = 60\nbatch_size = 20\ninclude_photos = "full"\ntimeout_s = 5\n'
    )
    config = load_config(write(tmp_path, text))
    assert config.sync.url == "https://collector.example.org/leaf"
    assert config.sync_token_path == Path("/etc/leaf/sync.token")
    assert config.sync.ca_file == Path("/etc/leaf/ca.pem")
    assert config.sync.timeout_s == 5.0
    assert load_config(write(tmp_path, config.to_toml())) == config


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:8080/", "http://[::1]:8080", "https://10.0.0.5", ""]
)
def test_plain_http_is_fine_only_to_this_machine(tmp_path: Path, url: str) -> None:
    assert config_check(write(tmp_path, f'[sync]\nurl = "{url}"\n')) == []


def test_plain_http_to_another_host_needs_allow_insecure_http(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, '[sync]\nenabled = true\nurl = "http://10.0.0.5:8080"\n')
    assert "sync.url: must use https:// for a host other than this machine" in line
    assert "sync.allow_insecure_http = true" in line
    assert config_check(write(tmp_path, '[sync]\nurl = "http://10.0.0.5"\nallow_insecure_http = true\n')) == []


def test_sync_enabled_without_a_url_is_refused(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, "[sync]\nenabled = true\n")
    assert "sync.url: must be set when sync.enabled = true" in line


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[sync]\nurl = "ftp://collector"', "sync.url", "must start with https:// and name a host"),
        ('[sync]\nurl = "https://"', "sync.url", "must start with https:// and name a host"),
        ('[sync]\nurl = "collector.example.org"', "sync.url", "must start with https://"),
        ('[sync]\nurl = "https://me:pw@collector"', "sync.url", "must not contain a user name or password"),
        ('[sync]\nurl = "https://collector/?x=1"', "sync.url", "must not have a ?query or #fragment"),
        ('[sync]\nurl = "https://collector:99999"', "sync.url", "must be a URL like"),
        ('[sync]\ninclude_photos = "all"', "sync.include_photos", 'must be one of "none", "thumbnail", "full"'),
        ("[sync]\ninterval_s = 5", "sync.interval_s", "must be between 10 and 86400, got 5"),
        ("[sync]\nbatch_size = 0", "sync.batch_size", "must be between 1 and 1000, got 0"),
        ("[sync]\ntimeout_s = 0.5", "sync.timeout_s", "must be between 1 and 300, got 0.5"),
        ('[sync]\ntoken_file = "sync.token"', "sync.token_file", "must be an absolute path"),
        ('[sync]\ntoken = "leaf_abc"', "sync.token", "unknown key; did you mean 'sync.token_file'?"),
    ],
)
def test_invalid_sync_values_are_named(tmp_path: Path, text: str, key: str, reason: str) -> None:
    (line,) = problems_of(tmp_path, text + "\n")
    assert line.startswith(f"{tmp_path}/config.toml: {key}: "), line
    assert reason in line
