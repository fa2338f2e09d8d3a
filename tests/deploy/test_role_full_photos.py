"""The role's full-photo variables: the app's defaults, written into [sync], overridable, always a valid config."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import Config, config_check, load_config
from tests.deploy.test_deploy_files import DEFAULTS, ROLE_VARS, read_role_variables, render_config_template

KEYS = ("full_photos", "full_photo_below", "full_photo_sample", "full_photo_mb_per_day")


@pytest.fixture(scope="module")
def variables() -> dict[str, object]:
    return {
        **read_role_variables(ROLE_VARS),
        **read_role_variables(DEFAULTS),
        "leaf_appliance_model_file": "/opt/leaf-appliance/models/leafnet-int8.onnx",
        "leaf_appliance_model_expected_sha256": "ab" * 32,
        "leaf_appliance_config_extra": {},
    }


def render(tmp_path: Path, variables: dict[str, object]) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(render_config_template(variables), encoding="utf-8")
    assert config_check(path) == []
    return load_config(path)


def test_the_role_defaults_are_the_apps(variables: dict[str, object]) -> None:
    app = Config().sync
    for key in KEYS:
        name = f"leaf_appliance_sync_{key}"
        assert variables[name] == getattr(app, key) and type(variables[name]) is type(getattr(app, key)), name


def test_the_template_writes_the_inventorys_values_into_sync(tmp_path: Path, variables: dict[str, object]) -> None:
    chosen = {
        "leaf_appliance_sync_full_photos": "all",
        "leaf_appliance_sync_full_photo_below": 0.6,
        "leaf_appliance_sync_full_photo_sample": 0.2,
        "leaf_appliance_sync_full_photo_mb_per_day": 0,
    }
    config = render(tmp_path, {**variables, **chosen})
    s = config.sync
    assert (s.full_photos, s.full_photo_below, s.full_photo_sample, s.full_photo_mb_per_day) == ("all", 0.6, 0.2, 0)
    assert s.enabled is False  # the photo keys alone do not switch sync on


def test_with_a_sync_section_in_extra_each_key_appears_once_and_extra_wins(
    tmp_path: Path, variables: dict[str, object]
) -> None:
    extra = {"sync": {"enabled": True, "url": "https://base.example.org", "full_photos": "none"}}
    text = render_config_template({**variables, "leaf_appliance_config_extra": extra})
    assert text.count("[sync]") == 1
    for key in KEYS:
        assert text.count(f"\n{key} = ") == 1, key
    config = render(tmp_path, {**variables, "leaf_appliance_config_extra": extra})
    assert (config.sync.enabled, config.sync.full_photos, config.sync.full_photo_mb_per_day) == (True, "none", 100)


def test_a_value_the_app_refuses_is_caught_by_config_check(tmp_path: Path, variables: dict[str, object]) -> None:
    path = tmp_path / "config.toml"
    path.write_text(render_config_template({**variables, "leaf_appliance_sync_full_photos": "most"}), encoding="utf-8")
    problems = config_check(path)
    assert len(problems) == 1 and "sync.full_photos" in problems[0] and '"teaching", "all", "none"' in problems[0]
