"""Every captured plant read through our simulator, value by value against the peer library
givenergy-modbus 2.13.0 (issue 12).

For each capture: (a) the family's essential live values appear in runAll under GivTCP's names
with the value the peer decodes from the same registers; (b) of everything the peer decodes for
the inverter, each meter, LV pack, HV stack (BCU) and module (BMU), the share our runAll
publishes with the same value. Where the peer and the captures disagree, the captures decide
(docs/notes-i12a.md): the conversions below say how the peer's form relates to ours.

The EMS and Gateway cases follow the same pattern (tests/oracle_support.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from givtcp_async.layout import group, render
from givtcp_async.registers.plan import BCUS, BMUS, LV_PACKS, METERS
from givtcp_async.registers.schema import SINGLE_PHASE, THREE_PHASE_FAMILIES, Family
from givtcp_async.simulator.store import RegisterStore
from givtcp_async.snapshot import Snapshot
from tests.conftest import CAPTURES
from tests.oracle_support import (
    TZ,
    Comparison,
    Match,
    capture_store,
    compare,
    device_tree,
    peer_battery,
    peer_bcu,
    peer_bmu,
    peer_meter,
    peer_single_phase,
    peer_three_phase,
    project_run,
    quiet_deprecations,
    unique_serials,
)

THREE_PHASE = CAPTURES / "three_phase_hv_a/giv3hy11_da011_detect_10min.jsonl"


@dataclass(frozen=True)
class Case:
    path: Path
    family: Family
    holding_from: Path | None = None
    device_type: int | None = None


CASES: Mapping[str, Case] = {
    "three_phase": Case(THREE_PHASE, Family.THREE_PHASE),
    # The poller of this capture never read HR0-59: the same unit's other capture has them.
    "three_phase_hass": Case(
        CAPTURES / "three_phase_hv_a/giv3hy11_hass174_180s.jsonl",
        Family.THREE_PHASE,
        holding_from=THREE_PHASE,
    ),
    "gen1": Case(
        CAPTURES / "hybrid_2_bat_a/hybrid_gen1_arm449_0x11_poll_10min.jsonl", Family.HYBRID_GEN1
    ),
    "gen2": Case(CAPTURES / "hybrid_gen2_1_bat_a/hybrid_gen2_arm920_60s.jsonl", Family.HYBRID_GEN2),
    "ac": Case(CAPTURES / "ems_2_inv_3_bat_a/ac_arm282_1x_givbat512gen3_30min.jsonl", Family.AC),
    "aio": Case(CAPTURES / "aio_a/aio_arm612_5min.jsonl", Family.AIO),
    # Never read HR0-59 either: a GIV-HY8.0-G3-HV (file name, "FG" serial) is DTC 0x8102.
    "hv_gen3": Case(
        CAPTURES / "hybrid_hv_gen3_a/givhy80g3hv_hass295_120s.jsonl",
        Family.HV_GEN3,
        device_type=0x8102,
    ),
}


@dataclass
class Observed:
    store: RegisterStore
    snap: Snapshot
    inverter: dict[str, Any]  # runAll path of each inverter-level value, by name
    flat: dict[str, Any]
    shares: dict[str, Comparison] = field(default_factory=dict)


def _inverter_paths(snap: Snapshot) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, reading in snap.values.items():
        if reading.value is None:
            continue
        spec = snap.specs[name]
        out[name] = "/".join((*group(snap.layout, spec.path, snap.serial), name))
    return out


@cache
def observed(name: str) -> Observed:
    case = CASES[name]
    store = unique_serials(capture_store(case.path, case.holding_from, case.device_type))
    snap = asyncio.run(project_run(store))
    tree = snap.flat()
    return Observed(store, snap, _inverter_paths(snap), tree)


# --- how the peer's values sit in our runAll -----------------------------------------------------


def _own_form(spec: Any, snap: Snapshot | None = None) -> Callable[[Any], Any]:
    """The peer's form of an option code or flag -> ours (the entry's option names, as the
    layout prints them)."""
    options = getattr(spec, "options", None)
    if not options:
        return lambda v: v

    def convert(v: Any) -> Any:
        named = options.get(int(v), v) if isinstance(v, int | bool) else v
        return render(snap.layout, spec.name, named, snap.model) if snap else named

    return convert


def _by_raw(
    specs: Mapping[str, Any],
    paths: Mapping[str, str],
    decided: Mapping[str, Callable[[Any], Any]],
    snap: Snapshot | None = None,
) -> dict[str, Match]:
    """Our entries that carry the peer's attribute name as their raw name; ``decided``: the
    conversions where the captures overrule the peer."""
    out: dict[str, Match] = {}
    for name, spec in specs.items():
        raw = getattr(spec, "raw", None)
        if raw is not None and name in paths:
            out.setdefault(raw, Match(paths[name], decided.get(raw) or _own_form(spec, snap)))
    return out


def _int16(v: float) -> int:
    raw = round(v * 1000) & 0xFFFF
    return raw - 0x10000 if raw & 0x8000 else raw


def decisions(kind: str, family: Family) -> dict[str, Callable[[Any], Any]]:
    """Where the captures overrule the peer (docs/notes-i12a.md): the peer's value -> ours."""
    out: dict[str, Callable[[Any], Any]] = {}
    if kind == "meter":
        tails = [f"phase_{n}" for n in (1, 2, 3)] + ["total", "ln"]
        if family in THREE_PHASE_FAMILIES or family is Family.EMS:  # 0.1 A, not 0.01 A
            out |= {f"i_{t}": lambda v: round(v * 10, 1) for t in tails}
        if family is not Family.EMS:  # apparent power in 1 VA, not 0.1 VA
            out |= {f"p_apparent_{t}": lambda v: round(v * 10) for t in tails}
        if family in SINGLE_PHASE | THREE_PHASE_FAMILIES:  # PF as the inverter: raw/10000 - 1
            out |= {f"pf_{t}": lambda v: round(v - 1, 4) for t in tails}
    if kind == "bcu":
        out["battery_power"] = lambda v: _int16(v) * 100  # signed 0.1 kW, not unsigned mW
        for k in ("charge", "discharge"):
            for period in ("today", "total"):
                out[f"{k}_capacity_{period}"] = lambda v: round(v * 0.1, 1)  # 0.1 Ah
    return out


