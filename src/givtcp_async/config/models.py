"""The settings models: one frozen pydantic model per section, and :class:`Settings`.

Pure data and value checks: where values come from is :mod:`givtcp_async.config.sources`.
Constructing ``Settings(...)`` directly uses only the arguments and defaults.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FilePath,
    IPvAnyNetwork,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from givtcp_async.connection import ConnectionSettings
from givtcp_async.layout import TreeLayout, parse_layout
from givtcp_async.quality.identity import SERIAL_SHAPE
from givtcp_async.quality.pages import is_valid_serial

ENV_PREFIX: Final = "GIVTCP_"
ENV_DELIMITER: Final = "__"

_CONNECTION_DEFAULTS: Final[dict[str, Any]] = {
    f.name: f.default for f in dataclasses.fields(ConnectionSettings)
}

SourcesHook = Callable[
    [type[BaseSettings], PydanticBaseSettingsSource], tuple[PydanticBaseSettingsSource, ...]
]
#: Set by :func:`givtcp_async.config.sources.load_config` while it builds a :class:`Settings`:
#: the sources to read besides the arguments (None: the arguments alone).
SOURCES: ContextVar[SourcesHook | None] = ContextVar("givtcp_config_sources", default=None)


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


def _is_loopback(host: str | None) -> bool:
    if host is None or host.lower() == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False  # a name could resolve anywhere


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
    # Every field has an attribute docstring, from which givtcp_async.docgen writes the
    # configuration reference (docs/reference/configuration.md). It reads them from the source
    # when it runs: pydantic's use_attribute_docstrings would parse this module at every import.
    model_config = ConfigDict(extra="forbid", frozen=True)


class InverterConfig(_Section):
    """One inverter (its dongle) and how it is polled."""

    host: Host
    """The dongle's IP address or host name. Required."""
    port: Port = 8899
    """The dongle's TCP port."""
    name: str = Field(
        default="GivTCP", min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _-]*$"
    )
    """Home Assistant device prefix: GivTCP for the first inverter, GivTCP2, GivTCP3, ... for
    the others when unset."""
    serial: str | None = None
    """The inverter serial expected at this address (10 characters, GivEnergy's shape); another
    unit answering there is refused. Unset: the serial found at detection."""
    num_batteries: int | None = Field(default=None, ge=0, le=6)
    """Number of LV battery packs (0-6). Unset: detect them."""
    poll_interval: float = Field(default=15.0, ge=5, le=3600)
    """Seconds between data polls."""
    settings_interval: float = Field(default=120.0, ge=5, le=86400)
    """Seconds between full refreshes of the inverter's settings; not shorter than
    poll_interval."""
    pacing: float = Field(default=_CONNECTION_DEFAULTS["pacing"], ge=0, le=5)
    """Minimum gap in seconds between two frames sent to the dongle."""
    read_timeout: float = Field(default=_CONNECTION_DEFAULTS["read_timeout"], gt=0, le=60)
    """Seconds to wait for the answer to a read."""
    write_timeout: float = Field(default=_CONNECTION_DEFAULTS["write_timeout"], gt=0, le=60)
    """Seconds to wait for the answer to a write."""
    read_retries: int = Field(default=_CONNECTION_DEFAULTS["read_retries"], ge=0, le=10)
    """Extra attempts after a read times out."""
    write_retries: int = Field(default=_CONNECTION_DEFAULTS["write_retries"], ge=0, le=10)
    """Extra attempts after a write times out."""
    retry_delay: float = Field(default=_CONNECTION_DEFAULTS["retry_delay"], ge=0, le=60)
    """Seconds of pause before each retry."""
    connect_timeout: float = Field(default=_CONNECTION_DEFAULTS["connect_timeout"], gt=0, le=120)
    """Seconds allowed to open the TCP connection."""
    backoff_max: float = Field(
        default=_CONNECTION_DEFAULTS["backoff_max"],
        ge=_CONNECTION_DEFAULTS["backoff_initial"],
        le=3600,
    )
    """Longest wait in seconds between reconnection attempts (the wait doubles from 1 s up to
    this)."""

    @field_validator("serial")
    @classmethod
    def _upper_serial(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().upper()
        if not is_valid_serial(value):
            raise ValueError(f"not a GivEnergy serial: expected {SERIAL_SHAPE}")
        return value

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


class ChargerConfig(_Section):
    """One GivEnergy EV charger (Modbus TCP) and how it is polled and steered."""

    host: Host
    """The charger's IP address or host name. Required."""
    port: Port = 502
    """The charger's Modbus TCP port."""
    name: str = Field(
        default="GivTCP", min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _-]*$"
    )
    """Home Assistant prefix of its entity ids (GivTCP's HADEVICEPREFIX)."""
    serial: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{3,30}$")
    """The charger serial expected at this address; another charger there is refused."""
    poll_interval: float = Field(default=10.0, ge=2, le=3600)
    """Seconds between polls."""
    timeout: float = Field(default=3.0, gt=0, le=60)
    """Seconds allowed for each request."""
    lockout_after: int = Field(default=10, ge=1, le=1000)
    """Failed polls in a row after which the charger's port is left alone (GivTCP's pause for
    the charger's Modbus port lock-out)."""
    lockout_pause: float = Field(default=300.0, ge=0, le=3600)
    """Seconds the charger's port is then left alone."""


