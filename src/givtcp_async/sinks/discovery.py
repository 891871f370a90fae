"""Home Assistant MQTT discovery payloads, built from a snapshot's specs and the control catalogue.

Pure (no I/O). Design:

* **Per-entity discovery**, retained, on GivTCP's own topics
  ``<prefix>/<platform>/GivEnergy/<serial>_<Field>/config`` (battery entities
  ``<serial>_<battery serial>_<Field>``). Per-entity discovery works on every HA version, keeps
  each payload small (a time-slot select carries 1,440 options) and, with GivTCP's topics and
  unique ids, replacing GivTCP updates its entities in place instead of duplicating them.
* **Ids**: ``unique_id`` is GivTCP's ``<device prefix>_<serial>_<Field>`` (device prefix = the
  inverter's ``name``: GivTCP, GivTCP2, ...); ``default_entity_id`` is
  ``<platform>.givtcp_<serial>_<field>`` in lower case (never ``object_id``), the ids
  Predbat's templates look for.
* **Devices**: one per inverter, one per battery pack and per meter, the latter linked to the
  inverter with ``via_device``; every payload carries the device and ``origin``.
* **Availability**: every entity needs the daemon's bridge topic *and* its inverter's
  ``Stats/status`` topic to say ``online`` (``availability_mode: all``).
* **State**: every ``state_topic`` is a topic :class:`~givtcp_async.sinks.state_topics.
  StateTopics` publishes (same path rules); controls command the MQTT control topics.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from givtcp_async import __version__
from givtcp_async.control.catalogue import CATALOGUE, Catalogue, ControlFunction, Platform
from givtcp_async.layout import TreeLayout, device_paths, group, render
from givtcp_async.registers.derived import MODES
from givtcp_async.registers.schema import HA, Derived, Field
from givtcp_async.sinks.state_topics import Message, state_base
from givtcp_async.snapshot import DeviceSnapshot, Snapshot, Spec

MANUFACTURER: Final = "GivEnergy"
NODE_ID: Final = "GivEnergy"  # GivTCP's discovery node id (HA ignores it; it groups topics)
ORIGIN: Final = {"name": "givtcp-async", "sw_version": __version__}
ONLINE: Final = "online"
OFFLINE: Final = "offline"
BRIDGE_STATUS: Final = "bridge/status"
STATUS_PATH: Final = "Stats/status"

# Every minute of the day as a time-slot select offers it (GivTCP's form, which Predbat sets).
TIME_OPTIONS: Final = tuple(f"{h:02d}:{m:02d}:00" for h in range(24) for m in range(60))

# Read-back states of selects that the command does not accept (shown, so HA can display them).
_READBACK: Final[Mapping[str, tuple[str, ...]]] = {"Mode": (*MODES, "Unknown")}

# Statistics the coordinator adds to every snapshot, as diagnostic sensors.
_STATS: Final[Mapping[str, HA]] = {
    "Last_Updated_Time": HA(device_class="timestamp", entity_category="diagnostic"),
    "Time_Since_Last_Update": HA(
        device_class="duration", state_class="measurement", entity_category="diagnostic"
    ),
    "GivTCP_Version": HA(entity_category="diagnostic"),
    "Write_Count": HA(state_class="total_increasing", entity_category="diagnostic"),
    "Timeout_Error": HA(state_class="total_increasing", entity_category="diagnostic"),
}
_STATS_UNITS: Final = {"Time_Since_Last_Update": "s"}

_NUMBER_DEVICE_CLASSES: Final = frozenset({"power", "energy", "battery", "current", "voltage"})
_RESTART_BUTTONS: Final = frozenset({"rebootInverter"})
_CONTROL_PLATFORMS: Final = frozenset({"number", "select", "switch"})
_ID_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")
_SLUG_UNSAFE: Final = re.compile(r"[^a-z0-9_]+")

Platforms = Literal["sensor", "number", "select", "switch", "button", "time"]


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """Where things are published and how entities are presented."""

    root: str = "GivEnergy"
    prefix: str = "homeassistant"
    device_prefix: str = "GivTCP"  # the inverter's configured name
    time_entities: Literal["select", "time"] = "select"
    configuration_url: str | None = None


@dataclass(frozen=True, slots=True)
class Entity:
    """One discovered entity: its discovery topic and config."""

    platform: str
    object_id: str
    config: Mapping[str, Any]

    def topic(self, prefix: str) -> str:
        return discovery_topic(prefix, self.platform, self.object_id)

    @property
    def state_topic(self) -> str | None:
        value = self.config.get("state_topic")
        return value if isinstance(value, str) else None


# --- topics ----------------------------------------------------------------------------------


def bridge_topic(root: str) -> str:
    """The daemon's availability: ``online`` while connected, ``offline`` as its last will."""
    return f"{root}/{BRIDGE_STATUS}"


