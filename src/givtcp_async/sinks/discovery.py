"""Home Assistant MQTT discovery payloads, built from a snapshot's specs and the control catalogue.

Pure (no I/O). Design:

* **Two formats**, retained: one payload per device (:func:`device_messages`, Home Assistant
  2024.11 and later, the default) or per entity (:func:`messages`) on GivTCP's own topics
  ``<prefix>/<platform>/GivEnergy/<serial>_<Field>/config`` (battery entities
  ``<serial>_<battery serial>_<Field>``), which works on every version. Both are built from the
  same entities, with GivTCP's unique ids; the MQTT service hands configs of one format over to
  the other (:mod:`givtcp_async.sinks.retained_configs`).
* **Every Home Assistant from 2024.1**: the device block holds only the keys 2024.1's strict
  device schema takes (no ``serial_number`` or ``model_id``: an unknown key there drops the
  entity); unknown entity keys (``default_entity_id`` before 2025.10) are ignored.
* **Compact payloads**: Home Assistant's abbreviated keys and the ``~`` base topic; the whole
  device block and ``origin`` only in the first payload of each device (the others name the
  device by its identifier, and by name where the entity id is derived from it; Home Assistant
  merges them into one registry entry).
* **Ids**: ``unique_id`` is GivTCP's ``<device prefix>_<serial>_<Field>`` (device prefix = the
  inverter's ``name``: GivTCP, GivTCP2, ...); the entity id ``<platform>.givtcp_<serial>_<field>``
  is what Home Assistant derives from the device's name and the entity's where they make it
  (nothing sent), else it is sent twice: as ``default_entity_id`` (Home Assistant 2025.10 and
  later) and as ``object_id`` (earlier versions, which ignore ``default_entity_id``; later ones
  ignore ``object_id`` when ``default_entity_id`` is present: home-assistant/core#151996).
* **Truth**: a select offers only what the detected model accepts; a read-back state that is
  not an option shows as no choice (``None``) rather than an error. Numbers step as the
  inverter stores them. The controls a user drives daily are in the main category, the other
  settings "config", read-only facts "diagnostic".
* **Time slots** (``time_entities = "auto"``): the slots Predbat sets (charge and discharge
  slot 1, the pause slot) are selects of ``time_step`` minutes (5: Predbat's planning step) plus
  ``23:59:00`` and the current value, the others ``time`` entities; ``"select"`` makes the others
  selects of quarter hours plus the current value, ``"time"`` makes every slot a time entity.
* **Availability**: an entity follows its inverter's ``Stats/status`` alone (as GivTCP's do):
  ``online`` only while the daemon runs and the inverter answers; the MQTT service holds that
  topic's last will ``offline`` on a connection of its own.
* **Memory**: :func:`messages` yields one payload at a time; option lists are shared tuples.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal, get_args

from givtcp_async import __version__
from givtcp_async.control.catalogue import CATALOGUE, Catalogue, ControlFunction, Platform
from givtcp_async.layout import TreeLayout, device_paths, group, render
from givtcp_async.registers.schema import HA, Derived, Enc, Field
from givtcp_async.sinks.state_topics import Message, state_base
from givtcp_async.snapshot import DeviceSnapshot, Snapshot, Spec

MANUFACTURER: Final = "GivEnergy"
NODE_ID: Final = "GivEnergy"  # GivTCP's discovery node id (HA ignores it; it groups topics)
ORIGIN: Final = {"name": "givtcp-async", "sw_version": __version__}
ONLINE: Final = "online"
OFFLINE: Final = "offline"
BRIDGE_STATUS: Final = "bridge/status"
STATUS_PATH: Final = "Stats/status"
END_OF_DAY: Final = "23:59:00"  # Predbat's pause slot ends there
QUARTER: Final = 15

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
_HA_SLUG: Final = re.compile(r"[^a-z0-9]+")
_TIME_VALUE: Final = re.compile(r"^([01]\d|2[0-3]):[0-5]\d:00$")
_BASE36: Final = "0123456789abcdefghijklmnopqrstuvwxyz"

# Words of GivTCP's field names as an entity name shows them.
_UNIT_WORDS: Final = frozenset({"kWh", "Wh", "kW", "W", "V", "A", "Hz", "Ah"})
_LOWER_WORDS: Final = frozenset({"to", "of", "and"})
_SPELLING: Final = {"Invertor": "Inverter"}

# Home Assistant's abbreviations of discovery keys (homeassistant/components/mqtt/
# abbreviations.py), those of them this module sends.
ABBREVIATIONS: Final = {
    "availability": "avty",
    "availability_mode": "avty_mode",
    "availability_topic": "avty_t",
    "command_template": "cmd_tpl",
    "command_topic": "cmd_t",
    "default_entity_id": "def_ent_id",
    "device": "dev",
    "device_class": "dev_cla",
    "enabled_by_default": "en",
    "entity_category": "ent_cat",
    "icon": "ic",
    "object_id": "obj_id",
    "options": "ops",
    "origin": "o",
    "payload_off": "pl_off",
    "payload_on": "pl_on",
    "payload_press": "pl_prs",
    "state_class": "stat_cla",
    "state_off": "stat_off",
    "state_on": "stat_on",
    "state_topic": "stat_t",
    "suggested_display_precision": "sug_dsp_prc",
    "topic": "t",
    "unique_id": "uniq_id",
    "unit_of_measurement": "unit_of_meas",
    "value_template": "val_tpl",
}
DEVICE_ABBREVIATIONS: Final = {
    "configuration_url": "cu",
    "identifiers": "ids",
    "manufacturer": "mf",
    "model": "mdl",
    "sw_version": "sw",
}
ORIGIN_ABBREVIATIONS: Final = {"sw_version": "sw"}
_TOPIC_KEYS: Final = ("state_topic", "command_topic", "availability_topic")

Platforms = Literal["sensor", "number", "select", "switch", "button", "time"]
_PLATFORMS: Final = {p: p for p in get_args(Platforms)}
_COMPONENT_ID: Final = re.compile(r"[A-Za-z0-9_-]+")
MAX_ID: Final = 128  # the longest component id read back from the broker
MAX_COMPONENTS: Final = 1024  # the most components of one device payload read back (347 at most)
TimeEntities = Literal["auto", "select", "time"]
DiscoveryFormat = Literal["device", "entity"]
#: The payload that asks Home Assistant (2024.11 and later) to let go of a discovery topic
#: while keeping its entities, so that the other format can take them over unchanged.
MIGRATE: Final = '{"migrate_discovery":true}'
DEVICE: Final = "device"  # the discovery "platform" of a device payload
TIME_GROUP: Final = "_time"  # the suffix of the time entities' device payload


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """Where things are published and how entities are presented.

    ``time_step``: minutes between the options of the time selects Predbat sets (1 offers every
    minute, as GivTCP did; Predbat plans in 5-minute steps). Other slots offer quarter hours, or
    ``time_step`` where that is coarser. ``time_entities``: ``auto`` makes Predbat's slots
    selects and the others ``time`` entities; ``select`` and ``time`` make every slot one form.
    ``all_entities``: also announce the values held back for size (``HA.opt_in``); without it
    their configs are removed, in case an earlier announcement held them. ``format``: one
    payload per device (``device``, Home Assistant 2024.11 and later) or per entity.
    """

    root: str = "GivEnergy"
    prefix: str = "homeassistant"
    device_prefix: str = "GivTCP"  # the inverter's configured name
    time_entities: TimeEntities = "auto"
    configuration_url: str | None = None
    time_step: int = 5
    all_entities: bool = False
    format: DiscoveryFormat = "device"


@dataclass(frozen=True, slots=True)
class Entity:
    """One discovered entity: its discovery topic and config (Home Assistant's full keys)."""

    platform: str
    object_id: str
    config: Mapping[str, Any]
    base: str = ""  # the inverter's state base: "~" in the compact payload
    group: str = ""  # the object id of the device payload it belongs to (device discovery)

    def topic(self, prefix: str) -> str:
        return discovery_topic(prefix, self.platform, self.object_id)

    @property
    def state_topic(self) -> str | None:
        value = self.config.get("state_topic")
        return value if isinstance(value, str) else None

    def payload(self) -> str:
        """The config as published: abbreviated keys, ``~`` for the state base."""
        return json.dumps(compact(self.config, self.base), separators=(",", ":"))


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


def discovery_parts(prefix: str, topic: str) -> tuple[str, str] | None:
    """(platform, object id) of one of our discovery topics (``device`` for a device payload),
    or None for any other topic."""
    head = f"{prefix}/"
    if not (topic.startswith(head) and topic.endswith("/config")):
        return None
    parts = topic[len(head) : -len("/config")].split("/")
    if len(parts) != 3 or parts[1] != NODE_ID or not parts[0] or not parts[2]:
        return None
    return parts[0], parts[2]


def owned_by(object_id: str, serial: str) -> bool:
    """Whether ``object_id`` is one of ``serial``'s discovery topics (every object id of an
    inverter's entities and device payloads starts with its serial)."""
    safe = _safe_id(serial)
    return bool(serial) and (object_id == safe or object_id.startswith(f"{safe}_"))


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


def derived_slug(device_name: str, entity_name: str) -> str:
    """The object id Home Assistant gives an entity sent without one: its device's name and its
    own, slugified (non-alphanumerics to one underscore)."""
    return _HA_SLUG.sub("_", f"{device_name} {entity_name}".lower()).strip("_")


def entity_id(platform: str, config: Mapping[str, Any]) -> str:
    """The entity id Home Assistant gives the entity of ``config`` (full keys): the one sent,
    else the one it derives from the device's name and the entity's."""
    sent = config.get("default_entity_id")
    if isinstance(sent, str):
        return sent
    return f"{platform}.{derived_slug(str(config['device']['name']), str(config['name']))}"


def entity_slug(device_prefix: str, owner: str, name: str) -> str:
    """The object part of the entity id: ``givtcp_sa1234g567_battery_power_reserve``."""
    return f"{_slug(device_prefix)}_{_slug(owner)}_{_slug(name)}"


# --- names and option lists ----------------------------------------------------------------


def display_name(field_name: str, ha: HA | None = None) -> str:
    """The entity name a field shows as: words capitalised alike, no unit words, "Inverter"
    spelt so."""
    if ha is not None and ha.name:
        return ha.name
    words = [w for w in field_name.split("_") if w]
    if len(words) > 1 and words[-1] in _UNIT_WORDS:
        words = words[:-1]
    out = []
    for i, word in enumerate(words):
        word = _SPELLING.get(word, word)
        if word.islower() and not (i and word in _LOWER_WORDS):
            word = word[0].upper() + word[1:]
        out.append(word)
    return " ".join(out)


@lru_cache(maxsize=8)
def time_grid(step: int) -> tuple[str, ...]:
    """``HH:MM:00`` every ``step`` minutes of the day (one shared tuple per step)."""
    return tuple(f"{m // 60:02d}:{m % 60:02d}:00" for m in range(0, 24 * 60, step))


def time_options(step: int, current: Any, *, end_of_day: bool) -> list[str]:
    """A time select's options: the grid, ``23:59:00`` where asked, and the current value."""
    grid = time_grid(step)
    extra = {END_OF_DAY} if end_of_day else set()
    if isinstance(current, str) and _TIME_VALUE.match(current):
        extra.add(current)
    extra -= _grid_set(step)
    return sorted((*grid, *extra)) if extra else list(grid)


def slot_form(fn: ControlFunction | None, cfg: DiscoveryConfig) -> Literal["select", "time"]:
    """The platform a time slot set by ``fn`` is announced on."""
    if cfg.time_entities == "auto":
        fine = fn is not None and fn.ha is not None and fn.ha.fine
        return "select" if fine else "time"
    return cfg.time_entities


def _slot_step(fn: ControlFunction | None, cfg: DiscoveryConfig) -> int:
    fine = fn is not None and fn.ha is not None and fn.ha.fine
    return cfg.time_step if fine else max(QUARTER, cfg.time_step)


@lru_cache(maxsize=8)
def _grid_set(step: int) -> frozenset[str]:
    return frozenset(time_grid(step))


def _off_grid(spec: Field, value: Any, cfg: DiscoveryConfig) -> bool:
    """Whether ``value`` is missing from the options of the select ``spec``'s slot makes (a
    slot announced as a time entity has no options)."""
    step = _select_step(spec.control, cfg.time_entities, cfg.time_step)
    return step is not None and value not in _grid_set(step)


@lru_cache(maxsize=256)
def _select_step(control: str | None, time_entities: TimeEntities, time_step: int) -> int | None:
    """The option step of the select a time field's control function makes, or None where the
    slot is a time entity (per poll: cached)."""
    fn = CATALOGUE.get(control) if control and control in CATALOGUE else None
    cfg = DiscoveryConfig(time_entities=time_entities, time_step=time_step)
    return _slot_step(fn, cfg) if slot_form(fn, cfg) == "select" else None


# --- devices ---------------------------------------------------------------------------------


def inverter_device(snapshot: Snapshot, cfg: DiscoveryConfig) -> dict[str, Any]:
    firmware = snapshot.value("Invertor_Firmware") or snapshot.model.firmware
    device: dict[str, Any] = {
        "identifiers": [inverter_identifier(snapshot.serial)],
        "name": f"{cfg.device_prefix} {snapshot.serial}",
        "manufacturer": MANUFACTURER,
        "model": f"{snapshot.model.name} ({snapshot.model.dtc})",
        "sw_version": str(firmware),
    }
    if cfg.configuration_url:
        device["configuration_url"] = cfg.configuration_url
    return device


def inverter_identifier(serial: str) -> str:
    return f"givtcp_{serial}"


#: The runAll group of the plant members an EMS or a Gateway reports on (``Inverters/AIO_1``,
#: ``Inverters/Inverter_2``): each is a Home Assistant device of its own, linked to the plant.
MEMBERS: Final = "Inverters"


def member_device(snapshot: Snapshot, group: str, cfg: DiscoveryConfig) -> dict[str, Any]:
    """The device of one All-in-One behind a Gateway, or one inverter an EMS manages: named by
    its slot (stable while the slot is empty or its unit is swapped), via the plant's device."""
    aio = group.startswith("AIO")
    return {
        "identifiers": [f"{inverter_identifier(snapshot.serial)}_{group.lower()}"],
        "name": f"{cfg.device_prefix} {snapshot.serial} {group.replace('_', ' ')}",
        "manufacturer": MANUFACTURER,
        "model": "All-in-One" if aio else "Inverter",
        "via_device": inverter_identifier(snapshot.serial),
    }


def _sub_device(
    snapshot: Snapshot, dev: DeviceSnapshot, kind: str, cfg: DiscoveryConfig
) -> dict[str, Any]:
    if kind == "battery":
        ident = f"givtcp_{dev.serial}"
        # GivTCP's device name: with the fields' own names ("Battery SOC") Home Assistant
        # derives GivTCP's ids (sensor.givtcp_dz2348g101_battery_soc) and says "Battery" once.
        name = f"{cfg.device_prefix} {dev.serial}"
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
    if firmware is not None:
        device["sw_version"] = str(firmware)
    return device


def _value(dev: DeviceSnapshot, name: str) -> Any:
    reading = dev.values.get(name)
    return None if reading is None else reading.value


# --- entities --------------------------------------------------------------------------------


class _Builder:
    """Builds one inverter's entities, one device at a time (see :func:`entities`)."""

    def __init__(self, snapshot: Snapshot, cfg: DiscoveryConfig, catalogue: Catalogue) -> None:
        self.snap = snapshot
        self.cfg = cfg
        self.catalogue = catalogue
        self.serial = snapshot.serial
        self.base = state_base(cfg.root, snapshot.serial)
        self.availability = status_topic(cfg.root, snapshot.serial)
        self.removals: list[str] = []
        self._unique: set[str] = set()
        self._announced: set[str] = set()  # devices whose full block went out already
        self.blocks: dict[str, Mapping[str, Any]] = {}  # every device's block, by identifier
        controls = {fn.name: fn for fn in catalogue.available(snapshot.model) if fn.ha}
        self.controls = controls
        by_field: dict[str, ControlFunction] = {}
        for name, spec in snapshot.specs.items():
            if spec.control and spec.control in controls:
                by_field[name] = controls[spec.control]
        for fn in controls.values():
            if fn.ha is not None and fn.ha.platform is Platform.BUTTON:
                continue  # a button has no state: GivTCP's placeholder value stays unannounced
            mirrored = _mirrored(fn)
            if mirrored and mirrored in snapshot.specs and mirrored not in by_field:
                by_field[mirrored] = fn
        self.by_field = by_field

    def _device_ref(
        self, device: Mapping[str, Any], *, named: bool
    ) -> tuple[Mapping[str, Any], bool]:
        """The device block for the next payload: whole the first time, else its id, and its
        name where the entity id is derived from it (``named``)."""
        ident = str(device["identifiers"][0])
        self.blocks.setdefault(ident, device)
        if ident in self._announced:
            if named:
                return {"identifiers": device["identifiers"], "name": device["name"]}, False
            return {"identifiers": device["identifiers"]}, False
        self._announced.add(ident)
        return device, True

    def _common(
        self, platform: str, name: str, unique_id: str, slug: str, device: Mapping[str, Any]
    ) -> dict[str, Any]:
        derived = derived_slug(str(device["name"]), name) == slug
        ref, first = self._device_ref(device, named=derived)
        config: dict[str, Any] = {"name": name, "unique_id": unique_id}
        if not derived:
            config["object_id"] = slug
            config["default_entity_id"] = f"{platform}.{slug}"
        config["device"] = ref
        if first:
            config["origin"] = ORIGIN
        config["availability_topic"] = self.availability
        return config

    def _entity(self, platform: str, object_id: str, config: dict[str, Any]) -> Entity | None:
        unique = str(config["unique_id"])
        if unique in self._unique:
            return None
        self._unique.add(unique)
        ident = str(config["device"]["identifiers"][0])
        group = _payload_id(self.serial, ident, platform)
        return Entity(platform, _safe_id(object_id), config, self.base, group)

    # -- inverter fields and controls --

    def inverter(self) -> Iterator[Entity]:
        plant = inverter_device(self.snap, self.cfg)
        members: dict[str, dict[str, Any]] = {}
        prefix, serial = self.cfg.device_prefix, self.serial
        used: set[str] = set()
        for name, spec in self.snap.specs.items():
            device = plant
            if spec.path[:1] == (MEMBERS,) and len(spec.path) > 1:
                group = spec.path[1]
                if group not in members:
                    members[group] = member_device(self.snap, group, self.cfg)
                device = members[group]
            topic = field_topic(self.cfg.root, serial, spec, self.snap.layout)
            unique = f"{prefix}_{serial}_{name}"
            # The battery stack's values (GivTCP's "battery_stack_1" device) keep GivTCP's ids,
            # e.g. sensor.givtcp_battery_stack_1_bms_temperature, which Predbat reads.
            owner = spec.path[-1] if spec.path[:1] == ("Battery_Details",) else serial
            slug = entity_slug(prefix, owner, name)
            object_id = f"{serial}_{name}"
            control = self.by_field.get(name)
            entity: Entity | None = None
            if control is not None:
                entity = self._control(control, spec, name, unique, slug, object_id, topic, device)
                used.add(control.name)
            elif spec.ha is not None and not (spec.ha.needs_control and spec.control):
                entity = self._sensor(spec, spec.ha, name, unique, slug, object_id, topic, device)
            if entity is not None:
                yield entity
        device = plant
        for fn in self.controls.values():
            if fn.name in used or fn.ha is None:
                continue
            if fn.ha.platform is Platform.BUTTON or fn.override:
                name = _mirrored(fn) or fn.name
                unique = f"{prefix}_{serial}_{name}"
                slug = entity_slug(prefix, serial, name)
                entity = self._stateless(fn, name, unique, slug, f"{serial}_{name}", device)
                if entity is not None:
                    yield entity
        for key, ha in _STATS.items():
            if key not in self.snap.stats:
                continue
            unique = f"{prefix}_{serial}_{key}"
            slug = entity_slug(prefix, serial, key)
            config = self._common("sensor", display_name(key), unique, slug, device)
            config["state_topic"] = f"{self.base}/Stats/{key}"
            _classify(config, ha, _STATS_UNITS.get(key), None)
            entity = self._entity("sensor", f"{serial}_{key}", config)
            if entity is not None:
                yield entity

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
    ) -> Entity | None:
        if ha.opt_in and not self.cfg.all_entities:
            self.removals.append(discovery_topic(self.cfg.prefix, "sensor", _safe_id(object_id)))
            return None
        config = self._common("sensor", display_name(name, ha), unique, slug, device)
        config["state_topic"] = topic
        options = spec.options if isinstance(spec, Field) else None
        if options is not None:  # the texts the layout publishes (GivTCP 3.5's "Em115")
            layout, model = self.snap.layout, self.snap.model
            options = {k: str(render(layout, name, v, model)) for k, v in options.items()}
        elif isinstance(spec, Derived) and spec.choices and ha.device_class == "enum":
            options = dict(enumerate(spec.choices))  # a derived text from a known set
        _classify(config, ha, spec.unit, options)
        return self._entity("sensor", object_id, config)

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
    ) -> Entity | None:
        assert fn.ha is not None
        meta = fn.ha.resolve(self.snap.model, self.snap.value)
        platform = str(meta["platform"])
        if platform == Platform.TIME:
            return self._time_slot(fn, spec, name, unique, slug, object_id, topic, device)
        own = spec.ha.platform if spec.ha is not None else "sensor"
        if own in _CONTROL_PLATFORMS and own != platform:
            # A second entity of the function in its own form (Force_Charge_Num beside the
            # Force_Charge select): its range is the value's own.
            platform = own
            low, high = spec.bounds if isinstance(spec.bounds, tuple) else (0, 100)
            meta = {"platform": own, "min": low, "max": high, "step": 1}
        config = self._common(platform, display_name(name, spec.ha), unique, slug, device)
        config["state_topic"] = topic
        config["command_topic"] = command_topic(self.cfg.root, self.serial, fn.name)
        if not fn.ha.main:
            config["entity_category"] = "config"
        ha = spec.ha or HA()
        if ha.icon:
            config["icon"] = ha.icon
        if platform == Platform.NUMBER:
            step = meta.get("step", 1)
            config["min"] = meta.get("min", 0)
            config["max"] = meta.get("max", 100)
            config["step"] = step
            if step != int(step):  # a rate's C/100 step in watts: send a whole number of watts
                config["command_template"] = "{{ value | round(0) | int }}"
            unit = meta.get("unit") or spec.unit
            if unit:
                config["unit_of_measurement"] = unit
            config["mode"] = "slider" if unit == "%" else "box"
            if ha.device_class in _NUMBER_DEVICE_CLASSES:
                config["device_class"] = ha.device_class
        elif platform == Platform.SELECT:
            options = list(meta.get("options", ()))
            config["options"] = options
            others = [s for s in _readback_states(spec) if s not in options]
            if others:
                # A read-back state the command does not take (e.g. "Export (Paused)"): shown
                # as no choice; Home Assistant would log it as an invalid option otherwise.
                config["value_template"] = f"{{{{ 'None' if value in {others!r} else value }}}}"
        elif platform == Platform.SWITCH:
            config["payload_on"] = meta.get("payload_on", "enable")
            config["payload_off"] = meta.get("payload_off", "disable")
            config["state_on"] = config["payload_on"]
            config["state_off"] = config["payload_off"]
        return self._entity(platform, object_id, config)

    def _time_slot(
        self,
        fn: ControlFunction,
        spec: Spec,
        name: str,
        unique: str,
        slug: str,
        object_id: str,
        topic: str,
        device: Mapping[str, Any],
    ) -> Entity | None:
        assert fn.ha is not None
        label = display_name(name, spec.ha)
        if slot_form(fn, self.cfg) == "time":
            platform, other = "time", "select"
            config = self._common(platform, label, f"{unique}_time", slug, device)
        else:
            platform, other = "select", "time"
            config = self._common(platform, label, unique, slug, device)
            config["options"] = time_options(
                _slot_step(fn, self.cfg), self.snap.value(name), end_of_day=fn.ha.fine
            )
        config["state_topic"] = topic
        config["command_topic"] = command_topic(self.cfg.root, self.serial, fn.name)
        if not fn.ha.main:
            config["entity_category"] = "config"
        if platform == "select":  # a time entity has Home Assistant's clock icon already
            config["icon"] = "mdi:clock-outline"
        if other == "select":
            # The selects may be left over from the other setting (or from GivTCP): remove them.
            # (Time entities left over are cleared by the MQTT service when the broker shows
            # one: a removal sent blindly would make Home Assistant before 2026.5, which has
            # no MQTT time platform, warn for every slot.)
            self.removals.append(discovery_topic(self.cfg.prefix, other, _safe_id(object_id)))
        return self._entity(platform, object_id, config)

    def _stateless(
        self,
        fn: ControlFunction,
        name: str,
        unique: str,
        slug: str,
        object_id: str,
        device: Mapping[str, Any],
    ) -> Entity | None:
        assert fn.ha is not None
        meta = fn.ha.resolve(self.snap.model)
        platform = str(meta["platform"])
        if platform not in (Platform.BUTTON, Platform.SELECT):
            return None
        config = self._common(platform, display_name(name), unique, slug, device)
        config["command_topic"] = command_topic(self.cfg.root, self.serial, fn.name)
        if not fn.ha.main:
            config["entity_category"] = "config"
        if platform == Platform.BUTTON:
            config["payload_press"] = str(fn.example) if isinstance(fn.example, str) else "press"
            if fn.name in _RESTART_BUTTONS:
                config["device_class"] = "restart"
        else:
            config["options"] = list(meta.get("options", ()))  # optimistic: no state topic
        return self._entity(platform, object_id, config)

    # -- batteries and meters --

    def devices(self, devices: Sequence[DeviceSnapshot], kind: str) -> Iterator[Entity]:
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
                entity = self._sensor(spec, spec.ha, name, unique, slug, object_id, topic, device)
                if entity is not None:
                    yield entity