class MqttTlsConfig(_Section):
    """TLS towards the MQTT broker."""

    enabled: bool = False
    """Connect to the broker over TLS."""
    ca_file: FilePath | None = None
    """CA bundle to verify the broker with. Unset: the system store."""
    certfile: FilePath | None = None
    """Client certificate for mutual TLS."""
    keyfile: FilePath | None = None
    """The client certificate's key (needs certfile)."""
    insecure: bool = False
    """Skip verification of the broker's certificate and host name (testing only)."""

    @field_validator("keyfile")
    @classmethod
    def _key_needs_cert(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("certfile") is None:
            raise ValueError("needs certfile as well")
        return value


class MqttConfig(_Section):
    """MQTT output and Home Assistant discovery."""

    enabled: bool = False
    """Publish to an MQTT broker. Default: true when host is set."""
    host: Host | None = Field(default=None, validate_default=True)
    """The broker's address (required when enabled)."""
    port: Port = 1883
    """The broker's port."""
    username: NonEmpty | None = None
    """User name at the broker."""
    password: SecretStr | None = Field(default=None, validate_default=True)
    """Password at the broker (needs username). Never printed."""
    tls: MqttTlsConfig = MqttTlsConfig()
    """TLS towards the broker: the ``[mqtt.tls]`` table."""
    client_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    """MQTT client id. Unset: givtcp-async-<this machine's host name>."""
    topic: Topic = "GivEnergy"
    """Root topic: data under <topic>/<serial>/..., controls under
    <topic>/control/<serial>/<command>."""
    retain: bool = True
    """Retain data messages."""
    changes_only: bool = True
    """After the first full publish, publish only values that changed."""
    discovery: bool = True
    """Announce the entities to Home Assistant (MQTT discovery)."""
    discovery_prefix: Topic = "homeassistant"
    """Home Assistant's discovery prefix."""
    discovery_format: Literal["device", "entity"] = "device"
    """How discovery is published: "device" (one retained payload per device, Home Assistant
    2024.11 and later; about 15% smaller) or "entity" (one per entity, GivTCP's topics: any
    Home Assistant). Configs the broker holds in the other format (GivTCP's, or an earlier
    setting's) are handed over: the entities keep their ids, names and history."""
    time_entities: Literal["auto", "select", "time"] = "auto"
    """How time-slot controls appear in Home Assistant: "auto" (the slots Predbat sets as
    selects of GivTCP's HH:MM:SS options, the others as time entities: Home Assistant 2026.5
    and later), "select" (every slot a select: Home Assistant before 2026.5) or "time"."""
    time_step: int = 5
    """Minutes between the options of the time selects Predbat sets: 1, 5, 10, 15 or 30 (1 is
    GivTCP's, every minute)."""
    all_entities: bool = False
    """Also announce to Home Assistant the values held back to keep the announcement small: a
    single-phase inverter's diagnostics (protection limits and times, power-factor and CEI-021
    settings, module codes), LV packs' status bytes and phases 2-3 of a meter behind a
    single-phase inverter; about 220 entities, 70 KB of retained configs. They start disabled:
    enable the ones you want on the device page. Off: their configs are removed."""
    internal_broker: bool = False
    """Run the bundled broker (mosquitto) on 127.0.0.1, and use it when host is unset."""
    allow_anonymous: bool = False
    """Accept an internal broker beyond loopback without username and password, which lets
    anyone on the network publish control commands."""
    offline_after: float = Field(default=300.0, gt=0, le=86400)
    """Seconds without an answer after which an inverter is marked offline in Home
    Assistant."""

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

    @field_validator("time_step")
    @classmethod
    def _step_divides_the_hour(cls, value: int) -> int:
        if value not in (1, 5, 10, 15, 30):
            raise ValueError("should be 1, 5, 10, 15 or 30 (minutes)")
        return value

    @field_validator("host")
    @classmethod
    def _host_when_enabled(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("enabled"):
            raise ValueError("required when mqtt.enabled is true")
        return value

    @model_validator(mode="after")
    def _no_open_internal_broker(self) -> MqttConfig:
        # Anyone who can reach an anonymous broker can publish control commands.
        if (
            self.enabled
            and self.internal_broker
            and self.username is None
            and not self.allow_anonymous
            and not _is_loopback(self.host)
        ):
            raise ValueError(
                f"the internal broker on {self.host} would let anyone on the network publish "
                "control commands: set mqtt.username and mqtt.password, or "
                "mqtt.allow_anonymous = true to accept that"
            )
        return self

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


#: Where control without a token is accepted from by default (besides loopback): the private
#: and link-local ranges, as GivTCP's add-on allowed.
PRIVATE_NETWORKS: Final = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                           "fc00::/7", "fe80::/10")  # fmt: skip


class RestConfig(_Section):
    """The REST API (GivTCP-compatible routes)."""

    enabled: bool = True
    """Serve the REST API and the dashboard."""
    host: Host = "127.0.0.1"
    """Address to listen on: 127.0.0.1 keeps it on this machine (the Docker image uses
    0.0.0.0)."""
    port: Port = 6345
    """Port to listen on."""
    token: SecretStr | None = None
    """Bearer token required by control (write) routes, at least 16 characters. Unset: no
    token, and control only from allow_from."""
    allowed_hosts: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=64
    )
    """Host names besides this server's own (its address, an IP literal, localhost, the
    machine's host name) under which requests are accepted, e.g. a reverse proxy's. Stops
    DNS-rebinding pages."""
    allow_from: list[IPvAnyNetwork] = Field(
        default_factory=lambda: [ip_network(n) for n in PRIVATE_NETWORKS], max_length=256
    )
    """Networks from which control is accepted without a token, besides loopback."""
    max_connections: int = Field(default=256, ge=8, le=100_000)
    """Connections held open at most; beyond it the oldest idle one is closed."""
    per_inverter_ports: bool = False
    """Also serve inverter n (from 0) on port + n with its routes unprefixed, as GivTCP did."""

    @field_validator("token")
    @classmethod
    def _token_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters long")
        return value