def status_topic(root: str, serial: str) -> str:
    """One inverter's availability (GivTCP's topic)."""
    return f"{state_base(root, serial)}/{STATUS_PATH}"


def command_topic(root: str, serial: str, function: str) -> str:
    return f"{state_base(root, serial)}/control/{function}"


def result_topic(root: str, serial: str, function: str) -> str:
    return f"{command_topic(root, serial, function)}/result"


def discovery_topic(prefix: str, platform: str, object_id: str) -> str:
    return f"{prefix}/{platform}/{NODE_ID}/{object_id}/config"


def ha_status_topic(prefix: str) -> str:
    """Home Assistant's birth and last-will topic."""
    return f"{prefix}/status"


def field_topic(root: str, serial: str, spec: Spec, layout: TreeLayout = TreeLayout.GIVTCP3) -> str:
    """Where an inverter-level value lives (as :meth:`Snapshot.runall` places it)."""
    return "/".join((state_base(root, serial), *group(layout, spec.path, serial), spec.name))


def device_topic_bases(root: str, snapshot: Snapshot) -> dict[int, str]:
    """Where each battery's and meter's values live (as :meth:`Snapshot.runall` nests them),
    by device address."""
    base = state_base(root, snapshot.serial)
    paths = device_paths(snapshot.layout, (*snapshot.batteries, *snapshot.meters))
    return {address: "/".join((base, *path)) for address, path in paths.items()}


def _safe_id(text: str) -> str:
    return _ID_UNSAFE.sub("_", text)


def _slug(text: str) -> str:
    return _SLUG_UNSAFE.sub("_", text.lower()).strip("_")


def entity_slug(device_prefix: str, owner: str, name: str) -> str:
    """The object part of the entity id: ``givtcp_sa1234g567_battery_power_reserve``."""
    return f"{_slug(device_prefix)}_{_slug(owner)}_{_slug(name)}"


# --- devices ---------------------------------------------------------------------------------


def inverter_device(snapshot: Snapshot, cfg: DiscoveryConfig) -> dict[str, Any]:
    firmware = snapshot.value("Invertor_Firmware") or snapshot.model.firmware
    device: dict[str, Any] = {
        "identifiers": [inverter_identifier(snapshot.serial)],
        "name": f"{cfg.device_prefix} {snapshot.serial}",
        "manufacturer": MANUFACTURER,
        "model": snapshot.model.name,
        "model_id": snapshot.model.dtc,
        "serial_number": snapshot.serial,
        "sw_version": str(firmware),
    }
    if cfg.configuration_url:
        device["configuration_url"] = cfg.configuration_url
    return device


def inverter_identifier(serial: str) -> str:
    return f"givtcp_{serial}"


def _sub_device(
    snapshot: Snapshot, dev: DeviceSnapshot, kind: str, cfg: DiscoveryConfig
) -> dict[str, Any]:
    if kind == "battery":
        ident = f"givtcp_{dev.serial}"
        name = f"{cfg.device_prefix} Battery {dev.serial}"
        model = "Battery"
        firmware = _value(dev, "Battery_Firmware_Version")
    else:
        ident = f"givtcp_{snapshot.serial}_meter_{dev.address}"
        name = f"{cfg.device_prefix} {snapshot.serial} Meter {dev.address}"
        model = "Energy meter"
        firmware = None
    device: dict[str, Any] = {
        "identifiers": [ident],
        "name": name,
        "manufacturer": MANUFACTURER,
        "model": model,
        "via_device": inverter_identifier(snapshot.serial),
    }
    if dev.serial and kind == "battery":
        device["serial_number"] = dev.serial
    if firmware is not None:
        device["sw_version"] = str(firmware)
    return device


