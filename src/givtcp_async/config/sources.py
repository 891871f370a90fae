"""Where settings come from: a TOML file, ``GIVTCP_`` variables and GivTCP's own variables.

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
(:class:`pydantic.SecretStr`) are never echoed (:mod:`givtcp_async.config.report`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError
from pydantic_settings.sources.utils import parse_env_vars

from givtcp_async.config.models import ENV_DELIMITER, ENV_PREFIX, SOURCES, Settings
from givtcp_async.config.report import SECRET_KEY_NAMES, describe_errors
from givtcp_async.errors import ConfigError

#: ``GIVTCP_`` variables that are not settings keys, so never rejected as unknown.
RESERVED_ENV: Final = frozenset({"GIVTCP_CONFIG", "GIVTCP_SHARED"})
#: Files tried, in order, when no path is given and ``$GIVTCP_CONFIG`` is unset.
DEFAULT_CONFIG_PATHS: Final = (Path("givtcp-async.toml"), Path("/etc/givtcp-async/config.toml"))
LEGACY_LOG_FILE_NAME: Final = "givtcp-async.log"
MAX_LEGACY_INVERTERS: Final = 5


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

    def sources(
        self, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The sources of one load, highest precedence first (see the module docstring)."""
        toml = _TomlSource(settings_cls, self.path)
        env = _PrefixedEnvSource(settings_cls, self.environ)
        legacy = _LegacyEnvSource(settings_cls, self.environ, toml.positions())
        self.origins = [self.override_origins, env.origins, legacy.origins, toml.origins]
        return (init_settings, env, legacy, toml)

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


_LISTS: Final = ("inverters", "chargers")  # lists of tables, merged by position


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
        for key in _LISTS:
            if key in self.init_kwargs:
                self.init_kwargs[key] = _positional(self.init_kwargs[key])
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
        if value is not None and (field_name in _LISTS or self.field_is_complex(field)):
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
    ("DYNAMICTARIFF", ("tariff", "dynamic")),
    ("DAYRATE", ("tariff", "day_rate")),
    ("NIGHTRATE", ("tariff", "night_rate")),
    ("EXPORTRATE", ("tariff", "export_rate")),
    ("DAYRATESTART", ("tariff", "day_start")),
    ("NIGHTRATESTART", ("tariff", "night_start")),
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
# GivTCP's EV charger: one, used only while EVC_ENABLE is true (as in GivTCP's add-on).
_LEGACY_CHARGER: Final[tuple[tuple[str, str], ...]] = (
    ("EVC_IP_ADDRESS", "host"),
    ("EVC_SELF_RUN_TIMER", "poll_interval"),
)
_TRUTHY: Final = frozenset({"true", "1", "yes", "on"})


def _evc_enabled(environ: Mapping[str, str]) -> bool:
    return environ.get("EVC_ENABLE", "").strip().lower() in _TRUTHY


def _legacy_table() -> list[tuple[str, str]]:
    rows = [(var, ".".join(path)) for var, path in _LEGACY_GLOBAL]
    for names, key in _LEGACY_PER_INVERTER:
        for name in names:
            rows.append((name, f"inverters.0.{key}"))
            rows.append((f"{name}_n", f"inverters.<n-1>.{key} (n = 1..{MAX_LEGACY_INVERTERS})"))
    rows.extend((var, f"inverters.*.{key}") for var, key in _LEGACY_ALL_INVERTERS)
    rows.append(("EVC_ENABLE", "chargers.0 (the EVC_ variables apply only while it is true)"))
    rows.extend((var, f"chargers.0.{key}") for var, key in _LEGACY_CHARGER)
    return rows


#: (GivTCP variable, settings key) for every GivTCP environment variable that is honoured.
LEGACY_VARIABLES: Final[tuple[tuple[str, str], ...]] = tuple(_legacy_table())

_UNUSED_LEGACY: Final = re.compile(
    r"^(SELF_RUN|NUMINVERTORS|INVERTOR_(AIO|AC|NAME)(_\d)?|MQTT_TOPIC_\d"
    r"|QUEUE_RETRIES|HOSTIP|WEB_DASH(_PORT)?"
    r"|CACHELOCATION|DATASMOOTHER|SMARTTARGET|GEAPI|SOLCAST(API|SITEID2?)|PALM_\w+"
    r"|LOAD_HIST_WEIGHT)$"
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
        if _evc_enabled(self._environ):
            for var, key in _LEGACY_CHARGER:
                yield var, ("chargers", "0", key), self._environ.get(var, "")

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
        nested: Any = _positional(value) if parts[-1] in _LISTS else value
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
        if (overrides or {}).get(key) is not None:  # a flag not given supplied nothing
            override_origins.labels[tuple(key.split("."))] = label
    plan = _LoadPlan(path=file, environ=env, override_origins=override_origins)
    token = SOURCES.set(plan.sources)
    try:
        return Settings(**init)
    except ValidationError as err:
        raise ConfigError(describe_errors(err, plan.origin)) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{file}: invalid TOML: {err}") from None
    except RecursionError:
        # tomllib (and the validators) recurse per level: thousands of nested arrays or tables
        where = f"{file}" if file is not None else "the environment"
        raise ConfigError(f"{where}: invalid configuration: nested too deeply") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{file}: not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise ConfigError(f"{file}: cannot read: {err.strerror}") from None
    except SettingsError as err:
        raise ConfigError(str(err)) from None
    finally:
        SOURCES.reset(token)


def unused_legacy_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """GivTCP environment variables present in ``environ`` that givtcp-async does not use."""
    env = os.environ if environ is None else environ
    unused = {name for name, value in env.items() if value and _UNUSED_LEGACY.match(name)}
    if not _evc_enabled(env):  # the charger's address and timer wait for EVC_ENABLE
        unused |= {var for var, _ in _LEGACY_CHARGER if env.get(var, "").strip()}
    return sorted(unused)
