"""Home Assistant discovery for an EV charger: its own device and GivTCP's entity ids.

Pure (no I/O), built like the inverter's (:mod:`givtcp_async.sinks.discovery`) from the
charger snapshot's specs and :data:`~givtcp_async.evc.controls.EVC_FUNCTIONS`:

* one device per charger (identifiers ``<serial>_Charger`` as GivTCP's, name ``GivEVC
  <serial>``, model ``GivEVC``);
* ``unique_id`` ``<prefix>_<serial>_<Field>`` and ``default_entity_id``
  ``<platform>.<prefix>_<serial>_<field>`` in lower case (GivTCP's, e.g.
  ``number.givtcp_gev2321a0001_charge_limit``); discovery topics
  ``<discovery prefix>/<platform>/GivEnergy/<serial>_<Field>/config``;
* controls: ``Charge_Limit`` (number, the charger's EVSE range), ``Charge_Control`` and
  ``Charging_Mode`` (selects), ``Plug_and_Go`` (switch), ``Import_Cap`` and
  ``Max_Session_Energy`` (numbers), commanding ``<root>/<serial>/control/<function>``;
* availability: the bridge topic and the charger's ``Stats/status``, both required.
"""

from __future__ import annotations

import json
from typing import Any

from givtcp_async.control.catalogue import Platform
from givtcp_async.evc.controls import EVC_FUNCTIONS, EvcFunction
from givtcp_async.evc.snapshot import EvcSnapshot
from givtcp_async.registers.schema import HA, Field
from givtcp_async.sinks.discovery import (
    _STATS,
    _STATS_UNITS,
    MANUFACTURER,
    OFFLINE,
    ONLINE,
    ORIGIN,
    DiscoveryConfig,
    Entity,
    _classify,
    _safe_id,
    bridge_topic,
    command_topic,
    entity_slug,
    field_topic,
    status_topic,
)
from givtcp_async.sinks.state_topics import Message, state_base

MODEL = "GivEVC"
_CONTROLS = {fn.name: fn for fn in EVC_FUNCTIONS}


def charger_device(snap: EvcSnapshot, cfg: DiscoveryConfig) -> dict[str, Any]:
    device: dict[str, Any] = {
        "identifiers": [f"{snap.serial}_Charger"],
        "name": f"{MODEL} {snap.serial}",
        "manufacturer": MANUFACTURER,
        "model": MODEL,  # no serial_number: Home Assistant 2024.1 refuses the entity for it
    }
    if cfg.configuration_url:
        device["configuration_url"] = cfg.configuration_url
    return device


def _limits(snap: EvcSnapshot) -> tuple[float, float]:
    low, high = snap.value("Evse_Min_Current"), snap.value("Evse_Max_Current")
    if isinstance(low, int | float) and isinstance(high, int | float) and 0 < low <= high:
        return float(low), float(high)
    return 6.0, 32.0


def entities(snap: EvcSnapshot, cfg: DiscoveryConfig) -> list[Entity]:
    """Every entity of one charger."""
    serial = snap.serial
    device = charger_device(snap, cfg)
    availability = [{"topic": bridge_topic(cfg.root)}, {"topic": status_topic(cfg.root, serial)}]

    def common(platform: str, name: str) -> dict[str, Any]:
        slug = entity_slug(cfg.device_prefix, serial, name)
        return {
            "name": name.replace("_", " "),
            "unique_id": f"{cfg.device_prefix}_{serial}_{name}",
            "object_id": slug,  # the entity id before Home Assistant 2025.10 (see discovery)
            "default_entity_id": f"{platform}.{slug}",
            "device": device,
            "origin": ORIGIN,
            "availability": availability,
            "availability_mode": "all",
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
        }

    out: list[Entity] = []
    for name, spec in snap.specs.items():
        topic = field_topic(cfg.root, serial, spec)
        fn = _CONTROLS.get(spec.control or "")
        if fn is not None and fn.ha is not None:
            platform = str(fn.ha.platform.value)
            config = common(platform, name)
            config["state_topic"] = topic
            config["command_topic"] = command_topic(cfg.root, serial, fn.name)
            config["entity_category"] = "config"
            _control(config, fn, spec.unit, spec.ha or HA(), snap)
        elif spec.ha is not None:
            platform = "sensor"
            config = common(platform, name)
            config["state_topic"] = topic
            options = spec.options if isinstance(spec, Field) else None
            _classify(config, spec.ha, spec.unit, options)
        else:
            continue
        out.append(Entity(platform, _safe_id(f"{serial}_{name}"), config))
    base = state_base(cfg.root, serial)
    for key, ha in _STATS.items():
        if key in snap.stats:
            config = common("sensor", key)
            config["state_topic"] = f"{base}/Stats/{key}"
            _classify(config, ha, _STATS_UNITS.get(key), None)
            out.append(Entity("sensor", _safe_id(f"{serial}_{key}"), config))
    return out


def _control(
    config: dict[str, Any], fn: EvcFunction, unit: str | None, ha: HA, snap: EvcSnapshot
) -> None:
    assert fn.ha is not None
    meta = fn.ha.resolve(None)
    if fn.ha.platform is Platform.NUMBER:
        low, high = _limits(snap) if fn.name == "setCurrentLimit" else (
            meta.get("min", 0), meta.get("max", 100))  # fmt: skip
        config.update(min=low, max=high, step=meta.get("step", 1), mode="slider")
        if meta.get("unit") or unit:
            config["unit_of_measurement"] = meta.get("unit") or unit
        if ha.device_class:
            config["device_class"] = ha.device_class
    elif fn.ha.platform is Platform.SELECT:
        config["options"] = list(meta.get("options", ()))
    elif fn.ha.platform is Platform.SWITCH:
        config.update(payload_on="enable", payload_off="disable", state_on="enable",
                      state_off="disable")  # fmt: skip


def messages(snap: EvcSnapshot, cfg: DiscoveryConfig) -> list[Message]:
    """The retained discovery messages of one charger."""
    return [
        Message(e.topic(cfg.prefix), json.dumps(e.config, separators=(",", ":")), True)
        for e in entities(snap, cfg)
    ]


def signature(snap: EvcSnapshot) -> tuple[Any, ...]:
    """What the announcement depends on besides configuration."""
    return (snap.serial, frozenset(snap.specs), _limits(snap), frozenset(snap.stats))