class InfluxConfig(_Section):
    """InfluxDB v2 output."""

    enabled: bool = False
    """Write power and energy values to InfluxDB v2. Default: true when url is set."""
    url: Annotated[str, AfterValidator(_check_url)] | None = Field(
        default=None, validate_default=True
    )
    """The server's http:// or https:// URL (required when enabled)."""
    token: SecretStr | None = None
    """API token. Never printed."""
    org: NonEmpty | None = None
    """Organisation."""
    bucket: NonEmpty | None = Field(default=None, validate_default=True)
    """Bucket (required when enabled)."""
    buffer_max_age: float = Field(default=3600.0, ge=0, le=7 * 86400)
    """Seconds an InfluxDB outage may last without losing points; older ones are dropped (and
    counted). 0 switches this bound off."""
    buffer_max_points: int = Field(default=100_000, ge=0, le=10_000_000)
    """Points held during an outage at most; beyond it the oldest are dropped (and counted).
    0 switches this bound off."""
    legacy_measurement: bool = False
    """Write GivTCP's layout (measurement = inverter serial, tag tagKey=GivReal, the power and
    energy fields in one point) instead of one measurement per group tagged with serial and
    model."""

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

    write_budget_per_day: int = Field(default=500, ge=0, le=100_000)
    """Most register writes allowed per inverter per day (the inverter keeps settings in
    EEPROM, which wears); 0 = no limit. Restores of timed overrides are never refused."""
    min_write_interval: float = Field(default=10.0, ge=0, le=3600)
    """Seconds before the same register may be written again; 0 = no limit. Restores are never
    refused."""
    state_dir: Path = Field(default_factory=default_state_dir)
    """Where the write counter, pending timed overrides and remembered scans are kept across
    restarts. Default: /var/lib/givtcp-async when writable, else
    $XDG_STATE_HOME/givtcp-async (~/.local/state/givtcp-async)."""
    dead_man_minutes: int = Field(default=0, ge=0, le=24 * 60)
    """Revert a forced charge, export or pause when no control command has arrived for this
    many minutes (its controller went silent); 0 = off."""
    time_sync: bool = False
    """Keep the inverter's clock in step with this machine's."""