# Peer attribute -> our entry name, where GivTCP's raw name differs from the peer's (2.13.0).
INVERTER_ALIASES: Mapping[str, str] = {
    "serial_number": "Invertor_Serial_Number",
    "system_time": "Invertor_Time",
    "firmware_version": "Invertor_Firmware",
    "inverter_max_power": "Invertor_Max_Inv_Rate",
    "battery_soc": "SOC",
    "p_battery": "Battery_Power",
}


def _clock(v: Any) -> Any:
    return v.replace(tzinfo=TZ).isoformat() if isinstance(v, datetime) else v


def inverter_matches(obs: Observed) -> dict[str, Match]:
    paths = dict(obs.inverter)
    matches = _by_raw(obs.snap.specs, paths, {"system_time": _clock}, obs.snap)
    for peer_name, ours in INVERTER_ALIASES.items():
        if ours in paths:
            spec = obs.snap.specs[ours]
            convert = _clock if peer_name == "system_time" else _own_form(spec, obs.snap)
            matches.setdefault(peer_name, Match(paths[ours], convert))
    return matches


def device_matches(
    obs: Observed, address: int, kind: str
) -> tuple[dict[str, Any], dict[str, Match]]:
    dev = next(d for d in (*obs.snap.batteries, *obs.snap.meters) if d.address == address)
    tree = device_tree(obs.snap, address)
    paths = {}
    for name in dev.values:
        key = "/".join((*dev.specs[name].path, name))
        if key in tree:
            paths[name] = key
    matches = _by_raw(dev.specs, paths, decisions(kind, obs.snap.model.family))
    if kind == "bcu" and "Stack_Status" in paths:  # the peer names IR70 twice
        matches["status_label"] = matches["status"]
    return tree, matches


def peer_inverter(obs: Observed) -> dict[str, Any]:
    with quiet_deprecations():
        if obs.snap.model.phases == 3:
            return peer_three_phase(obs.store)
        return peer_single_phase(obs.store)


PEER_DEVICE: Mapping[range, tuple[str, Callable[[RegisterStore, int], dict[str, Any]]]] = {
    METERS: ("meter", peer_meter),
    LV_PACKS: ("pack", peer_battery),
    BCUS: ("bcu", peer_bcu),
    BMUS: ("bmu", peer_bmu),
}


def measure(name: str) -> dict[str, Comparison]:
    obs = observed(name)
    if obs.shares:
        return obs.shares
    obs.shares["inverter"] = compare(peer_inverter(obs), obs.flat, inverter_matches(obs))
    for dev in (*obs.snap.batteries, *obs.snap.meters):
        found = next((kd for r, kd in PEER_DEVICE.items() if dev.address in r), None)
        if found is None:
            continue  # the BAMS: the peer decodes no page of it
        kind, decode = found
        with quiet_deprecations():
            peer = decode(obs.store, dev.address)
        tree, matches = device_matches(obs, dev.address, kind)
        obs.shares[f"0x{dev.address:02x}"] = compare(peer, tree, matches)
    return obs.shares


@pytest.mark.parametrize("name", sorted(CASES))
def test_share_of_the_peer_values(name: str) -> None:
    shares = measure(name)
    lines = [f"{k}: {v.summary()}" for k, v in shares.items()]
    print(name, "\n".join(lines))
    assert shares
