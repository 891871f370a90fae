"""MQTT test helpers: an independent aiomqtt client that records messages, and Home Assistant's
discovery rules written down as a checker."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

import aiomqtt

_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Seen:
    seq: int
    topic: str
    payload: str
    retain: bool


@dataclass
class Watcher:
    """Records every message a test client receives; waits for the ones a test expects."""

    client: aiomqtt.Client
    log: list[Seen] = field(default_factory=list)
    latest: dict[str, Seen] = field(default_factory=dict)
    _signal: asyncio.Event = field(default_factory=asyncio.Event)

    def mark(self) -> int:
        return len(self.log)

    async def _pump(self) -> None:
        async for msg in self.client.messages:
            payload = msg.payload
            text = payload.decode() if isinstance(payload, bytes | bytearray) else str(payload)
            seen = Seen(len(self.log), msg.topic.value, text, msg.retain)
            self.log.append(seen)
            self.latest[seen.topic] = seen
            self._signal.set()
            self._signal = asyncio.Event()

    async def wait(
        self, predicate: Callable[[Seen], bool], *, after: int = 0, timeout: float = 10.0
    ) -> Seen:
        """The first message at or after ``after`` that satisfies ``predicate``."""
        async with asyncio.timeout(timeout):
            while True:
                signal = self._signal
                for seen in self.log[after:]:
                    if predicate(seen):
                        return seen
                after = len(self.log)
                await signal.wait()

    async def wait_topic(
        self, topic: str, payload: str | None = None, *, after: int = 0, timeout: float = 10.0
    ) -> Seen:
        return await self.wait(
            lambda s: s.topic == topic and (payload is None or s.payload == payload),
            after=after,
            timeout=timeout,
        )

    async def sync(self) -> None:
        """Return once every message the broker had for this client has arrived."""
        topic = f"test/sync/{next(_ids)}"
        await self.client.subscribe(topic)
        mark = self.mark()
        await self.client.publish(topic, "sync")
        await self.wait_topic(topic, after=mark)

    def discovered(self, prefix: str = "homeassistant") -> dict[str, dict[str, Any]]:
        """Every discovery config seen, as Home Assistant reads it (abbreviations and ``~``
        expanded; the latest per topic; an empty one removes it)."""
        configs: dict[str, dict[str, Any]] = {}
        for s in self.log:
            if s.topic.startswith(f"{prefix}/"):
                if s.payload:
                    configs[s.topic] = expand(s.payload)
                else:
                    configs.pop(s.topic, None)
        return configs

    async def result(self, topic: str, *, after: int, timeout: float = 10.0) -> dict[str, Any]:
        seen = await self.wait_topic(topic, after=after, timeout=timeout)
        body: dict[str, Any] = json.loads(seen.payload)
        return body


@contextlib.asynccontextmanager
async def watching(port: int, *topics: str, **options: Any) -> AsyncIterator[Watcher]:
    """A test client on 127.0.0.1:``port`` subscribed to ``topics``."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"test-{next(_ids)}", **options) as c:
        watcher = Watcher(c)
        pump = asyncio.create_task(watcher._pump())
        try:
            for topic in topics:
                await c.subscribe(topic, qos=1)
            yield watcher
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await pump


# --- Home Assistant's rules --------------------------------------------------------------------

# Units Home Assistant accepts per sensor/number device class (the classes this project uses).
UNITS: Mapping[str, set[str | None]] = {
    "power": {"W", "kW", "MW", "GW", "mW", "BTU/h"},
    "energy": {"Wh", "kWh", "MWh", "GWh", "TWh", "mWh", "J", "kJ", "MJ", "GJ", "cal", "kcal"},
    "energy_storage": {"Wh", "kWh", "MWh", "GWh", "TWh", "mWh", "J", "kJ", "MJ", "GJ"},
    "voltage": {"V", "mV", "kV", "µV", "MV"},
    "current": {"A", "mA"},
    "frequency": {"Hz", "kHz", "MHz", "GHz"},
    "temperature": {"°C", "°F", "K"},
    "battery": {"%"},
    "duration": {"d", "h", "min", "s", "ms", "µs"},
    "power_factor": {None, "%"},
    "apparent_power": {"VA", "kVA"},
    "monetary": {"GBP", "EUR", "USD"},  # HA takes any ISO 4217 currency
    "reactive_power": {"var", "kvar"},
}
# Not here: ``reactive_energy`` (home-assistant/core#143941, after 2025.4: 2025.4.4 refuses an
# entity with it).

