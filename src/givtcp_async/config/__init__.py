"""Typed configuration: one frozen :class:`Settings` built from a TOML file and the environment.

``models`` holds the pydantic models (one per section) and their value checks; ``sources``
reads the TOML file, ``GIVTCP_`` variables and GivTCP's own variables, merges them and builds
the settings (:func:`load_config`); ``report`` turns problems into one line per key with its
origin, and masks secrets. Everything a caller needs is importable from here.

May import: the connection (``ConnectionSettings``) and errors; nothing above them.
"""

from givtcp_async.config.models import (
    ENV_PREFIX,
    ChargerConfig,
    ControlConfig,
    DataConfig,
    InfluxConfig,
    InverterConfig,
    LoggingConfig,
    MqttConfig,
    MqttTlsConfig,
    RestConfig,
    Settings,
    TariffConfig,
)
from givtcp_async.config.report import SECRET_MASK, masked, secret_values
from givtcp_async.config.sources import (
    DEFAULT_CONFIG_PATHS,
    LEGACY_VARIABLES,
    find_config_file,
    load_config,
    unused_legacy_variables,
)

__all__ = [
    "DEFAULT_CONFIG_PATHS",
    "ENV_PREFIX",
    "LEGACY_VARIABLES",
    "SECRET_MASK",
    "ChargerConfig",
    "ControlConfig",
    "DataConfig",
    "InfluxConfig",
    "InverterConfig",
    "LoggingConfig",
    "MqttConfig",
    "MqttTlsConfig",
    "RestConfig",
    "Settings",
    "TariffConfig",
    "find_config_file",
    "load_config",
    "masked",
    "secret_values",
    "unused_legacy_variables",
]