class DataConfig(_Section):
    """What is published, and how stale it may get."""

    print_raw: bool = True
    """Also publish GivTCP 3's raw block: every register value under its GivTCP 3 name (in the
    givtcp2 layout every register as HR:n / IR:n). GivTCP's add-on forced it on."""
    stale_after: float = Field(default=600.0, ge=0, le=86400)
    """Seconds a last-good value may be republished (marked stale) before it becomes
    unavailable."""
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "Europe/London"
    """The plant's time zone (IANA name), for Today counters and slot times."""
    layout: Annotated[TreeLayout, BeforeValidator(parse_layout)] = TreeLayout.GIVTCP3
    """The runAll and MQTT tree: "givtcp3" (GivTCP 3.5's) or "givtcp2" (GivTCP 2.4's); "3",
    "3.5", "2" and "2.4" work too."""


def _hh_mm(value: Any) -> Any:
    """A time of day as "HH:MM" (GivTCP's DAYRATESTART form; "HHMM" and "H:MM" too)."""
    text = str(value).strip()
    match = re.fullmatch(r"([01]?[0-9]|2[0-3]):?([0-5][0-9])", text)
    if match is None:
        raise ValueError(f"must be a time of day HH:MM (got {text!r})")
    return f"{int(match[1]):02d}:{match[2]}"


TimeOfDay = Annotated[str, BeforeValidator(_hh_mm)]


class TariffConfig(_Section):
    """GivTCP's tariff tracking (Energy/Rates): import costs by day and night rate."""

    enabled: bool = True
    """Count today's import to the day or night rate and cost it (Energy/Rates)."""
    day_rate: float = Field(default=0.155, ge=0, le=100)
    """Day rate per kWh, in the currency."""
    night_rate: float = Field(default=0.055, ge=0, le=100)
    """Night rate per kWh, in the currency."""
    export_rate: float = Field(default=0.04, ge=0, le=100)
    """Export rate per kWh, in the currency."""
    day_start: TimeOfDay = "04:30"
    """When the day rate begins (HH:MM, local time)."""
    night_start: TimeOfDay = "00:30"
    """When the night rate begins (HH:MM, local time)."""
    dynamic: bool = False
    """The rate changes only when switchRate says so (an external schedule)."""
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "GBP"
    """The currency of the prices (ISO 4217), the unit of the costs."""


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
_LEVEL_ALIASES: Final = {"WARN": "WARNING", "WRITE_DEBUG": "DEBUG", "FATAL": "CRITICAL"}