# Home Assistant's discovery abbreviations (home-assistant/core, homeassistant/components/mqtt/
# abbreviations.py), the ones that may appear here, written down independently of the code under
# test: a payload is expanded with them as Home Assistant does before any rule is checked.
EXPANSIONS: Mapping[str, str] = {
    "avty": "availability", "avty_mode": "availability_mode", "avty_t": "availability_topic",
    "cmd_tpl": "command_template",
    "cmd_t": "command_topic", "def_ent_id": "default_entity_id", "dev": "device",
    "dev_cla": "device_class", "en": "enabled_by_default", "ent_cat": "entity_category",
    "ic": "icon", "obj_id": "object_id", "ops": "options", "o": "origin", "pl_off": "payload_off",
    "pl_on": "payload_on", "pl_prs": "payload_press", "stat_cla": "state_class",
    "stat_off": "state_off", "stat_on": "state_on", "stat_t": "state_topic",
    "sug_dsp_prc": "suggested_display_precision", "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement", "val_tpl": "value_template",
    "pl_avail": "payload_available", "pl_not_avail": "payload_not_available",
}  # fmt: skip
DEVICE_EXPANSIONS: Mapping[str, str] = {
    "cu": "configuration_url", "ids": "identifiers", "mf": "manufacturer", "mdl": "model",
    "sn": "serial_number", "sw": "sw_version", "hw": "hw_version", "sa": "suggested_area",
}  # fmt: skip
# Device keys Home Assistant 2024.1 accepts (homeassistant/components/mqtt/mixins.py,
# MQTT_ENTITY_DEVICE_INFO_SCHEMA: any other key, serial_number and model_id included, makes it
# refuse the whole entity).
DEVICE_KEYS = {
    "identifiers", "connections", "name", "manufacturer", "model",
    "sw_version", "hw_version", "suggested_area", "via_device", "configuration_url",
}  # fmt: skip
ORIGIN_EXPANSIONS: Mapping[str, str] = {"sw": "sw_version", "url": "support_url"}


def expand(payload: str | Mapping[str, Any]) -> dict[str, Any]:
    """A discovery payload as Home Assistant reads it: abbreviations expanded, then ``~`` at the
    start of a topic replaced by the payload's ``~`` base (homeassistant/components/mqtt/
    discovery.py does both)."""
    raw = json.loads(payload) if isinstance(payload, str) else dict(payload)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        key = EXPANSIONS.get(key, key)
        if key == "device":
            value = {DEVICE_EXPANSIONS.get(k, k): v for k, v in value.items()}
        elif key == "origin":
            value = {
                {"sw": "sw_version", "url": "support_url"}.get(k, k): v for k, v in value.items()
            }
        elif key == "availability":
            value = [{{"t": "topic"}.get(k, k): v for k, v in a.items()} for a in value]
        out[key] = value
    base = out.pop("~", None)
    if base is not None:
        for key, value in out.items():
            if key.endswith("_topic") and isinstance(value, str) and value.startswith("~"):
                out[key] = base + value[1:]
        for a in out.get("availability", ()):
            if a["topic"].startswith("~"):
                a["topic"] = base + a["topic"][1:]
    return out


# The options a device payload may hold for all its components, each inherited by a component
# that has not its own (homeassistant/components/mqtt/schemas.py, SHARED_OPTIONS). "~" is not
# one of them: a component's "~" is its own.
SHARED_OPTIONS = (
    "availability", "availability_mode", "availability_template", "availability_topic",
    "command_topic", "payload_available", "payload_not_available", "state_topic",
)  # fmt: skip


