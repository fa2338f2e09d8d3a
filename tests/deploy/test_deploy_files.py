"""Static checks that the hardware guide, the wiring diagram, the Ansible defaults, the config
template and the systemd units agree, so a technician never wires or deploys from a stale page.

Plain text parsing only: no network, no root, no Ansible needed.
"""

from __future__ import annotations

import json
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.config import schema as config_schema
from tests.helpers.paths import REPO

ROLE = REPO / "deploy" / "roles" / "leaf_appliance"
DEFAULTS = ROLE / "defaults" / "main.yml"
ROLE_VARS = ROLE / "vars" / "main.yml"
CONFIG_TEMPLATE = ROLE / "templates" / "config.toml.j2"
HARDWARE_GUIDE = REPO / "hardware" / "README.md"
TECHNICIAN_GUIDE = REPO / "deploy" / "TECHNICIAN.md"
WIRING_SVG = REPO / "hardware" / "wiring.svg"
MAIN_UNIT = REPO / "systemd" / "leaf-appliance.service"
EXPORT_UNIT = REPO / "systemd" / "leaf-appliance-export@.service"
UDEV_RULE = REPO / "systemd" / "90-leaf-appliance-usb-export.rules"
WHEELHOUSE_SCRIPT = REPO / "deploy" / "build-wheelhouse.sh"

# Physical header pin of every BCM GPIO on the 40-pin header (Pi 2 and later, Pi 4, Pi 5).
BCM_TO_PIN = {
    2: 3, 3: 5, 4: 7, 17: 11, 27: 13, 22: 15, 10: 19, 9: 21, 11: 23, 0: 27, 5: 29, 6: 31, 13: 33,
    19: 35, 26: 37, 14: 8, 15: 10, 18: 12, 23: 16, 24: 18, 25: 22, 8: 24, 7: 26, 1: 28, 12: 32,
    16: 36, 20: 38, 21: 40,
}  # fmt: skip
GROUND_PINS = {6, 9, 14, 20, 25, 30, 34, 39}

# The app's config keys and defaults, read from the app itself (the one place they live). The
# template renders these sections; [model] path/sha256 come from the model variables, so only
# their presence is checked. Later sections ([sync], [export]) go through leaf_appliance_config_extra.
TEMPLATE_SECTIONS = (
    "device", "model", "diagnosis", "quality", "camera", "button", "leds", "display", "daemon", "storage",
)  # fmt: skip
FROM_MODEL_VARIABLES = {("model", "path"), ("model", "sha256")}
# Keys whose role variable is not leaf_appliance_<section>_<key>.
VARIABLE_NAMES = {("diagnosis", "crops"): "leaf_appliance_crops"}


def variable_name(section: str, key: str) -> str:
    return VARIABLE_NAMES.get((section, key), f"leaf_appliance_{section}_{key}")


def _as_template_value(default: object, type_name: str = "") -> object:
    if default is None:
        return [] if type_name.startswith("list") else ""  # [] = the key is left out of config.toml
    return str(default) if isinstance(default, Path) else default


APP_DEFAULTS: dict[str, dict[str, object]] = {section: {} for section in TEMPLATE_SECTIONS}
for _spec in config_schema():
    if _spec.section in APP_DEFAULTS:
        APP_DEFAULTS[_spec.section][_spec.name] = (
            None
            if (_spec.section, _spec.name) in FROM_MODEL_VARIABLES
            else _as_template_value(_spec.default, _spec.type_name)
        )

_SCALAR = re.compile(r"^(leaf_appliance_\w+):[ \t]*(.*?)[ \t]*$")


def _yaml_scalar(text: str) -> object:
    """The few YAML scalar forms the defaults file uses: quoted strings, ints, floats, booleans."""
    if text[:1] in "\"'":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_role_variables(path: Path) -> dict[str, object]:
    """Top-level leaf_appliance_* variables: scalars as values, block lists as lists of strings."""
    variables: dict[str, object] = {}
    current_list: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if current_list is not None and line.startswith("  - "):
            current_list.append(str(_yaml_scalar(line[4:].strip())))
            continue
        current_list = None
        match = _SCALAR.match(line)
        if not match:
            continue
        name, value = match.groups()
        if value == "":
            current_list = variables.setdefault(name, [])  # type: ignore[assignment]
        elif value == "[]":
            variables[name] = []
        else:
            variables[name] = _yaml_scalar(value)
    return variables