def _value(dev: DeviceSnapshot, name: str) -> Any:
    reading = dev.values.get(name)
    return None if reading is None else reading.value


# --- entities --------------------------------------------------------------------------------


class _Builder:
    def __init__(self, snapshot: Snapshot, cfg: DiscoveryConfig, catalogue: Catalogue) -> None:
        self.snap = snapshot
        self.cfg = cfg
        self.catalogue = catalogue
        self.serial = snapshot.serial
        self.availability = [
            {"topic": bridge_topic(cfg.root)},
            {"topic": status_topic(cfg.root, snapshot.serial)},
        ]
        self.entities: list[Entity] = []
        self.removals: list[str] = []
        self._unique: set[str] = set()

    def _common(
        self, platform: str, name: str, unique_id: str, slug: str, device: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "name": name.replace("_", " "),
            "unique_id": unique_id,
            "default_entity_id": f"{platform}.{slug}",
            "device": device,
            "origin": ORIGIN,
            "availability": self.availability,
            "availability_mode": "all",
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
        }

    def _add(self, platform: str, object_id: str, config: dict[str, Any]) -> None:
        unique = str(config["unique_id"])
        if unique in self._unique:
            return
        self._unique.add(unique)
        self.entities.append(Entity(platform, _safe_id(object_id), config))

    # -- inverter fields and controls --

    def inverter(self) -> None:
        device = inverter_device(self.snap, self.cfg)
        model = self.snap.model
        used: set[str] = set()
        controls: dict[str, ControlFunction] = {}
        for fn in self.catalogue.available(model):
            if fn.ha is not None:
                controls[fn.name] = fn
        by_field: dict[str, ControlFunction] = {}
        for name, spec in self.snap.specs.items():
            if spec.control and spec.control in controls:
                by_field[name] = controls[spec.control]
        for fn in controls.values():
            mirrored = fn.mirrors.rsplit("/", 1)[-1] if fn.mirrors else None
            if fn.ha is not None and fn.ha.platform is Platform.BUTTON:
                continue  # a button has no state: GivTCP's placeholder value stays unannounced
            if mirrored and mirrored in self.snap.specs and mirrored not in by_field:
                by_field[mirrored] = fn
        for name, spec in self.snap.specs.items():
            topic = field_topic(self.cfg.root, self.serial, spec, self.snap.layout)
            unique = f"{self.cfg.device_prefix}_{self.serial}_{name}"
            slug = entity_slug(self.cfg.device_prefix, self.serial, name)
            object_id = f"{self.serial}_{name}"
            control = by_field.get(name)
            if control is not None:
                self._control(control, spec, name, unique, slug, object_id, topic, device)
                used.add(control.name)
            elif spec.ha is not None:
                self._sensor(spec, spec.ha, name, unique, slug, object_id, topic, device)
        for fn in controls.values():
            if fn.name in used or fn.ha is None:
                continue
            if fn.ha.platform is Platform.BUTTON or fn.override:
                name = fn.mirrors.rsplit("/", 1)[-1] if fn.mirrors else fn.name
                unique = f"{self.cfg.device_prefix}_{self.serial}_{name}"
                slug = entity_slug(self.cfg.device_prefix, self.serial, name)
                self._stateless(fn, name, unique, slug, f"{self.serial}_{name}", device)
        base = state_base(self.cfg.root, self.serial)
        for key, ha in _STATS.items():
            if key not in self.snap.stats:
                continue
            unique = f"{self.cfg.device_prefix}_{self.serial}_{key}"
            slug = entity_slug(self.cfg.device_prefix, self.serial, key)
            config = self._common("sensor", key, unique, slug, device)
            config["state_topic"] = f"{base}/Stats/{key}"
            _classify(config, ha, _STATS_UNITS.get(key), None)
            self._add("sensor", f"{self.serial}_{key}", config)

    def _sensor(
        self,
        spec: Spec,
        ha: HA,
        name: str,
        unique: str,
        slug: str,
        object_id: str,
        topic: str,
        device: Mapping[str, Any],
    ) -> None:
        config = self._common("sensor", name, unique, slug, device)
        config["state_topic"] = topic
        options = spec.options if isinstance(spec, Field) else None
        if options is not None:  # the texts the layout publishes (GivTCP 3.5's "Em115")
            layout, model = self.snap.layout, self.snap.model
            options = {k: str(render(layout, name, v, model)) for k, v in options.items()}
        _classify(config, ha, spec.unit, options)
        self._add("sensor", object_id, config)

    def _control(
        self,
        fn: ControlFunction,
        spec: Spec,
        name: str,
        unique: str,
        slug: str,
        object_id: str,
        topic: str,
        device: Mapping[str, Any],
    ) -> None:
        assert fn.ha is not None
        meta = fn.ha.resolve(self.snap.model)
        platform = str(meta["platform"])
        if platform == Platform.TIME:
            self._time_slot(fn, name, unique, slug, object_id, topic, device)
            return
        own = spec.ha.platform if spec.ha is not None else "sensor"
        if own in _CONTROL_PLATFORMS and own != platform:
            # A second entity of the function in its own form (Force_Charge_Num beside the
            # Force_Charge select): its range is the value's own.
            platform = own
            low, high = spec.bounds if isinstance(spec.bounds, tuple) else (0, 100)
            meta = {"platform": own, "min": low, "max": high, "step": 1}
        config = self._common(platform, name, unique, slug, device)
        config["state_topic"] = topic
        config["command_topic"] = command_topic(self.cfg.root, self.serial, fn.name)
        config["entity_category"] = "config"
        ha = spec.ha or HA()
        if ha.icon:
            config["icon"] = ha.icon
        if platform == Platform.NUMBER:
            config["min"] = meta.get("min", 0)
            config["max"] = meta.get("max", 100)
            config["step"] = meta.get("step", 1)
            unit = meta.get("unit") or spec.unit
            if unit:
                config["unit_of_measurement"] = unit
            config["mode"] = "slider" if unit == "%" else "box"
            if ha.device_class in _NUMBER_DEVICE_CLASSES:
                config["device_class"] = ha.device_class
        elif platform == Platform.SELECT:
            options = list(meta.get("options", ()))
            for extra in _readback_states(spec):
                if extra not in options:
                    options.append(extra)
            config["options"] = options
        elif platform == Platform.SWITCH:
            config["payload_on"] = meta.get("payload_on", "enable")
            config["payload_off"] = meta.get("payload_off", "disable")
            config["state_on"] = config["payload_on"]
            config["state_off"] = config["payload_off"]
        self._add(platform, object_id, config)

    def _time_slot(
        self,
        fn: ControlFunction,
        name: str,
        unique: str,
        slug: str,
        object_id: str,
        topic: str,
        device: Mapping[str, Any],
    ) -> None:
        command = command_topic(self.cfg.root, self.serial, fn.name)
        if self.cfg.time_entities == "time":
            platform, other = "time", "select"
            config = self._common(platform, name, f"{unique}_time", slug, device)
        else:
            platform, other = "select", "time"
            config = self._common(platform, name, unique, slug, device)
            config["options"] = list(TIME_OPTIONS)
        config["state_topic"] = topic
        config["command_topic"] = command
        config["entity_category"] = "config"
        config["icon"] = "mdi:clock-outline"
        self._add(platform, object_id, config)
        # The other form may be left over from the other setting (or from GivTCP): remove it.
        self.removals.append(discovery_topic(self.cfg.prefix, other, _safe_id(object_id)))

    def _stateless(
        self,
        fn: ControlFunction,
        name: str,
        unique: str,
        slug: str,
        object_id: str,
        device: Mapping[str, Any],
    ) -> None:
        assert fn.ha is not None
        meta = fn.ha.resolve(self.snap.model)
        platform = str(meta["platform"])
        config = self._common(platform, name, unique, slug, device)
        config["command_topic"] = command_topic(self.cfg.root, self.serial, fn.name)
        config["entity_category"] = "config"
        if platform == Platform.BUTTON:
            config["payload_press"] = str(fn.example) if isinstance(fn.example, str) else "press"
            if fn.name in _RESTART_BUTTONS:
                config["device_class"] = "restart"
        elif platform == Platform.SELECT:
            config["options"] = list(meta.get("options", ()))  # optimistic: no state topic
        else:
            return
        self._add(platform, object_id, config)

    # -- batteries and meters --

    def devices(self, devices: Sequence[DeviceSnapshot], kind: str) -> None:
        bases = device_topic_bases(self.cfg.root, self.snap)
        for dev in devices:
            device = _sub_device(self.snap, dev, kind, self.cfg)
            base = bases[dev.address]
            owner = dev.serial if kind == "battery" else f"{self.serial}_Meter_ID{dev.address}"
            for name, spec in dev.specs.items():
                if spec.ha is None:
                    continue
                topic = "/".join((base, *spec.path, name))
                unique = f"{self.cfg.device_prefix}_{owner}_{name}"
                slug = entity_slug(self.cfg.device_prefix, owner, name)
                object_id = f"{self.serial}_{owner}_{name}"
                self._sensor(spec, spec.ha, name, unique, slug, object_id, topic, device)