def _mirrored(fn: ControlFunction) -> str | None:
    return fn.mirrors.rsplit("/", 1)[-1] if fn.mirrors else None


def _readback_states(spec: Spec) -> tuple[str, ...]:
    if isinstance(spec, Field) and spec.options:
        return tuple(dict.fromkeys(str(v) for v in spec.options.values()))
    choices = getattr(spec, "choices", None)
    return tuple(choices) if choices else ()


def _payload_id(serial: str, ident: str, platform: str) -> str:
    """The object id of the device payload an entity goes in: its device's, prefixed by the
    inverter's serial (``SA2347G000``, ``SA2347G000_DZ2348G101``, ``SA2347G000_meter_1``);
    time entities in a payload of their own (``..._time``): Home Assistant before 2026.5 has
    no MQTT time platform and refuses a whole payload that names one."""
    own = ident.removeprefix("givtcp_")
    group = own if own == serial or own.startswith(f"{serial}_") else f"{serial}_{own}"
    return _safe_id(f"{group}{TIME_GROUP}" if platform == "time" else group)


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


# --- the compact form ------------------------------------------------------------------------


def compact(config: Mapping[str, Any], base: str = "") -> dict[str, Any]:
    """``config`` with Home Assistant's abbreviated keys and ``~`` standing for ``base``."""
    # "~" costs its own key: worth it from the second topic under the base on.
    tilde = bool(base) and (
        sum(
            isinstance(config.get(k), str) and config[k].startswith(base + "/") for k in _TOPIC_KEYS
        )
        > 1
    )
    out: dict[str, Any] = {"~": base} if tilde else {}
    for key, value in config.items():
        if key in _TOPIC_KEYS and tilde:
            value = _tilde(value, base)
        elif key == "availability":
            value = [{"t": _tilde(a["topic"], base) if tilde else a["topic"]} for a in value]
        elif key == "device":
            value = {DEVICE_ABBREVIATIONS.get(k, k): v for k, v in value.items()}
        elif key == "origin":
            value = {ORIGIN_ABBREVIATIONS.get(k, k): v for k, v in value.items()}
        out[ABBREVIATIONS.get(key, key)] = value
    return out