def read_markdown_table(path: Path, first_header: str) -> list[dict[str, str]]:
    """Rows of the Markdown table whose first header cell is first_header."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_header:
            header = cells
            rows = []
            for row_line in lines[index + 2 :]:
                if not row_line.startswith("|"):
                    break
                rows.append(dict(zip(header, (c.strip() for c in row_line.strip().strip("|").split("|")), strict=True)))
            return rows
    raise AssertionError(f"no table starting with '| {first_header} |' in {path}")


def wiring_rows() -> list[dict[str, str]]:
    return read_markdown_table(HARDWARE_GUIDE, "Function")


def config_key(row: dict[str, str]) -> str:
    return row["Config key"].strip("`")


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Key -> every value it is given (systemd keys may repeat), comments and sections dropped."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@pytest.fixture(scope="module")
def defaults() -> dict[str, object]:
    return read_role_variables(DEFAULTS)


@pytest.fixture(scope="module")
def role_vars() -> dict[str, object]:
    return read_role_variables(ROLE_VARS)


def test_wiring_table_pins_are_the_role_defaults(defaults: dict[str, object]) -> None:
    rows = wiring_rows()
    pin_keys = {
        f"{s}.{k}" for s, keys in APP_DEFAULTS.items() if s in ("button", "leds") for k in keys if k.endswith("pin")
    }
    assert {config_key(row) for row in rows} == pin_keys, "every button/LED pin key needs exactly one wiring row"
    for row in rows:
        section, key = config_key(row).split(".")
        assert defaults[f"leaf_appliance_{section}_{key}"] == int(row["BCM"]), row


def test_wiring_table_physical_pins_match_bcm_numbers() -> None:
    for row in wiring_rows():
        assert BCM_TO_PIN[int(row["BCM"])] == int(row["Pin"]), f"BCM {row['BCM']} is not physical pin {row['Pin']}"


def test_wiring_table_grounds_are_ground_pins() -> None:
    for row in wiring_rows():
        grounds = [int(n) for n in re.findall(r"GND pin (\d+)", row["Connect to"])]
        assert grounds, f"{config_key(row)}: no ground pin named in {row['Connect to']!r}"
        assert set(grounds) <= GROUND_PINS, row


def test_wiring_table_names_each_pin_once() -> None:
    pins = [int(row["Pin"]) for row in wiring_rows()]
    assert len(pins) == len(set(pins))


def test_troubleshooting_table_lists_every_led_pattern() -> None:
    from appliance.led_codes import LED_CODES

    lines = HARDWARE_GUIDE.read_text(encoding="utf-8").splitlines()
    start = lines.index("| LEDs | Means | What to do |") + 2  # the troubleshooting table, past its rule
    rows = set()
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.add(line.strip("|").split("|")[0].strip())
    named = {code.short() for code in LED_CODES.values()}
    assert named <= rows, f"LED patterns missing from the troubleshooting table: {sorted(named - rows)}"
    colour_rows = {r for r in rows if r.split(",")[0].split()[0] in ("Green", "Amber", "Red")}
    assert colour_rows <= named, f"rows for no LED pattern: {sorted(colour_rows - named)}"


def test_spi_tft_table_avoids_the_button_and_led_pins() -> None:
    used = {int(row["Pin"]) for row in wiring_rows()}
    tft = read_markdown_table(HARDWARE_GUIDE, "TFT pin")
    tft_pins = {int(row["Pin"]) for row in tft if row["Pin"].isdigit()}
    assert tft_pins and not (tft_pins & used)
    for row in tft:
        if row["BCM"].isdigit():
            assert BCM_TO_PIN[int(row["BCM"])] == int(row["Pin"]), row


def test_wiring_diagram_matches_the_table() -> None:
    svg = ET.parse(WIRING_SVG).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    texts = {"".join(t.itertext()).strip() for t in svg.iter(f"{ns}text")}
    for row in wiring_rows():
        label = f"pin {row['Pin']} · GPIO{row['BCM']} · {config_key(row)}"
        assert label in texts, f"wiring.svg lacks the label {label!r}"
    # The highlighted ("used") header pins are exactly the table's pins. Each pin's number is a
    # "num" text drawn 4 px below its circle's centre.
    used_centres = {(c.get("cx"), c.get("cy")) for c in svg.iter(f"{ns}circle") if "used" in c.get("class", "").split()}
    used_pins = {
        int(t.text or "")
        for t in svg.iter(f"{ns}text")
        if t.get("class") == "num" and (t.get("x"), str(int(t.get("y", "0")) - 4)) in used_centres
    }
    assert used_pins == {int(row["Pin"]) for row in wiring_rows()}


def test_config_template_renders_exactly_the_app_keys() -> None:
    sections: dict[str, set[str]] = {}
    current = None
    static_part = CONFIG_TEMPLATE.read_text(encoding="utf-8").split("{% for section, keys")[0]
    for line in static_part.splitlines():
        if m := re.fullmatch(r"\[(\w+)\]", line):
            current = sections.setdefault(m.group(1), set())
        elif current is not None and (m := re.match(r"(\w+) = ", line)):
            current.add(m.group(1))
    assert sections == {section: set(keys) for section, keys in APP_DEFAULTS.items()}


def test_config_template_variables_default_to_the_app_defaults(defaults: dict[str, object]) -> None:
    for section, keys in APP_DEFAULTS.items():
        for key, value in keys.items():
            if value is None:
                continue
            name = variable_name(section, key)
            assert name in defaults, f"{name} missing from {DEFAULTS}"
            assert defaults[name] == value and type(defaults[name]) is type(value), (name, defaults[name], value)


def test_config_template_uses_only_defined_variables(defaults: dict[str, object], role_vars: dict[str, object]) -> None:
    used = set(re.findall(r"\bleaf_appliance_\w+", CONFIG_TEMPLATE.read_text(encoding="utf-8")))
    set_by_tasks = {"leaf_appliance_model_expected_sha256"}
    assert used - defaults.keys() - role_vars.keys() - set_by_tasks == set()


def render_config_template(variables: dict[str, object]) -> str:
    """config.toml.j2 rendered as Ansible would, with the few Ansible filters it uses."""
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = bool
    return env.from_string(CONFIG_TEMPLATE.read_text(encoding="utf-8")).render(**variables)


@pytest.mark.parametrize("crops", [[], ["apple"], ["Apple", "grape"]], ids=["all", "apple", "two"])
def test_config_template_writes_crops_only_when_some_are_chosen(
    defaults: dict[str, object], role_vars: dict[str, object], tmp_path: Path, crops: list[str]
) -> None:
    variables = {
        **role_vars,
        **defaults,
        "leaf_appliance_model_file": "/opt/leaf-appliance/models/leafnet-int8.onnx",
        "leaf_appliance_model_expected_sha256": "ab" * 32,
        "leaf_appliance_crops": crops,
        "leaf_appliance_config_extra": {},
    }
    text = render_config_template(variables)
    assert ("[diagnosis]" in text) == bool(crops)
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert config.diagnosis.crops == (tuple(sorted(c.lower() for c in crops)) if crops else None)
    assert config.button.pin == defaults["leaf_appliance_button_pin"]


def test_technician_guide_names_the_crops_variable(defaults: dict[str, object]) -> None:
    assert defaults["leaf_appliance_crops"] == []
    assert "`leaf_appliance_crops: [apple]`" in TECHNICIAN_GUIDE.read_text(encoding="utf-8")


def test_units_use_the_paths_and_user_the_role_installs(role_vars: dict[str, object]) -> None:
    unit = unit_settings(MAIN_UNIT)
    exec_start = shlex.split(unit["ExecStart"][0])
    assert exec_start == [role_vars["leaf_appliance_bin"], "run", "--config", role_vars["leaf_appliance_config_file"]]
    assert unit["User"] == [role_vars["leaf_appliance_user"]]
    assert unit["SupplementaryGroups"][0].split() == role_vars["leaf_appliance_device_groups"]
    assert "/var/lib/" + unit["StateDirectory"][0] == role_vars["leaf_appliance_default_data_dir"]
    assert "/etc/" + unit["ConfigurationDirectory"][0] == role_vars["leaf_appliance_config_dir"]
    export = unit_settings(EXPORT_UNIT)
    assert export["User"] == unit["User"]
    assert set(role_vars["leaf_appliance_unit_files"]) == {MAIN_UNIT.name, EXPORT_UNIT.name}  # type: ignore[arg-type]


def test_main_unit_keeps_the_hardware_reachable() -> None:
    unit = unit_settings(MAIN_UNIT)
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"] and unit["WatchdogSec"] == ["30"]
    assert "PrivateDevices" not in unit, "PrivateDevices hides /dev/gpiochip*, the camera and the framebuffer"
    assert "DynamicUser" not in unit
    allowed = {value.split()[0] for value in unit["DeviceAllow"]}
    assert {"char-gpiochip", "char-video4linux", "char-media", "char-dma_heap", "char-fb"} <= allowed
    assert unit["DevicePolicy"] == ["closed"] and unit["CapabilityBoundingSet"] == [""]


def test_udev_rule_starts_the_export_template() -> None:
    rule = UDEV_RULE.read_text(encoding="utf-8")
    assert 'ENV{SYSTEMD_WANTS}+="leaf-appliance-export@%k.service"' in rule
    export = unit_settings(EXPORT_UNIT)
    assert all(cmd.startswith("-") for cmd in export["ExecStart"]), "an export failure must not fail the unit"
    assert export["ExecCondition"], "the unit must skip itself when the app has no export command"


def test_wheelhouse_constraints_match_the_role(defaults: dict[str, object]) -> None:
    script = WHEELHOUSE_SCRIPT.read_text(encoding="utf-8")
    constraints = re.search(r"printf '%s\\n' (.+?) >\"\$constraints\"", script)
    assert constraints, "build-wheelhouse.sh no longer writes its constraints with printf"
    assert shlex.split(constraints.group(1)) == defaults["leaf_appliance_pip_constraints"]


def test_preflight_checks_each_host_with_its_own_variables() -> None:
    """A model or wheel per district failed preflight: run_once stat'ed the first host's file for its whole batch."""
    tasks = REPO / "deploy" / "roles" / "leaf_appliance" / "tasks"
    offending = [
        f"{path.name}: {block.splitlines()[0]}"
        for path in sorted(tasks.glob("*.yml"))
        for block in path.read_text(encoding="utf-8").split("\n- ")
        if "run_once" in block and "leaf_appliance_" in block.split("run_once")[0].split("register:")[0]
    ]
    assert offending == []


@pytest.mark.parametrize(
    "extra",
    [{}, {"sync": {"enabled": True, "url": "https://base.example.org"}}],
    ids=["no-sync-section", "sync-section-given"],
)
def test_config_template_points_sync_at_the_installed_ca_file(
    defaults: dict[str, object], role_vars: dict[str, object], tmp_path: Path, extra: dict
) -> None:
    ca = tmp_path / "collector-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    variables = {
        **role_vars,
        **defaults,
        "leaf_appliance_model_file": "/opt/leaf-appliance/models/leafnet-int8.onnx",
        "leaf_appliance_model_expected_sha256": "ab" * 32,
        "leaf_appliance_config_extra": extra,
        "leaf_appliance_sync_ca_file_src": "/controller/ca.pem",
        "leaf_appliance_sync_ca_file": str(ca),
    }
    path = tmp_path / "config.toml"
    path.write_text(render_config_template(variables), encoding="utf-8")
    config = load_config(path)
    assert config.sync.ca_file == ca and config.sync.enabled == bool(extra)
    without = render_config_template({**variables, "leaf_appliance_sync_ca_file_src": ""})
    assert "ca_file" not in without


def test_the_sync_token_is_written_for_the_service_user_only_and_never_logged() -> None:
    tasks = (REPO / "deploy" / "roles" / "leaf_appliance" / "tasks" / "config.yml").read_text(encoding="utf-8")
    block = tasks[tasks.index("- name: Write this Pi's sync token") :].split("\n- name:")[0]
    assert 'mode: "0600"' in block and "no_log: true" in block and "leaf_appliance_user" in block
