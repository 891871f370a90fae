"""Typed configuration: one frozen :class:`Settings` built from a TOML file and the environment.

Sources, highest precedence first:

1. ``overrides`` passed to :func:`load_config` (command-line flags);
2. ``GIVTCP_``-prefixed environment variables, ``__`` between levels (``GIVTCP_MQTT__HOST``,
   ``GIVTCP_INVERTERS__0__HOST``, or a JSON list in ``GIVTCP_INVERTERS``);
3. GivTCP's own environment variables (:data:`LEGACY_VARIABLES`);
4. the TOML file;
5. defaults.

Tables merge key by key across sources, and the inverter list merges by position, so
``GIVTCP_INVERTERS__0__HOST`` changes the first inverter's host and keeps the rest of its entry
from the file. Unknown keys and bad values are rejected with a :class:`ConfigError` whose message
has one line per problem, naming the dotted key and where the value came from. Secret values
(:class:`pydantic.SecretStr`) are never echoed in messages or by :func:`masked`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import tomllib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError
from pydantic_settings.sources.utils import parse_env_vars

from givtcp_async.connection import ConnectionSettings
from givtcp_async.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATHS",
    "ENV_PREFIX",
    "LEGACY_VARIABLES",
    "SECRET_MASK",
    "ControlConfig",
    "DataConfig",
    "InfluxConfig",
    "InverterConfig",
    "LoggingConfig",
    "MqttConfig",
    "MqttTlsConfig",
    "RestConfig",
    "Settings",
    "find_config_file",
    "load_config",
    "masked",
    "secret_values",
    "unused_legacy_variables",
]

ENV_PREFIX: Final = "GIVTCP_"
ENV_DELIMITER: Final = "__"
#: ``GIVTCP_`` variables that are not settings keys, so never rejected as unknown.
RESERVED_ENV: Final = frozenset({"GIVTCP_CONFIG", "GIVTCP_SHARED"})
#: Files tried, in order, when no path is given and ``$GIVTCP_CONFIG`` is unset.
DEFAULT_CONFIG_PATHS: Final = (Path("givtcp-async.toml"), Path("/etc/givtcp-async/config.toml"))
SECRET_MASK: Final = "***"
#: Key names whose values are secret wherever they appear (config errors, logs).
SECRET_KEY_NAMES: Final = frozenset({"password", "token", "secret", "authorization"})
LEGACY_LOG_FILE_NAME: Final = "givtcp-async.log"
MAX_LEGACY_INVERTERS: Final = 5

_CONNECTION_DEFAULTS: Final[dict[str, Any]] = {
    f.name: f.default for f in dataclasses.fields(ConnectionSettings)
}


# --- value checks ----------------------------------------------------------------------------


def _check_host(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if "://" in value or "/" in value:
        raise ValueError("expected a host name or IP address, not a URL or path")
    if any(c.isspace() for c in value):
        raise ValueError("must not contain spaces")
    if value.count(":") == 1:
        raise ValueError("put the port number in the separate 'port' key")
    return value


def _check_topic(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if any(c in value for c in "#+\x00"):
        raise ValueError("must not contain the MQTT wildcards '#' or '+'")
    if value.startswith("/") or value.endswith("/"):
        raise ValueError("must not start or end with '/'")
    return value


def _check_timezone(value: str) -> str:
    key = value.strip().removeprefix(":")
    try:
        ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone; use an IANA name such as Europe/London") from None
    return key


def _check_url(value: str) -> str:
    value = value.strip()
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("expected an http:// or https:// URL")
    return value


Host = Annotated[str, AfterValidator(_check_host)]
Port = Annotated[int, Field(ge=1, le=65535)]
Topic = Annotated[str, Field(max_length=200), AfterValidator(_check_topic)]
NonEmpty = Annotated[str, Field(min_length=1, max_length=200)]

_LAX_BOOL: Final = TypeAdapter(bool)


def _lax_bool(value: Any) -> bool | None:
    """``value`` as a bool the way pydantic would read it, or None if it is not one."""
    try:
        return _LAX_BOOL.validate_python(value)
    except ValidationError:
        return None


def default_state_dir() -> Path:
    """``/var/lib/givtcp-async`` when this user may write there, else the per-user state dir."""
    system = Path("/var/lib/givtcp-async")
    probe = system if system.exists() else system.parent
    if os.access(probe, os.W_OK):
        return system
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "givtcp-async"


# --- models ----------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InverterConfig(_Section):
    """One inverter (its dongle) and how it is polled."""

    host: Host = Field(description="Dongle IP address or host name.")
    port: Port = Field(default=8899, description="Dongle TCP port.")
    name: str = Field(
        default="GivTCP",
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 _-]*$",
        description="Home Assistant device prefix (GivTCP, GivTCP2, ... by position).",
    )
    serial: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9]{10}$",
        description="Expected inverter serial; a different one at this address is refused.",
    )
    num_batteries: int | None = Field(
        default=None, ge=0, le=6, description="LV battery packs; None = detect."
    )
    poll_interval: float = Field(
        default=15.0, ge=5, le=3600, description="Seconds between data polls."
    )
    settings_interval: float = Field(
        default=120.0, ge=5, le=86400, description="Seconds between full refreshes of settings."
    )
    pacing: float = Field(default=_CONNECTION_DEFAULTS["pacing"], ge=0, le=5)
    read_timeout: float = Field(default=_CONNECTION_DEFAULTS["read_timeout"], gt=0, le=60)
    write_timeout: float = Field(default=_CONNECTION_DEFAULTS["write_timeout"], gt=0, le=60)
    read_retries: int = Field(default=_CONNECTION_DEFAULTS["read_retries"], ge=0, le=10)
    write_retries: int = Field(default=_CONNECTION_DEFAULTS["write_retries"], ge=0, le=10)
    retry_delay: float = Field(default=_CONNECTION_DEFAULTS["retry_delay"], ge=0, le=60)
    connect_timeout: float = Field(default=_CONNECTION_DEFAULTS["connect_timeout"], gt=0, le=120)
    backoff_max: float = Field(
        default=_CONNECTION_DEFAULTS["backoff_max"],
        ge=_CONNECTION_DEFAULTS["backoff_initial"],
        le=3600,
    )

    @field_validator("serial")
    @classmethod
    def _upper_serial(cls, value: str | None) -> str | None:
        return None if value is None else value.upper()

    @field_validator("settings_interval")
    @classmethod
    def _not_faster_than_poll(cls, value: float, info: ValidationInfo) -> float:
        poll = info.data.get("poll_interval")
        if poll is not None and value < poll:
            raise ValueError(f"must not be shorter than poll_interval ({poll:g} s)")
        return value

    def connection_settings(self) -> ConnectionSettings:
        """This inverter's knobs for :class:`~givtcp_async.connection.Connection`."""
        return ConnectionSettings(
            host=self.host,
            port=self.port,
            pacing=self.pacing,
            read_timeout=self.read_timeout,
            write_timeout=self.write_timeout,
            read_retries=self.read_retries,
            write_retries=self.write_retries,
            retry_delay=self.retry_delay,
            connect_timeout=self.connect_timeout,
            backoff_max=self.backoff_max,
        )