def _tilde(topic: str, base: str) -> str:
    return "~" + topic[len(base) :] if topic.startswith(base + "/") else topic


# --- the whole announcement --------------------------------------------------------------------


def _all(builder: _Builder) -> Iterator[Entity]:
    yield from builder.inverter()
    yield from builder.devices(builder.snap.batteries, "battery")
    yield from builder.devices(builder.snap.meters, "meter")


def entities(
    snapshot: Snapshot, cfg: DiscoveryConfig, catalogue: Catalogue = CATALOGUE
) -> list[Entity]:
    """Every entity of one inverter, its batteries and its meters."""
    return list(_all(_Builder(snapshot, cfg, catalogue)))


def announcement(
    snapshot: Snapshot, cfg: DiscoveryConfig, previous: Mapping[str, Mapping[str, str]] = {}
) -> Iterator[Message]:
    """The retained discovery messages in ``cfg.format`` (``previous``: see
    :func:`device_messages`)."""
    if cfg.format == "device":
        return device_messages(snapshot, cfg, previous)
    return messages(snapshot, cfg)


def device_messages(
    snapshot: Snapshot,
    cfg: DiscoveryConfig,
    previous: Mapping[str, Mapping[str, str]] = {},
    catalogue: Catalogue = CATALOGUE,
) -> Iterator[Message]:
    """One retained payload per device (Home Assistant's device-based discovery): the device
    block, ``origin`` and the inverter's availability once, then each entity's own keys as a
    component. ``previous``: the components (id -> platform) each of our device payloads held
    at the broker; one missing now is removed (a component of its platform alone)."""
    builder = _Builder(snapshot, cfg, catalogue)
    groups: dict[str, dict[str, Any]] = {}
    for entity in _all(builder):
        config = entity.config
        ident = str(config["device"]["identifiers"][0])
        group = groups.setdefault(entity.group, {"ident": ident, "cmps": {}})
        own = {
            k: v
            for k, v in config.items()
            if k not in ("device", "origin")
            and not (k == "availability_topic" and v == builder.availability)
        }
        key = component_id(str(config["unique_id"]))
        if key in group["cmps"]:  # two unique ids, one checksum: the longer id, as stable
            key = entity.object_id
        group["cmps"][key] = {"p": entity.platform, **compact(own, entity.base)}
    for object_id, group in groups.items():
        cmps = group["cmps"]
        for key, platform in previous.get(object_id, {}).items():
            cmps.setdefault(key, {"p": platform})
        payload = {
            "dev": compact({"device": builder.blocks[group["ident"]]})["dev"],
            "o": compact({"origin": ORIGIN})["o"],
            "avty_t": builder.availability,
            "cmps": cmps,
        }
        topic = discovery_topic(cfg.prefix, DEVICE, object_id)
        yield Message(topic, json.dumps(payload, separators=(",", ":")), True)