def expand_device(topic: str, payload: str) -> dict[str, dict[str, Any]]:
    """A device payload's components as Home Assistant makes them entities, each under the
    topic a per-entity config of it would have (``<prefix>/<platform>/<payload id>/<component
    id>/config``): abbreviations expanded, the device block, ``origin`` and the shared options
    added, the component's own ``~`` applied. A component of its platform alone (a removal)
    is left out."""
    prefix, kind, _node, object_id, _ = topic.split("/")
    assert kind == "device", topic
    raw = json.loads(payload)
    top = expand({k: v for k, v in raw.items() if k not in ("cmps", "components")})
    out: dict[str, dict[str, Any]] = {}
    for key, comp in raw.get("cmps", raw.get("components", {})).items():
        platform = comp.get("p", comp.get("platform"))
        if len(comp) == 1:
            continue
        config = expand({k: v for k, v in comp.items() if k not in ("p", "platform")})
        config["device"], config["origin"] = top["device"], top["origin"]
        for option in SHARED_OPTIONS:
            if option in top and option not in config:
                config[option] = top[option]
        out[f"{prefix}/{platform}/{object_id}/{key}/config"] = config
    return out


def ha_configs(latest: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Every entity config Home Assistant reads from retained discovery messages (topic ->
    payload) of either format, by its (pseudo) per-entity topic."""
    out: dict[str, dict[str, Any]] = {}
    for topic, payload in latest.items():
        if not payload:
            continue
        if topic.split("/")[1] == "device":
            out.update(expand_device(topic, payload))
        else:
            out[topic] = expand(payload)
    return out


STATE_CLASSES = {"measurement", "total", "total_increasing"}
PLATFORMS = {"sensor", "number", "select", "switch", "button", "time"}
_ENTITY_ID = re.compile(r"^(?P<platform>[a-z_]+)\.[a-z0-9_]+$")
_ID_CHARS = re.compile(r"^[A-Za-z0-9_-]+$")


def ha_entity_id(platform: str, config: Mapping[str, Any]) -> str:
    """The entity id Home Assistant gives a discovered entity: ``default_entity_id`` where sent,
    else its device's name and its own name slugified (as Home Assistant's slugify does)."""
    if "default_entity_id" in config:
        return str(config["default_entity_id"])
    text = f"{config['device']['name']} {config['name']}".lower()
    return f"{platform}." + re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def by_entity_id(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Discovery configs (by discovery topic) by the entity id Home Assistant gives each."""
    return {ha_entity_id(topic.split("/")[1], c): c for topic, c in configs.items()}


def problems(topic: str, config: Mapping[str, Any]) -> list[str]:
    """What Home Assistant would refuse or mis-handle in one discovery payload."""
    out: list[str] = []
    parts = topic.split("/")
    if len(parts) != 5 or parts[-1] != "config":
        return [f"{topic}: not <prefix>/<platform>/<node>/<object>/config"]
    platform = parts[1]
    if platform not in PLATFORMS:
        out.append(f"unknown platform {platform}")
    if not (_ID_CHARS.match(parts[2]) and _ID_CHARS.match(parts[3])):
        out.append("node or object id outside [A-Za-z0-9_-]")
    device = config.get("device", {})
    if "default_entity_id" in config or "object_id" in config:
        m = _ENTITY_ID.match(str(config.get("default_entity_id", "")))
        if m is None or m["platform"] != platform:
            out.append(f"default_entity_id {config.get('default_entity_id')!r}")
        # HA before 2025.10 takes the entity id from object_id; later ones ignore it beside
        # default_entity_id (home-assistant/core#151996), so the two must name the same id.
        if f"{platform}.{config.get('object_id')}" != config.get("default_entity_id"):
            out.append("object_id and default_entity_id differ")
    elif not device.get("name"):
        out.append("an entity id derived from the device's name needs the name")
    for key in ("unique_id", "name"):
        if not isinstance(config.get(key), str) or not config[key]:
            out.append(f"missing {key}")
    if not device.get("identifiers"):
        out.append("device needs identifiers")
    if set(device) - DEVICE_KEYS:
        out.append(f"device keys HA 2024.1 refuses: {sorted(set(device) - DEVICE_KEYS)}")
    if "origin" in config and not config["origin"].get("name"):
        out.append("origin needs a name")
    if any("~" in str(v) for v in config.values() if isinstance(v, str)):
        out.append("an unexpanded ~ is left")
    avail = config.get("availability")
    if avail is not None:
        if not avail or not all(a.get("topic") for a in avail):
            out.append("availability list")
        if config.get("availability_mode") != "all":
            out.append("availability_mode should be all")
        if "availability_topic" in config:
            out.append("availability and availability_topic together")
    elif not str(config.get("availability_topic", "")).endswith("/Stats/status"):
        out.append("no availability")
    if platform != "sensor" and platform != "button" and "command_topic" not in config:
        out.append("controls need a command_topic")
    if platform == "button" and "command_topic" not in config:
        out.append("button needs a command_topic")
    if platform in ("sensor", "switch", "number", "time") and "state_topic" not in config:
        out.append("state_topic missing")
    out.extend(_platform_problems(platform, config))
    return [f"{topic}: {p}" for p in out]