class LoggingConfig(_Section):
    """Log output."""

    level: LogLevel = "INFO"
    """DEBUG, INFO, WARNING, ERROR or CRITICAL (any case; WARN, WRITE_DEBUG and FATAL too)."""
    format: Literal["auto", "console", "json"] = "auto"
    """How lines are written: "auto" (coloured text on a terminal, JSON lines otherwise),
    "console" or "json"."""
    file: Path | None = None
    """Also write JSON lines to this file (mode 0600), rotated by size."""
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=4096)
    """Size in bytes at which the log file is rotated."""
    backups: int = Field(default=5, ge=0, le=100)
    """Rotated log files kept."""

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
    """The inverters (dongles), one ``[[inverters]]`` table each; at least one."""
    chargers: list[ChargerConfig] = Field(default_factory=list)
    """GivEnergy EV chargers, one ``[[chargers]]`` table each; none by default."""
    mqtt: MqttConfig = MqttConfig()
    """MQTT output and Home Assistant discovery."""
    rest: RestConfig = RestConfig()
    """The REST API and the dashboard."""
    influx: InfluxConfig = InfluxConfig()
    """InfluxDB v2 output."""
    control: ControlConfig = Field(default_factory=lambda: ControlConfig())
    """Writes to the inverter."""
    data: DataConfig = DataConfig()
    """What is published, and how stale it may get."""
    tariff: TariffConfig = TariffConfig()
    """Tariff tracking (Energy/Rates)."""
    logging: LoggingConfig = LoggingConfig()
    """Log output."""

    @field_validator("inverters", "chargers", mode="before")
    @classmethod
    def _from_positions(cls, value: Any, info: ValidationInfo) -> Any:
        # Sources deliver the list as {"0": {...}, "1": {...}} so that they can merge by position.
        what = "inverter" if info.field_name == "inverters" else "charger"
        if isinstance(value, Mapping):
            positions: dict[int, Any] = {}
            for key, entry in value.items():
                if not (isinstance(key, int) or (isinstance(key, str) and key.isdigit())):
                    raise ValueError(
                        f"expected a list of {what}s ([[{what}s]] tables), found key {key!r}"
                    )
                positions[int(key)] = entry
            missing = [i for i in range(max(positions, default=-1) + 1) if i not in positions]
            if missing:
                raise ValueError(
                    f"{what} {missing[0]} is missing: {what}s are numbered 0, 1, 2, ... "
                    "without gaps"
                )
            value = [positions[i] for i in sorted(positions)]
        if isinstance(value, list) and what == "inverter":
            value = [
                {**entry, "name": f"GivTCP{i + 1}"}
                if i > 0 and isinstance(entry, dict) and "name" not in entry
                else entry
                for i, entry in enumerate(value)
            ]
        return value

    @field_validator("inverters", "chargers")
    @classmethod
    def _distinct(
        cls, value: list[InverterConfig] | list[ChargerConfig], info: ValidationInfo
    ) -> list[InverterConfig] | list[ChargerConfig]:
        what = "inverter" if info.field_name == "inverters" else "charger"
        seen: dict[tuple[str, int], int] = {}
        entries: list[InverterConfig | ChargerConfig] = list(value)
        for i, entry in enumerate(entries):
            key = (entry.host.lower(), entry.port)
            if key in seen:
                raise ValueError(f"{what} {i} has the same host and port as {what} {seen[key]}")
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
        sources = SOURCES.get()
        return (init_settings,) if sources is None else sources(settings_cls, init_settings)