def component_id(unique_id: str) -> str:
    """A component's id in its device payload: short (the 278 ids of the demo's announcement
    would be 6.6 KB as field names, 2.5 KB so) and stable (from the unique id, which never
    changes; Home Assistant shows it only as the discovery id)."""
    n, out = zlib.crc32(unique_id.encode()), ""
    while True:
        n, digit = divmod(n, 36)
        out = _BASE36[digit] + out
        if not n:
            return out


def components(payload: str | bytes) -> dict[str, str]:
    """The components (id -> platform) a device payload announces (not those it removes);
    empty for anything that is not one. What the broker holds is not trusted: only ids of
    Home Assistant's discovery id characters, platforms this module announces, and at most
    :data:`MAX_COMPONENTS` of them, are kept."""
    try:
        data = json.loads(payload)
        cmps = data.get("cmps", data.get("components")) if isinstance(data, dict) else None
    except ValueError:
        return {}
    if not isinstance(cmps, dict):
        return {}
    out: dict[str, str] = {}
    for key, comp in cmps.items():
        platform = comp.get("p", comp.get("platform")) if isinstance(comp, dict) else None
        known = _PLATFORMS.get(platform) if isinstance(platform, str) else None
        if known and len(comp) > 1 and len(key) <= MAX_ID and _COMPONENT_ID.fullmatch(key):
            out[key] = known  # kept per inverter: one string per platform
            if len(out) >= MAX_COMPONENTS:
                break
    return out