def _platform_problems(platform: str, config: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    dc = config.get("device_class")
    unit = config.get("unit_of_measurement")
    sc = config.get("state_class")
    if platform == "sensor":
        if config.get("entity_category") == "config":
            out.append("a sensor cannot be a config entity")
        if sc is not None and sc not in STATE_CLASSES:
            out.append(f"state_class {sc}")
        if dc == "enum":
            if not config.get("options") or unit or sc:
                out.append("enum needs options and no unit or state_class")
        elif dc == "timestamp":
            if unit or sc:
                out.append("timestamp takes no unit or state_class")
        elif dc is not None and (dc not in UNITS or unit not in UNITS[dc]):
            out.append(f"unit {unit!r} not allowed for {dc}")
        if dc == "energy" and sc not in ("total", "total_increasing"):
            out.append("energy needs total or total_increasing")
    elif platform == "number":
        lo, hi, step = config.get("min"), config.get("max"), config.get("step")
        if not all(isinstance(v, int | float) for v in (lo, hi, step)):
            out.append("number needs numeric min, max and step (min defaults to 1)")
        elif not (lo < hi and step > 0):  # type: ignore[operator]
            out.append("number range")
        if config.get("mode", "auto") not in ("auto", "box", "slider"):
            out.append("number mode")
        if dc is not None and (dc not in UNITS or unit not in UNITS[dc]):
            out.append(f"unit {unit!r} not allowed for {dc}")
    elif platform == "select":
        options = config.get("options")
        if not options or not all(isinstance(o, str) for o in options):
            out.append("select needs options (strings)")
        elif len(set(options)) != len(options):
            out.append("duplicate options")
    elif platform == "switch":
        for key in ("payload_on", "payload_off", "state_on", "state_off"):
            if not isinstance(config.get(key), str):
                out.append(f"switch needs {key}")
    elif platform == "button" and dc not in (None, "restart", "update", "identify"):
        out.append(f"button device_class {dc}")
    return out


def state_problems(platform: str, config: Mapping[str, Any], value: str | None) -> list[str]:
    """Whether the value on an entity's state topic is one HA would accept."""
    if "state_topic" not in config:
        return []
    name = config["unique_id"]
    if value is None:
        return [f"{name}: nothing on {config['state_topic']}"]
    dc = config.get("device_class")
    try:
        if platform == "sensor":
            if dc == "enum":
                assert value in config["options"], "not an option"
            elif dc == "timestamp":
                assert datetime.fromisoformat(value).tzinfo is not None, "no time zone"
            elif config.get("state_class") or dc in UNITS or "unit_of_measurement" in config:
                float(value)  # HA treats the sensor as numeric
        elif platform == "number":
            assert config["min"] <= float(value) <= config["max"], "out of range"
        elif platform == "select":
            assert value in config["options"], "not an option"
        elif platform == "switch":
            assert value in (config["state_on"], config["state_off"]), "not on/off"
        elif platform == "time":
            time.fromisoformat(value)
    except (AssertionError, ValueError) as err:
        return [f"{name}: {value!r}: {err}"]
    return []