def _readback_states(spec: Spec) -> tuple[str, ...]:
    if isinstance(spec, Field) and spec.options:
        return tuple(dict.fromkeys(str(v) for v in spec.options.values()))
    if isinstance(spec, Derived) and spec.choices:
        return spec.choices
    return _READBACK.get(spec.name, ())


def _classify(
    config: dict[str, Any], ha: HA, unit: str | None, options: Mapping[int, str] | None
) -> None:
    """Sensor classification: device class, state class, unit, category, precision."""
    if ha.device_class == "enum" or (options and ha.device_class is None and not unit):
        if options:
            config["device_class"] = "enum"
            config["options"] = list(dict.fromkeys(str(v) for v in options.values()))
    else:
        if ha.device_class:
            config["device_class"] = ha.device_class
        if ha.state_class:
            config["state_class"] = ha.state_class
        if unit:
            config["unit_of_measurement"] = unit
    if ha.entity_category:
        config["entity_category"] = "diagnostic"  # a sensor may not be a "config" entity
    if not ha.enabled_by_default:
        config["enabled_by_default"] = False
    if ha.icon:
        config["icon"] = ha.icon
    if ha.precision is not None:
        config["suggested_display_precision"] = ha.precision


# --- the whole announcement --------------------------------------------------------------------


