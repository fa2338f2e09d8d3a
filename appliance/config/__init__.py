"""The appliance's one configuration file: typed, strict, every mistake reported at once.

A technician provisions many devices from one template, so a typo must stop start-up with a
message that names the file, the key and the reason, instead of being silently ignored. Each
section is a frozen dataclass; the type hints and each field's ``check`` drive one small
generic validator (no pydantic: the install stays lean). The pin and display defaults live
only here; documentation reads them through ``schema()`` and ``default_pins()``.
"""

from __future__ import annotations

from appliance.config.introspect import KeySpec, default_pins, schema
from appliance.config.loading import DEFAULT_CONFIG_PATH, config_check, load_config, simulated_data_dir
from appliance.config.schema import (
    DEFAULT_DATA_DIR,
    SIMULATED_DISPLAY_SIZE,
    ButtonConfig,
    CameraConfig,
    Config,
    DaemonConfig,
    DeviceConfig,
    DiagnosisConfig,
    DisplayConfig,
    ExportConfig,
    LedsConfig,
    ModelConfig,
    QualityConfig,
    StorageConfig,
    SyncConfig,
    WebConfig,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_DATA_DIR",
    "SIMULATED_DISPLAY_SIZE",
    "ButtonConfig",
    "CameraConfig",
    "Config",
    "DaemonConfig",
    "DeviceConfig",
    "DiagnosisConfig",
    "DisplayConfig",
    "ExportConfig",
    "KeySpec",
    "LedsConfig",
    "ModelConfig",
    "QualityConfig",
    "StorageConfig",
    "SyncConfig",
    "WebConfig",
    "config_check",
    "default_pins",
    "load_config",
    "schema",
    "simulated_data_dir",
]