def messages(
    snapshot: Snapshot, cfg: DiscoveryConfig, catalogue: Catalogue = CATALOGUE
) -> Iterator[Message]:
    """The retained discovery messages, one at a time: every config, then the removals of the
    other form of the time slots (another topic: a removal never deletes a fresh config)."""
    builder = _Builder(snapshot, cfg, catalogue)
    for entity in _all(builder):
        yield Message(entity.topic(cfg.prefix), entity.payload(), True)
    for topic in builder.removals:
        yield Message(topic, "", True)


def signature(snapshot: Snapshot, cfg: DiscoveryConfig | None = None) -> tuple[Any, ...]:
    """What discovery depends on besides configuration; a change calls for a new announcement:
    the layout, the firmware, the battery capacity (a rate's step) and the time-slot values that
    are off their select's grid (a select offers the current value)."""
    cfg = cfg or DiscoveryConfig()
    off_grid: tuple[tuple[str, Any], ...] = ()
    if cfg.time_entities != "time":
        off_grid = tuple(
            (name, value)
            for name, spec in snapshot.specs.items()
            if isinstance(spec, Field)
            and spec.enc is Enc.TIME
            and (value := snapshot.value(name)) is not None
            and _off_grid(spec, value, cfg)
        )
    return (
        snapshot.serial,
        snapshot.model,
        snapshot.value("Invertor_Firmware"),
        snapshot.value("Battery_Nominal_Capacity"),
        _shared(frozenset(snapshot.specs)),
        tuple(_device_key(d) for d in snapshot.batteries),
        tuple(_device_key(d) for d in snapshot.meters),
        _shared(frozenset(snapshot.stats)),
        off_grid,
    )