def entities(
    snapshot: Snapshot, cfg: DiscoveryConfig, catalogue: Catalogue = CATALOGUE
) -> list[Entity]:
    """Every entity of one inverter, its batteries and its meters."""
    return _build(snapshot, cfg, catalogue).entities


def _build(snapshot: Snapshot, cfg: DiscoveryConfig, catalogue: Catalogue) -> _Builder:
    builder = _Builder(snapshot, cfg, catalogue)
    builder.inverter()
    builder.devices(snapshot.batteries, "battery")
    builder.devices(snapshot.meters, "meter")
    return builder


def messages(
    snapshot: Snapshot, cfg: DiscoveryConfig, catalogue: Catalogue = CATALOGUE
) -> list[Message]:
    """The retained discovery messages: removals of left-over forms first, then every config."""
    builder = _build(snapshot, cfg, catalogue)
    out = [Message(topic, "", True) for topic in builder.removals]
    out.extend(
        Message(e.topic(cfg.prefix), json.dumps(e.config, separators=(",", ":")), True)
        for e in builder.entities
    )
    return out


def signature(snapshot: Snapshot) -> tuple[Any, ...]:
    """What discovery depends on besides configuration; a change calls for a new announcement."""
    return (
        snapshot.serial,
        snapshot.model,
        snapshot.value("Invertor_Firmware"),
        frozenset(snapshot.specs),
        tuple(_device_key(d) for d in snapshot.batteries),
        tuple(_device_key(d) for d in snapshot.meters),
        frozenset(snapshot.stats),
    )


def _device_key(dev: DeviceSnapshot) -> tuple[Any, ...]:
    return (dev.address, dev.serial, frozenset(dev.specs))


def state_topics(entities_: Iterable[Entity]) -> set[str]:
    return {t for e in entities_ if (t := e.state_topic) is not None}