class MqttTlsConfig(_Section):
    """TLS towards the MQTT broker."""

    enabled: bool = False
    ca_file: FilePath | None = None
    certfile: FilePath | None = None
    keyfile: FilePath | None = None
    insecure: bool = False

    @field_validator("keyfile")
    @classmethod
    def _key_needs_cert(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("certfile") is None:
            raise ValueError("needs certfile as well")
        return value


class MqttConfig(_Section):
    """MQTT output and Home Assistant discovery."""

    enabled: bool = False
    host: Host | None = Field(default=None, validate_default=True)
    port: Port = 1883
    username: NonEmpty | None = None
    password: SecretStr | None = Field(default=None, validate_default=True)
    tls: MqttTlsConfig = MqttTlsConfig()
    client_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    topic: Topic = "GivEnergy"
    retain: bool = True
    changes_only: bool = True
    discovery: bool = True
    discovery_prefix: Topic = "homeassistant"
    time_entities: Literal["select", "time"] = "select"
    internal_broker: bool = False
    offline_after: float = Field(default=300.0, gt=0, le=86400)

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_host(cls, data: Any) -> Any:
        # enabled defaults to "a broker is configured"; the internal broker listens on localhost.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("host") in (None, "") and _lax_bool(data.get("internal_broker", False)):
            data["host"] = "127.0.0.1"
        if data.get("enabled") is None:
            data["enabled"] = data.get("host") not in (None, "")
        return data

    @field_validator("host")
    @classmethod
    def _host_when_enabled(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("enabled"):
            raise ValueError("required when mqtt.enabled is true")
        return value

    def effective_client_id(self) -> str:
        """``client_id``, or ``givtcp-async-<host name>`` when unset."""
        return self.client_id or f"givtcp-async-{socket.gethostname()}"

    @field_validator("password")
    @classmethod
    def _password_needs_username(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if value is not None and info.data.get("username") is None:
            raise ValueError("needs mqtt.username as well")
        return value


class RestConfig(_Section):
    """The REST API (GivTCP-compatible routes)."""

    enabled: bool = True
    host: Host = "127.0.0.1"
    port: Port = 6345
    token: SecretStr | None = None

    @field_validator("token")
    @classmethod
    def _token_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters long")
        return value


class InfluxConfig(_Section):
    """InfluxDB v2 output."""

    enabled: bool = False
    url: Annotated[str, AfterValidator(_check_url)] | None = Field(
        default=None, validate_default=True
    )
    token: SecretStr | None = None
    org: NonEmpty | None = None
    bucket: NonEmpty | None = Field(default=None, validate_default=True)
    buffer_max_age: float = Field(default=3600.0, ge=0, le=7 * 86400)
    buffer_max_points: int = Field(default=100_000, ge=0, le=10_000_000)
    legacy_measurement: bool = False

    @model_validator(mode="before")
    @classmethod
    def _enabled_from_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("enabled") is None:
            data = {**data, "enabled": data.get("url") not in (None, "")}
        return data

    @field_validator("url", "bucket")
    @classmethod
    def _required_when_enabled(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("enabled"):
            raise ValueError("required when influx.enabled is true")
        return value


class ControlConfig(_Section):
    """Writes to the inverter."""

    write_budget_per_day: int = Field(default=0, ge=0, le=100_000)
    state_dir: Path = Field(default_factory=default_state_dir)
    dead_man_minutes: int = Field(default=0, ge=0, le=24 * 60)
    time_sync: bool = False


class DataConfig(_Section):
    """What is published, and how stale it may get."""

    print_raw: bool = False
    stale_after: float = Field(default=600.0, ge=0, le=86400)
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "Europe/London"


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
_LEVEL_ALIASES: Final = {"WARN": "WARNING", "WRITE_DEBUG": "DEBUG", "FATAL": "CRITICAL"}


class LoggingConfig(_Section):
    """Log output."""

    level: LogLevel = "INFO"
    format: Literal["auto", "console", "json"] = "auto"
    file: Path | None = None
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=4096)
    backups: int = Field(default=5, ge=0, le=100)

    @field_validator("level", mode="before")
    @classmethod
    def _normalise_level(cls, value: Any) -> Any:
        if isinstance(value, str):
            upper = value.strip().upper()
            return _LEVEL_ALIASES.get(upper, upper)
        return value


class Settings(BaseSettings):
    """Everything the daemon needs; build it with :func:`load_config`.

    Constructing ``Settings(...)`` directly uses only the arguments and defaults (no environment,
    no file), which is what tests want.
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        case_sensitive=False,
    )

    inverters: list[InverterConfig] = Field(min_length=1)
    mqtt: MqttConfig = MqttConfig()
    rest: RestConfig = RestConfig()
    influx: InfluxConfig = InfluxConfig()
    control: ControlConfig = Field(default_factory=lambda: ControlConfig())
    data: DataConfig = DataConfig()
    logging: LoggingConfig = LoggingConfig()

    @field_validator("inverters", mode="before")
    @classmethod
    def _from_positions(cls, value: Any) -> Any:
        # Sources deliver the list as {"0": {...}, "1": {...}} so that they can merge by position.
        if isinstance(value, Mapping):
            positions: dict[int, Any] = {}
            for key, entry in value.items():
                if not (isinstance(key, int) or (isinstance(key, str) and key.isdigit())):
                    raise ValueError(
                        f"expected a list of inverters ([[inverters]] tables), found key {key!r}"
                    )
                positions[int(key)] = entry
            missing = [i for i in range(max(positions, default=-1) + 1) if i not in positions]
            if missing:
                raise ValueError(
                    f"inverter {missing[0]} is missing: inverters are numbered 0, 1, 2, ... "
                    "without gaps"
                )
            value = [positions[i] for i in sorted(positions)]
        if isinstance(value, list):
            value = [
                {**entry, "name": f"GivTCP{i + 1}"}
                if i > 0 and isinstance(entry, dict) and "name" not in entry
                else entry
                for i, entry in enumerate(value)
            ]
        return value

    @field_validator("inverters")
    @classmethod
    def _distinct(cls, value: list[InverterConfig]) -> list[InverterConfig]:
        seen: dict[tuple[str, int], int] = {}
        for i, inv in enumerate(value):
            key = (inv.host.lower(), inv.port)
            if key in seen:
                raise ValueError(f"inverter {i} has the same host and port as inverter {seen[key]}")
            seen[key] = i
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        plan = _LOADING.get()
        if plan is None:
            return (init_settings,)
        toml = _TomlSource(settings_cls, plan.path)
        env = _PrefixedEnvSource(settings_cls, plan.environ)
        legacy = _LegacyEnvSource(settings_cls, plan.environ, toml.positions())
        plan.origins = [plan.override_origins, env.origins, legacy.origins, toml.origins]
        return (init_settings, env, legacy, toml)


# --- sources ---------------------------------------------------------------------------------


_Key = tuple[str, ...]


class _Origins:
    """Where each leaf value of one source came from (an env var name, a file, ...)."""

    def __init__(self) -> None:
        self.labels: dict[_Key, str] = {}

    def record(self, prefix: _Key, value: Any, label: str) -> None:
        if isinstance(value, Mapping) and value:
            for key, item in value.items():
                self.record((*prefix, str(key)), item, label)
        else:
            self.labels[prefix] = label

    def find(self, loc: _Key) -> str | None:
        """The label of ``loc`` or of the nearest enclosing value this source supplied."""
        for n in range(len(loc), 0, -1):
            label = self.labels.get(loc[:n])
            if label is not None:
                return label
        return None

    def find_within(self, loc: _Key) -> str | None:
        """The label of some value this source supplied inside ``loc``."""
        return next((v for k, v in self.labels.items() if k[: len(loc)] == loc), None)


@dataclasses.dataclass
class _LoadPlan:
    path: Path | None
    environ: Mapping[str, str]
    override_origins: _Origins
    origins: list[_Origins] = dataclasses.field(default_factory=list)

    def origin(self, loc: _Key) -> str | None:
        for origins in self.origins:
            label = origins.find(loc)
            if label is not None:
                return label
        for origins in self.origins:
            label = origins.find_within(loc)
            if label is not None:
                return label
        return None


_LOADING: ContextVar[_LoadPlan | None] = ContextVar("givtcp_config_loading", default=None)


def _positional(value: Any) -> Any:
    """A list of inverter entries as {"0": entry, ...}, the form every source merges in."""
    if isinstance(value, list):
        return {str(i): entry for i, entry in enumerate(value)}
    return value


def _inverter_positions(data: Mapping[str, Any]) -> set[str]:
    inverters = data.get("inverters")
    if isinstance(inverters, Mapping):
        return {str(k) for k in inverters if str(k).isdigit()}
    return set()


class _TomlSource(TomlConfigSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls, toml_file=path)
        if "inverters" in self.init_kwargs:
            self.init_kwargs["inverters"] = _positional(self.init_kwargs["inverters"])
        self.origins = _Origins()
        if path is not None:
            self.origins.record((), self.init_kwargs, str(path))

    def positions(self) -> set[str]:
        return _inverter_positions(self.init_kwargs)


class _PrefixedEnvSource(EnvSettingsSource):
    """``GIVTCP_*`` variables from a given mapping; unknown names become extra (rejected) keys."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)
        self.origins = _Origins()

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        env_name = f"{ENV_PREFIX}{field_name.upper()}"
        if value is not None and (field_name == "inverters" or self.field_is_complex(field)):
            try:
                decoded = json.loads(value)
            except ValueError as err:
                raise ConfigError(f"{env_name}: not valid JSON ({err})") from None
            exploded = self.explode_env_vars(field_name, field, self.env_vars)
            decoded = _positional(decoded)
            if isinstance(decoded, dict):
                return _merge(decoded, exploded)
            return decoded
        prepared = super().prepare_field_value(field_name, field, value, value_is_complex)
        return _positional(prepared)

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        fields = set(self.settings_cls.model_fields)
        # single-level names first, so a GIVTCP_X__Y variable names the leaves it overrides
        names = sorted(self._environ, key=lambda n: ENV_DELIMITER in n)
        for name in names:
            value = self._environ[name]
            upper = name.upper()
            if not upper.startswith(ENV_PREFIX) or upper in RESERVED_ENV:
                continue
            path = tuple(upper[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER))
            if path[0] not in fields:
                data[ENV_DELIMITER.join(path)] = value
                path = (ENV_DELIMITER.join(path),)
            if len(path) == 1 and path[0] in data and isinstance(data[path[0]], Mapping):
                # a JSON value: name every leaf it supplied
                self.origins.record(path, data[path[0]], name)
            else:
                self.origins.record(path, None, name)
        return data


# Legacy (GivTCP) environment variables. Per-inverter ones take a suffix _1.._5; the bare name
# means inverter 1. "*" = every configured inverter.
_LEGACY_GLOBAL: Final[tuple[tuple[str, _Key], ...]] = (
    ("MQTT_OUTPUT", ("mqtt", "enabled")),
    ("MQTT_ADDRESS", ("mqtt", "host")),
    ("MQTT_PORT", ("mqtt", "port")),
    ("MQTT_USERNAME", ("mqtt", "username")),
    ("MQTT_PASSWORD", ("mqtt", "password")),
    ("MQTT_TOPIC", ("mqtt", "topic")),
    ("MQTT_RETAIN", ("mqtt", "retain")),
    ("HA_AUTO_D", ("mqtt", "discovery")),
    ("LOG_LEVEL", ("logging", "level")),
    ("DEBUG_FILE_LOCATION", ("logging", "file")),
    ("PRINT_RAW", ("data", "print_raw")),
    ("TZ", ("data", "timezone")),
    ("INFLUX_OUTPUT", ("influx", "enabled")),
    ("INFLUX_URL", ("influx", "url")),
    ("INFLUX_TOKEN", ("influx", "token")),
    ("INFLUX_BUCKET", ("influx", "bucket")),
    ("INFLUX_ORG", ("influx", "org")),
)
_LEGACY_PER_INVERTER: Final[tuple[tuple[tuple[str, ...], str], ...]] = (
    (("INVERTOR_IP",), "host"),
    (("NUM_BATTERIES", "NUMBATTERIES"), "num_batteries"),
    (("HADEVICEPREFIX",), "name"),
)
_LEGACY_ALL_INVERTERS: Final[tuple[tuple[str, str], ...]] = (
    ("SELF_RUN_LOOP_TIMER", "poll_interval"),
    ("SELF_RUN_LOOP_TIMER_FULL", "settings_interval"),
)


def _legacy_table() -> list[tuple[str, str]]:
    rows = [(var, ".".join(path)) for var, path in _LEGACY_GLOBAL]
    for names, key in _LEGACY_PER_INVERTER:
        for name in names:
            rows.append((name, f"inverters.0.{key}"))
            rows.append((f"{name}_n", f"inverters.<n-1>.{key} (n = 1..{MAX_LEGACY_INVERTERS})"))
    rows.extend((var, f"inverters.*.{key}") for var, key in _LEGACY_ALL_INVERTERS)
    return rows


#: (GivTCP variable, settings key) for every GivTCP environment variable that is honoured.
LEGACY_VARIABLES: Final[tuple[tuple[str, str], ...]] = tuple(_legacy_table())

_UNUSED_LEGACY: Final = re.compile(
    r"^(SELF_RUN|NUMINVERTORS|INVERTOR_(AIO|AC|NAME)(_\d)?|MQTT_TOPIC_\d"
    r"|QUEUE_RETRIES|DYNAMICTARIFF|(DAY|NIGHT|EXPORT)RATE(START)?|HOSTIP|WEB_DASH(_PORT)?"
    r"|CACHELOCATION|DATASMOOTHER|SMARTTARGET|GEAPI|SOLCAST(API|SITEID2?)|PALM_\w+"
    r"|LOAD_HIST_WEIGHT|EVC_(ENABLE|IP_ADDRESS|SELF_RUN_TIMER))$"
)


class _LegacyEnvSource(PydanticBaseSettingsSource):
    """GivTCP's environment variables, mapped onto settings keys; empty values are ignored."""

    def __init__(
        self, settings_cls: type[BaseSettings], environ: Mapping[str, str], file_positions: set[str]
    ) -> None:
        super().__init__(settings_cls)
        self._environ = environ
        self._file_positions = file_positions
        self.origins = _Origins()

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def _assignments(self) -> Iterator[tuple[str, _Key, str]]:
        for var, path in _LEGACY_GLOBAL:
            yield var, path, self._environ.get(var, "")
        for names, key in _LEGACY_PER_INVERTER:
            for name in names:
                yield name, ("inverters", "0", key), self._environ.get(name, "")
                for n in range(1, MAX_LEGACY_INVERTERS + 1):
                    var = f"{name}_{n}"
                    yield var, ("inverters", str(n - 1), key), self._environ.get(var, "")

    def __call__(self) -> dict[str, Any]:
        chosen: dict[_Key, tuple[str, str]] = {}
        conflicts: list[str] = []
        for var, path, raw in self._assignments():
            value = raw.strip()
            if not value:
                continue
            if var == "DEBUG_FILE_LOCATION":
                value = str(Path(value) / LEGACY_LOG_FILE_NAME)
            if path in chosen and chosen[path][1] != value:
                other = chosen[path][0]
                conflicts.append(
                    f"{'.'.join(path)}: {other} and {var} disagree ({other}={chosen[path][1]!r}, "
                    f"{var}={value!r})"
                    if path[-1] not in SECRET_KEY_NAMES
                    else f"{'.'.join(path)}: {other} and {var} disagree"
                )
                continue
            chosen.setdefault(path, (var, value))
        if conflicts:
            raise ConfigError("\n".join(conflicts))
        positions = (
            _inverter_positions(self.current_state)
            | self._file_positions
            | {path[1] for path in chosen if path[0] == "inverters"}
        )
        for var, key in _LEGACY_ALL_INVERTERS:
            value = self._environ.get(var, "").strip()
            if value:
                for pos in positions:
                    chosen[("inverters", pos, key)] = (var, value)
        data: dict[str, Any] = {}
        for path, (var, value) in chosen.items():
            node = data
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
            self.origins.record(path, None, var)
        return data


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(out.get(key), Mapping) and isinstance(value, Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# --- loading ---------------------------------------------------------------------------------


def find_config_file(path: Path | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The configuration file to read: ``path``, else ``$GIVTCP_CONFIG``, else the first of
    :data:`DEFAULT_CONFIG_PATHS` that exists, else None.

    A file that was asked for (``path`` or ``$GIVTCP_CONFIG``) but is missing is a ConfigError.
    """
    env = os.environ if environ is None else environ
    if path is None and env.get("GIVTCP_CONFIG"):
        path = Path(env["GIVTCP_CONFIG"])
        asked_by = "GIVTCP_CONFIG: "
    else:
        asked_by = ""
    if path is not None:
        path = path.expanduser()
        if not path.exists():
            raise ConfigError(f"{asked_by}config file {path} not found")
        if not path.is_file():
            raise ConfigError(f"{asked_by}config file {path} is not a regular file")
        return path
    return next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)


def _expand_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        parts = key.split(".")
        nested: Any = _positional(value) if parts[-1] == "inverters" else value
        for part in reversed(parts):
            nested = {part: nested}
        out = _merge(out, nested)
    return out


def load_config(
    path: Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    override_labels: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from every source (module docstring) and validate them.

    ``path`` is the TOML file (None: see :func:`find_config_file`). ``overrides`` take
    precedence over everything; keys are section names or dotted paths (``"mqtt.host"``,
    ``"inverters.0.port"``) and None values are skipped. ``environ`` defaults to ``os.environ``.
    ``override_labels`` names where an override came from in error messages (dotted key ->
    e.g. ``"--port"``; default ``"override"``). Raises ConfigError with one line per problem.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    file = find_config_file(path, env)
    init = _expand_overrides(overrides or {})
    override_origins = _Origins()
    override_origins.record((), init, "override")
    for key, label in (override_labels or {}).items():
        override_origins.labels[tuple(key.split("."))] = label
    plan = _LoadPlan(path=file, environ=env, override_origins=override_origins)
    token = _LOADING.set(plan)
    try:
        return Settings(**init)
    except ValidationError as err:
        raise ConfigError(_describe_errors(err, plan)) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{file}: invalid TOML: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{file}: not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise ConfigError(f"{file}: cannot read: {err.strerror}") from None
    except SettingsError as err:
        raise ConfigError(str(err)) from None
    finally:
        _LOADING.reset(token)


def _is_secret_path(loc: _Key) -> bool:
    return any(part in SECRET_KEY_NAMES for part in loc)


def _describe_errors(err: ValidationError, plan: _LoadPlan) -> str:
    lines: list[str] = []
    for item in err.errors(include_url=False):
        loc = tuple(str(part) for part in item["loc"])
        key = ".".join(loc) or "settings"
        kind = item["type"]
        msg = item["msg"]
        if kind == "extra_forbidden":
            msg = "unknown key"
        elif loc == ("inverters",) and kind in {"missing", "too_short"}:
            msg = (
                "no inverter configured: add an [[inverters]] table with a host, or set "
                "GIVTCP_INVERTERS__0__HOST or INVERTOR_IP"
            )
        else:
            msg = msg.removeprefix("Value error, ")
        value = item.get("input")
        if (
            kind not in {"missing", "extra_forbidden"}
            and not _is_secret_path(loc)
            and isinstance(value, str | int | float | bool)
        ):
            shown = json.dumps(value)
            msg += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
        origin = plan.origin(loc)
        if origin is not None:
            msg += f" [from {origin}]"
        lines.append(f"{key}: {msg}")
    return "\n".join(lines)


# --- presentation ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return SECRET_MASK
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as JSON-able data; every secret is ``"***"`` if set, else None."""
    result: dict[str, Any] = _plain(settings.model_dump())
    return result


def _secrets(value: Any) -> Iterator[str]:
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets(getattr(value, name))
    elif isinstance(value, list):
        for item in value:
            yield from _secrets(item)


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret string (for log redaction), longest first, without empties."""
    return sorted({s for s in _secrets(settings) if s}, key=len, reverse=True)


def unused_legacy_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """GivTCP environment variables present in ``environ`` that givtcp-async does not use."""
    env = os.environ if environ is None else environ
    return sorted(name for name, value in env.items() if value and _UNUSED_LEGACY.match(name))