def _device_key(dev: DeviceSnapshot) -> tuple[Any, ...]:
    return (dev.address, dev.serial, _shared(frozenset(dev.specs)))


# The name sets of signatures, one of each: every inverter of a model keeps an equal one while
# announced (~450 names, ~23 KiB each; issue #16). Layouts are few; the bound is a safeguard.
_SHARED: dict[frozenset[str], frozenset[str]] = {}
_SHARED_MAX = 256


def _shared(names: frozenset[str]) -> frozenset[str]:
    """``names``, or an equal set already kept by another signature."""
    kept = _SHARED.get(names)
    if kept is not None:
        return kept
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.clear()
    _SHARED[names] = names
    return names


def leftover_time_configs(prefix: str) -> str:
    """The subscription that shows retained time-entity configs left from another
    ``time_entities`` (to clear where the slot is announced as a select now)."""
    return discovery_topic(prefix, "time", "+")


def is_leftover(
    prefix: str, topic: str, serials: Iterable[str], current: Container[str] = ()
) -> bool:
    """Whether ``topic`` is a time-entity config of one of ``serials``' slots that is not in
    ``current`` (the time configs the latest announcements hold)."""
    parts = discovery_parts(prefix, topic)
    if parts is None or parts[0] != "time" or topic in current:
        return False
    return any(owned_by(parts[1], s) for s in serials)


def state_topics(entities_: Iterable[Entity]) -> set[str]:
    return {t for e in entities_ if (t := e.state_topic) is not None}
