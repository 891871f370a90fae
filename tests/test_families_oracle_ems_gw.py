"""EMS and Gateway captures through the simulator, checked against an independent oracle.

Each capture's registers are served by the project's simulator over real TCP; the project reads
them as it reads any plant (detection, meter probe, one full read) and builds GivTCP's runAll
tree. The oracle is the public peer library givenergy-modbus 2.13.0 (the ``test`` extra), which
decodes the same registers with its own register tables: its values are worked out without our
register map. Every essential value must appear under its GivTCP name with the peer's value, and
at least 90 % of everything the peer decodes must appear in runAll with the same value (the
shares are printed; see docs/families.md).

Bad pages are checked too: a page of all 0xFFFF, impossible values and a page at the wrong
address are refused, counted, and never published.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, time
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from givenergy_modbus.model.ems import EmsRegisterGetter
from givenergy_modbus.model.gateway import GatewayV1RegisterGetter, GatewayV2RegisterGetter
from givenergy_modbus.model.register import HR as PeerHR
from givenergy_modbus.model.register import IR as PeerIR

from givtcp_async.assemble import SnapshotAssembler
from givtcp_async.cache import RegisterCache
from givtcp_async.cli.read import read_plant
from givtcp_async.connection import ConnectionSettings
from givtcp_async.control.catalogue import CATALOGUE
from givtcp_async.protocol.capture import load_capture
from givtcp_async.protocol.frames import FunctionCode, ReadResponse
from givtcp_async.quality.gates import Reason
from givtcp_async.quality.identity import IdentityGuard
from givtcp_async.quality.pages import PageVerdict
from givtcp_async.reader import PlantLayout
from givtcp_async.simulator.server import DongleSimulator, SimulatorConfig
from givtcp_async.simulator.store import RegisterStore
from givtcp_async.sinks.discovery import DiscoveryConfig, entities
from givtcp_async.sinks.influx import snapshot_points
from givtcp_async.sinks.openapi import build_openapi
from givtcp_async.sinks.state_topics import StateTopics
from givtcp_async.snapshot import Snapshot
from tests.conftest import CAPTURES
from tests.test_openapi import validator

EMS = CAPTURES / "ems_2_inv_3_bat_a" / "ems_arm1036_30min.jsonl"
GATEWAY = CAPTURES / "gateway_2aio_a" / "gateway_gaaa0014_10min_daylight.jsonl"
TZ = ZoneInfo("Europe/London")
FAST = {"pacing": 0.0, "read_timeout": 0.3, "read_retries": 0, "retry_delay": 0.01}
SHARE = 0.90

# --- the oracle --------------------------------------------------------------------------------


@cache
def store_of(path: Path) -> RegisterStore:
    return RegisterStore.from_capture(load_capture(path))


class _Registers(dict[Any, int]):
    """The peer's register cache: a missing register is None (the peer then decodes None)."""

    def get(self, key: Any, default: Any = None) -> Any:
        return dict.get(self, key, default)


def peer_values(path: Path, getter: type[Any]) -> dict[str, Any]:
    """What the peer decodes from the inverter address of a capture, by its attribute name."""
    regs = _Registers()
    for function, bank in store_of(path).devices[0x11].banks.items():
        kind = PeerHR if int(function) == FunctionCode.READ_HOLDING else PeerIR
        for register, value in bank.items():
            regs[kind(register)] = value
    return dict(getter(regs).build())


# --- the project, end to end -------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    layout: PlantLayout
    cache: RegisterCache
    snapshot: Snapshot
    runall: dict[str, Any]

    def leaves(self) -> dict[str, Any]:
        """The inverter's own leaves of runAll by name (meters, batteries and raw left out)."""
        out: dict[str, Any] = {}
        skip = {"Meter_Details", "Battery_Details", "raw", "Stats"}

        def walk(node: Mapping[str, Any]) -> None:
            for key, value in node.items():
                if isinstance(value, Mapping):
                    if key not in skip:
                        walk(value)
                else:
                    out.setdefault(key, value)

        walk(self.runall)
        return out


async def read_capture(path: Path) -> Read:
    """The capture served by the simulator on 127.0.0.1, read once as ``givtcp-async read``."""
    async with DongleSimulator(store_of(path), SimulatorConfig()) as sim:
        layout, cache_ = await read_plant(
            ConnectionSettings("127.0.0.1", sim.port, **FAST),  # type: ignore[arg-type]
            timeout=5.0,
        )
    assembler = SnapshotAssembler(layout.model, layout.serial, layout.fields, TZ)
    snap = assembler.build(cache_, devices=layout.devices, now=datetime.now(TZ))
    return Read(layout, cache_, snap, snap.runall())


# --- comparing ---------------------------------------------------------------------------------

Norm = Callable[[Any], Any]


def _same(ours: Any, theirs: Any) -> bool:
    if isinstance(theirs, float) or isinstance(ours, float):
        try:
            return math.isclose(float(ours), float(theirs), abs_tol=1e-6)
        except (TypeError, ValueError):
            return False
    return bool(ours == theirs)


def _enum_text(value: Any) -> str:
    name = value.name if isinstance(value, Enum) else str(value)
    return name.replace("_", " ").capitalize()


def _hhmm(t: time) -> str:
    return t.strftime("%H:%M:00")


@dataclass(frozen=True)
class Pair:
    """One peer value and where the project publishes it (``ours`` maps its leaf if needed)."""

    peer: str
    names: tuple[str, ...]
    theirs: Norm = lambda v: v
    ours: Callable[..., Any] | None = None


def compare(pairs: list[Pair], peer: Mapping[str, Any], leaves: Mapping[str, Any]
            ) -> tuple[list[str], list[str]]:  # fmt: skip
    """(matched, missed): the peer names whose value runAll has, and those it has not."""
    matched: list[str] = []
    missed: list[str] = []
    for pair in pairs:
        value = peer[pair.peer]
        if value is None:
            continue  # the peer decoded nothing
        if not all(n in leaves for n in pair.names):
            missed.append(pair.peer)
            continue
        got = [leaves[n] for n in pair.names]
        mine = pair.ours(*got) if pair.ours else got[0]
        (matched if _same(mine, pair.theirs(value)) else missed).append(pair.peer)
    return matched, missed


def _slot(prefix: str, n: int) -> Pair:
    return Pair(f"{prefix.lower()}_slot_{n}",
                (f"{prefix}_start_time_slot_{n}", f"{prefix}_end_time_slot_{n}"),
                lambda s: (_hhmm(s.start), _hhmm(s.end)), lambda a, b: (a, b))  # fmt: skip


def ems_pairs() -> list[Pair]:
    pairs = [
        Pair("plant_status", ("EMS_Plant_Enable",), lambda v: "enable" if int(v) else "disable"),
        Pair("expected_inverter_count", ("Expected_Inverter_Count",)),
        Pair("expected_meter_count", ("Expected_Meter_Count",)),
        Pair("expected_car_charger_count", ("Car_Charge_Count",)),
        *(_slot(kind, n) for kind in ("Discharge", "Charge", "Export") for n in (1, 2, 3)),
        *(
            Pair(f"{kind.lower()}_target_{n}", (f"{kind}_Target_SOC_{n}",))
            for kind in ("Discharge", "Charge", "Export")
            for n in (1, 2, 3)
        ),
        Pair("export_power_limit", ("Export_Limit",)),
        Pair("car_charge_mode", ("Car_Charge_Mode",)),
        Pair("car_charge_boost", ("Car_Charge_Boost",)),
        Pair("plant_charge_compensation", ("Plant_Charge_Compensation",)),
        Pair("plant_discharge_compensation", ("Plant_Discharge_Compensation",)),
        Pair("ems_status", ("status",), _enum_text),
        Pair("meter_count", ("Meter_Count",)),
        Pair("meter_types", ("Meter_Types",), ours=lambda v: int(v, 16)),
        *(Pair(f"meter_{n}_status", (f"Meter_{n}_Status",), _enum_text) for n in range(1, 9)),
        *(Pair(f"meter_{n}_power", (f"Meter_{n}_Power",)) for n in range(1, 9)),
        Pair("inverter_count", ("Inverter_Count",)),
        Pair("calc_load_power", ("Calculated_Load_Power",)),
        Pair("measured_load_power", ("Measured_Load_Power",)),
        Pair("total_generation_load_power", ("Generation_Load_Power",)),
        Pair("grid_meter_power", ("Grid_Power",)),
        Pair("total_battery_power", ("Battery_Power",)),
        Pair("remaining_battery_wh", ("Remaining_Battery_Wh",)),
        Pair("other_battery_power", ("Other_Battery_Power",)),
        # IR18 moves with the generation power frame by frame: not an energy total (ems.py).
        Pair("e_active_generation_total", ("Generation_Energy_Total_kWh",)),
    ]
    for n in range(1, 5):
        pairs += [
            Pair(f"inverter_{n}_status", (f"Inverter_{n}_Status",),
                 lambda v: {"0": "Absent", "2": "Online"}.get(v)),
            Pair(f"inverter_{n}_suspected_status", (f"Inverter_{n}_Status",), _enum_text),
            Pair(f"inverter_{n}_power", (f"Inverter_{n}_Power",)),
            Pair(f"inverter_{n}_soc", (f"Inverter_{n}_SOC",)),
            Pair(f"inverter_{n}_temp", (f"Inverter_{n}_Temperature",)),
            Pair(f"inverter_{n}_serial_number", (f"Inverter_{n}_Serial_Number",),
                 lambda v: v.strip("\x00 ")),
        ]  # fmt: skip
    return pairs


def _energy(peer: str, ours: str) -> list[Pair]:
    return [Pair(f"{peer}_today", (f"{ours}_Today_kWh",)),
            Pair(f"{peer}_total", (f"{ours}_Total_kWh",))]  # fmt: skip


def gateway_pairs() -> list[Pair]:
    pairs = [
        Pair("software_version", ("Gateway_Software_Version",)),
        Pair("work_mode", ("Gateway_Mode",), _enum_text),
        Pair("v_grid", ("Grid_Voltage",)),
        Pair("i_grid", ("Grid_Current",)),
        Pair("v_load", ("Load_Voltage",)),
        Pair("i_load", ("Load_Current",)),
        Pair("i_pv", ("PV_Current",)),
        Pair("p_ac1", ("Grid_Power",)),
        Pair("p_pv", ("PV_Power",)),
        Pair("p_load", ("Load_Power",)),
        Pair("p_liberty", ("Liberty_Power",)),
        Pair("fault_protection", ("Fault_Protection_Code",)),
        Pair("gateway_fault_codes", ("Gateway_Faults",), lambda v: ", ".join(v) or "No faults"),
        Pair("v_grid_relay", ("Grid_Relay_Voltage",)),
        Pair("v_inverter_relay", ("Inverter_Relay_Voltage",)),
        Pair("first_inverter_serial_number", ("First_Inverter_Serial_Number",)),
        *_energy("e_grid_import", "Import_Energy"),
        *_energy("e_pv", "PV_Energy"),
        *_energy("e_grid_export", "Export_Energy"),
        *_energy("e_aio_charge", "Parallel_Total_Charge_Energy"),
        *_energy("e_aio_discharge", "Parallel_Total_Discharge_Energy"),
        *_energy("e_load", "Load_Energy"),
        *_energy("e_battery_charge", "Battery_Charge_Energy"),
        *_energy("e_battery_discharge", "Battery_Discharge_Energy"),
        Pair("parallel_aio_num", ("Parallel_Total_AIO_Number",)),
        Pair("parallel_aio_online_num", ("Parallel_Total_AIO_Online_Number",)),
        Pair("p_aio_total", ("Battery_Power",)),
        Pair("aio_state", ("Gateway_State",), _enum_text),
        Pair("battery_firmware_version", ("Battery_Firmware_Version",)),
    ]
    for n in (1, 2, 3):
        pairs += [
            *_energy(f"e_aio{n}_charge", f"AIO_{n}_AC_Charge_Energy"),
            *_energy(f"e_aio{n}_discharge", f"AIO_{n}_AC_Discharge_Energy"),
            Pair(f"aio{n}_soc", (f"AIO_{n}_SOC",)),
            Pair(f"p_aio{n}_inverter", (f"AIO_{n}_Invertor_Power",)),
            Pair(f"aio{n}_serial_number", (f"AIO_{n}_Serial_Number",)),
        ]
    return pairs


def _pairs_cover_the_peer(pairs: list[Pair], peer: Mapping[str, Any]) -> None:
    # The comparison must weigh everything the peer decodes, not a chosen subset.
    assert {p.peer for p in pairs} == set(peer)


# --- EMS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ems_read() -> Read:
    return asyncio.run(read_capture(EMS))


@pytest.fixture(scope="module")
def gateway_read() -> Read:
    return asyncio.run(read_capture(GATEWAY))


async def test_ems_essential_values_match_the_peer(ems_read: Read) -> None:
    peer = peer_values(EMS, EmsRegisterGetter)
    leaves = ems_read.leaves()
    assert ems_read.layout.model.family.value == "ems"
    # Plant status, per managed inverter status / power / SOC / temperature / serial, meter
    # powers and status, calculated load, grid meter, total battery and remaining battery Wh.
    essential = {
        "status": _enum_text(peer["ems_status"]),
        "Inverter_Count": peer["inverter_count"],
        "Meter_Count": peer["meter_count"],
        "Grid_Power": peer["grid_meter_power"],
        "Calculated_Load_Power": peer["calc_load_power"],
        "Battery_Power": peer["total_battery_power"],
        "Remaining_Battery_Wh": peer["remaining_battery_wh"],
        "Meter_1_Power": peer["meter_1_power"],
        "Meter_3_Power": peer["meter_3_power"],
        "Meter_1_Status": "Online",
        "Meter_2_Status": "Disabled",
        "Meter_3_Status": "Online",
        "Inverter_1_Status": "Online",
        "Inverter_2_Status": "Online",
        "Inverter_3_Status": "Absent",
    }
    for n in (1, 2):
        essential |= {
            f"Inverter_{n}_Power": peer[f"inverter_{n}_power"],
            f"Inverter_{n}_SOC": peer[f"inverter_{n}_soc"],
            f"Inverter_{n}_Temperature": peer[f"inverter_{n}_temp"],
            f"Inverter_{n}_Serial_Number": peer[f"inverter_{n}_serial_number"],
        }
    for name, value in essential.items():
        assert name in leaves, name
        assert _same(leaves[name], value), (name, leaves[name], value)
    # Figures worked out by hand from the capture's last IR2040 page, beside the peer's.
    assert (leaves["Inverter_1_SOC"], leaves["Inverter_2_SOC"]) == (51, 39)  # IR2058-2059
    assert leaves["Inverter_1_Temperature"] == 45.6  # IR2062 = 456
    assert leaves["Inverter_1_Serial_Number"] == "CE2231G000"  # IR2066-2070
    assert leaves["Remaining_Battery_Wh"] == 7442  # IR2091
    # The EMS controls keep working: their read-backs are where the catalogue looks for them.
    assert ems_read.runall["Control"]["EMS_Plant_Enable"] == "enable"
    assert ems_read.runall["Control"]["Export_Limit"] == 9500
    assert ems_read.runall["Timeslots"]["Discharge_start_time_slot_1"] == "19:00:00"
    assert ems_read.runall["Power"]["Meters"]["Meter_3_Power"] == 583
    inverters = ems_read.runall["Inverters"]
    assert inverters["Inverter_2"]["Inverter_2_SOC"] == 39


async def test_ems_share_of_the_peer(ems_read: Read) -> None:
    peer = peer_values(EMS, EmsRegisterGetter)
    pairs = ems_pairs()
    _pairs_cover_the_peer(pairs, peer)
    matched, missed = compare(pairs, peer, ems_read.leaves())
    share = len(matched) / (len(matched) + len(missed))
    print(f"EMS: {len(matched)} of {len(matched) + len(missed)} peer values "
          f"({share:.0%}) in runAll with the same value; not: {missed}")  # fmt: skip
    assert share >= SHARE
    assert missed == ["e_active_generation_total"]  # the one decision not to follow the peer


def _counts_by_structure(store: RegisterStore) -> tuple[int, int]:
    """The meters and inverters the EMS's per-slot words name, worked out by hand."""
    ir = store.devices[0x11].banks[int(FunctionCode.READ_INPUT)]
    meter_slots = [n for n in range(8) if ir[2043] >> (2 * n) & 0b11 == 1]  # online
    inverter_slots = [n for n in range(4) if ir[2045] >> (3 * n) & 0b111]
    serial_slots = [n for n in range(4) if any(ir[2066 + 5 * n + k] for k in range(5))]
    meter_powers = [n for n in range(8) if ir[2046 + n]]
    assert inverter_slots == serial_slots
    assert meter_slots == meter_powers == [0, 2]
    answering = [a for a in range(1, 9) if a in store.devices
                 and store.devices[a].banks[int(FunctionCode.READ_INPUT)].get(60)]  # fmt: skip
    assert answering == [n + 1 for n in meter_slots]  # meters 0x01 and 0x03 answer
    return len(meter_slots), len(inverter_slots)


async def test_ems_counts_follow_the_per_slot_words(ems_read: Read) -> None:
    """The count dispute (issue 12): IR2041 is the meter count, IR2044 the inverter count.

    Both read 2 in the capture, so their values cannot settle it; the per-slot words beside
    them can. IR2042-2043 are two-bit fields naming meter slots 1 and 3 (the meters answering at
    0x01 and 0x03, whose powers fill IR2046 and IR2048); IR2045 holds three-bit codes for the
    two inverter slots whose serials IR2066-2075 hold. The count sits with its slot words.
    """
    meters, inverters = _counts_by_structure(store_of(EMS))
    leaves = ems_read.leaves()
    assert leaves["Meter_Count"] == meters
    assert leaves["Inverter_Count"] == inverters
    assert ems_read.runall["Meter_Details"].keys() == {"Meter_ID1", "Meter_ID3"}


# --- Gateway -----------------------------------------------------------------------------------


async def test_gateway_essential_values_match_the_peer(gateway_read: Read) -> None:
    peer = peer_values(GATEWAY, GatewayV1RegisterGetter)
    leaves = gateway_read.leaves()
    essential = {
        "Grid_Voltage": peer["v_grid"],
        "Grid_Current": peer["i_grid"],
        "Grid_Power": peer["p_ac1"],
        "Load_Voltage": peer["v_load"],
        "Load_Current": peer["i_load"],
        "Load_Power": peer["p_load"],
        "PV_Power": peer["p_pv"],
        "PV_Current": peer["i_pv"],
        "Battery_Power": peer["p_aio_total"],
        "Invertor_Power": peer["p_aio_total"],
        "Gateway_Mode": "On grid",
        "Gateway_Faults": "No faults",
        "Import_Energy_Today_kWh": peer["e_grid_import_today"],
        "Import_Energy_Total_kWh": peer["e_grid_import_total"],
        "Export_Energy_Total_kWh": peer["e_grid_export_total"],
        "PV_Energy_Total_kWh": peer["e_pv_total"],
        "Load_Energy_Total_kWh": peer["e_load_total"],
        "SOC": (peer["aio1_soc"] + peer["aio2_soc"]) // 2,
    }
    for n in (1, 2):
        essential |= {
            f"AIO_{n}_SOC": peer[f"aio{n}_soc"],
            f"AIO_{n}_Invertor_Power": peer[f"p_aio{n}_inverter"],
            f"AIO_{n}_Serial_Number": peer[f"aio{n}_serial_number"],
            f"AIO_{n}_AC_Charge_Energy_Total_kWh": peer[f"e_aio{n}_charge_total"],
        }
    for name, value in essential.items():
        assert name in leaves, name
        assert _same(leaves[name], value), (name, leaves[name], value)
    # By hand: IR1641-1642 = 0x0001, 0xF084 -> 0x1F084 = 127108 -> 12710.8 kWh.
    assert leaves["Import_Energy_Total_kWh"] == 12710.8
    assert leaves["Gateway_Software_Version"] == "GAAA0014"
    assert leaves["SOC"] == 95  # (94 + 96) / 2
    assert gateway_read.runall["Inverters"]["AIO_2"]["AIO_2_Serial_Number"] == "CH2542G000"


async def test_gateway_share_of_the_peer(gateway_read: Read) -> None:
    peer = peer_values(GATEWAY, GatewayV1RegisterGetter)
    pairs = gateway_pairs()
    _pairs_cover_the_peer(pairs, peer)
    matched, missed = compare(pairs, peer, gateway_read.leaves())
    share = len(matched) / (len(matched) + len(missed))
    print(f"Gateway: {len(matched)} of {len(matched) + len(missed)} peer values "
          f"({share:.0%}) in runAll with the same value; not: {missed}")  # fmt: skip
    assert share >= SHARE
    # The empty third slot's lifetime totals read 0: the gates hold a zero total back until it
    # persists (a glitch, not a real counter, on every other plant), so one read lacks them.
    assert missed == ["e_aio3_charge_total", "e_aio3_discharge_total"]


def test_gateway_word_order_is_high_word_first_on_gaaa0014() -> None:
    """The decision on the totals' word order, from the capture (gateway.py's docstring)."""
    v1 = peer_values(GATEWAY, GatewayV1RegisterGetter)
    v2 = peer_values(GATEWAY, GatewayV2RegisterGetter)
    totals = [k for k in v1 if k.startswith("e_") and k.endswith("_total") and v1[k]]
    assert len(totals) >= 10
    # High word first: every lifetime total a house could have made; swapped: absurd.
    assert all(0 < v1[k] < 100_000 for k in totals)
    assert all(v2[k] > 10_000_000 for k in totals)  # beyond the totals' bounds: refused
    # The plant's AIO charge total is the sum of the AIOs' (to the AIOs' own counting).
    assert v1["e_aio1_charge_total"] + v1["e_aio2_charge_total"] <= v1["e_aio_charge_total"]


# --- bad pages ---------------------------------------------------------------------------------


def _page(read: Read, bank: str, base: int) -> list[int]:
    page = read.cache.page(0x11, bank, base)
    assert page is not None
    return list(page.values)


def _copy(cache_: RegisterCache) -> RegisterCache:
    out = RegisterCache()
    for page in cache_.pages():
        out.offer(_frame(page.key.device_address, page.key.bank, page.key.base, page.values))
    return out


def _frame(device: int, bank: str, base: int, values: Any, serial: bytes = b"") -> ReadResponse:
    function = FunctionCode.READ_HOLDING if bank == "HR" else FunctionCode.READ_INPUT
    return ReadResponse(device, function, serial or b"XX0000X000", base, tuple(values))


async def test_an_all_ones_ems_page_is_refused_and_counted(ems_read: Read) -> None:
    cache_ = _copy(ems_read.cache)
    verdict = cache_.offer(_frame(0x11, "IR", 2040, [0xFFFF] * 60))
    assert verdict is PageVerdict.ALL_ONES
    assert cache_.rejections[PageVerdict.ALL_ONES] == 1
    assert cache_.get(0x11, "IR", 2058) == 51  # the last good page stays


def _impossible(read: Read, bank: str, base: int, changes: Mapping[int, int],
                names: tuple[str, ...]) -> None:  # fmt: skip
    """A page with ``changes`` applied reaches the gates, which refuse ``names``."""
    now = datetime.now(TZ)
    assembler = SnapshotAssembler(read.layout.model, read.layout.serial, read.layout.fields, TZ)
    good = assembler.build(read.cache, devices=read.layout.devices, now=now)
    values = _page(read, bank, base)
    for register, value in changes.items():
        values[register - base] = value
    cache_ = _copy(read.cache)
    assert cache_.offer(_frame(0x11, bank, base, values)) is PageVerdict.OK
    bad = assembler.build(cache_, devices=read.layout.devices, now=now)
    for name in names:
        reading = bad.values[name]
        assert reading.stale, name  # the last good value, marked stale: never the bad one
        assert reading.value == good.values[name].value, name
    rejected = {rule for (rule, _reason) in assembler._gate.rejections}
    assert set(names) <= rejected


async def test_impossible_ems_values_are_refused(ems_read: Read) -> None:
    _impossible(
        ems_read,
        "IR",
        2040,
        {2058: 250, 2062: 9000, 2089: 0x8000, 2044: 99},
        ("Inverter_1_SOC", "Inverter_1_Temperature", "Grid_Power", "Inverter_Count"),
    )


async def test_impossible_gateway_values_are_refused(gateway_read: Read) -> None:
    # Swapped words (the order a "V2" firmware would use) make the totals absurd.
    values = _page(gateway_read, "IR", 1600)
    swapped = {1641: values[1642 - 1600], 1642: values[1641 - 1600],
               1644: values[1645 - 1600], 1645: values[1644 - 1600]}  # fmt: skip
    _impossible(
        gateway_read,
        "IR",
        1600,
        {**swapped, 1608: 9999, 1617: 60000},
        ("Import_Energy_Total_kWh", "PV_Energy_Total_kWh", "Grid_Voltage", "PV_Power"),
    )
    _impossible(gateway_read, "IR", 1780, {1801: 101}, ("AIO_1_SOC",))


async def test_a_page_at_the_wrong_address_is_refused(gateway_read: Read) -> None:
    """An EMS page the gateway never polls, and a gateway page from another unit."""
    serial = gateway_read.layout.serial
    cache_ = _copy(gateway_read.cache)
    cache_.admit = IdentityGuard(serial).judge
    ems_page = _page_of(store_of(EMS), 2040)
    # Unsolicited (another client's traffic), with our serial: no such page in our polls.
    frame = _frame(0x11, "IR", 2040, ems_page, serial.encode())
    assert cache_.offer(frame, solicited=False) is PageVerdict.IDENTITY
    # Our own request answered by another unit (the EMS at the gateway's address).
    frame = _frame(0x11, "IR", 1600, _page(gateway_read, "IR", 1600), b"EMS2522000")
    assert cache_.offer(frame, solicited=True) is PageVerdict.IDENTITY
    assert cache_.rejections[PageVerdict.IDENTITY] == 2
    assert cache_.page(0x11, "IR", 2040) is None


def _page_of(store: RegisterStore, base: int) -> list[int]:
    bank = store.devices[0x11].banks[int(FunctionCode.READ_INPUT)]
    return [bank[r] for r in range(base, base + 60)]


# --- every sink ----------------------------------------------------------------------------------


def _by_name(read: Read) -> dict[str, dict[str, Any]]:
    serial = read.layout.serial
    out: dict[str, dict[str, Any]] = {}
    for entity in entities(read.snapshot, DiscoveryConfig()):
        unique = str(entity.config["unique_id"])
        out[unique.removeprefix(f"GivTCP_{serial}_")] = dict(entity.config)
    return out


def _devices(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each device's full block (the first entity of a device carries it)."""
    out: dict[str, dict[str, Any]] = {}
    for config in configs.values():
        device = config["device"]
        out.setdefault(device["identifiers"][0], {}).update(device)
    return out


async def test_gateway_and_ems_values_reach_home_assistant(
    gateway_read: Read, ems_read: Read
) -> None:
    for read, member, names in (
        (gateway_read, "AIO_1", ("AIO_1_SOC", "AIO_1_Invertor_Power",
                                 "AIO_1_AC_Charge_Energy_Total_kWh")),
        (ems_read, "Inverter_2", ("Inverter_2_SOC", "Inverter_2_Power",
                                  "Inverter_2_Temperature")),
    ):  # fmt: skip
        serial = read.layout.serial
        configs = _by_name(read)
        devices = _devices(configs)
        ident = f"givtcp_{serial}_{member.lower()}"
        # Each member is a device of its own, linked to the plant's device.
        assert devices[ident]["via_device"] == f"givtcp_{serial}"
        assert f"givtcp_{serial}" in devices
        for name in names:
            config = configs[name]
            assert config["device"]["identifiers"] == [ident], name
            assert config["state_topic"].endswith(f"/Inverters/{member}/{name}"), name
        # Each sensor's state topic is one the MQTT sink publishes from runAll.
        published = set(StateTopics(root="GivEnergy").topics(read.snapshot))
        for name in names:
            assert configs[name]["state_topic"] in published, name
        # The plant's own values stay on the plant's device.
        assert configs["Battery_Power"]["device"]["identifiers"] == [f"givtcp_{serial}"]
    gw = _by_name(gateway_read)
    # Energy dashboard: kWh, device class energy, total (lifetime) / total_increasing (today).
    for name in ("Import_Energy_Total_kWh", "Export_Energy_Total_kWh", "PV_Energy_Total_kWh",
                 "Load_Energy_Total_kWh", "AIO_2_AC_Discharge_Energy_Total_kWh"):  # fmt: skip
        assert (gw[name]["device_class"], gw[name]["state_class"]) == ("energy", "total"), name
        assert gw[name]["unit_of_measurement"] == "kWh"
    today = gw["Import_Energy_Today_kWh"]
    assert (today["device_class"], today["state_class"]) == ("energy", "total_increasing")
    assert (gw["Grid_Power"]["device_class"], gw["Grid_Power"]["unit_of_measurement"]) == (
        "power",
        "W",
    )
    assert gw["AIO_1_SOC"]["device_class"] == "battery"
    assert gw["Gateway_Mode"]["options"] == ["Initialising", "Off grid", "On grid", "Fault",
                                             "Update"]  # fmt: skip
    ems = _by_name(ems_read)
    assert ems["Remaining_Battery_Wh"]["device_class"] == "energy_storage"
    assert ems["Remaining_Battery_Wh"]["unit_of_measurement"] == "Wh"
    assert ems["Meter_1_Status"]["options"] == ["Disabled", "Online", "Offline"]
    assert "Meter_Status_Code" not in ems  # the packed word is not an entity
    # The EMS controls are still announced as controls.
    assert ems["EMS_Plant_Enable"]["command_topic"].endswith("/setEmsPlant")


async def test_gateway_and_ems_values_reach_influx_and_the_openapi_schema(
    gateway_read: Read, ems_read: Read
) -> None:
    gw_lines = snapshot_points(gateway_read.snapshot)
    member = [line for line in gw_lines if line.startswith("member,") and "member=AIO_1" in line]
    assert len(member) == 1
    assert "aio_1_soc=94.0" in member[0]
    assert "aio_1_ac_charge_energy_total_kwh=7871.8" in member[0]
    total = next(line for line in gw_lines if line.startswith("energy_total,"))
    assert "import_energy_total_kwh=12710.8" in total
    ems_lines = snapshot_points(ems_read.snapshot)
    meters = next(line for line in ems_lines if line.startswith("plant_meters,"))
    assert "meter_3_power=583.0" in meters
    assert any("member=Inverter_1" in line and "inverter_1_soc=51.0" in line
               for line in ems_lines)  # fmt: skip
    # The runAll answers validate against the OpenAPI document, and a wrong one does not.
    doc = build_openapi(CATALOGUE)
    check = validator(doc, {"$ref": "#/components/schemas/RunAll"})
    for read in (gateway_read, ems_read):
        plain = json.loads(json.dumps(read.runall, default=str))
        assert list(check.iter_errors(plain)) == []
    wrong = json.loads(json.dumps(gateway_read.runall, default=str))
    wrong["Inverters"]["AIO_1"]["AIO_1_SOC"] = 140
    assert list(check.iter_errors(wrong))


async def test_gateway_totals_never_go_back_and_todays_reset_only_at_midnight(
    gateway_read: Read,
) -> None:
    read = gateway_read
    assembler = SnapshotAssembler(read.layout.model, read.layout.serial, read.layout.fields, TZ)
    noon = datetime(2026, 6, 21, 13, 0, tzinfo=TZ)
    first = assembler.build(read.cache, devices=read.layout.devices, now=noon)
    values = _page(read, "IR", 1600)
    total = (values[1641 - 1600] << 16 | values[1642 - 1600]) - 1000  # 100 kWh less
    values[1641 - 1600], values[1642 - 1600] = total >> 16, total & 0xFFFF
    values[1643 - 1600] = 0  # PV today back to 0 at 13:00
    cache_ = _copy(read.cache)
    assert cache_.offer(_frame(0x11, "IR", 1600, values)) is PageVerdict.OK
    bad = assembler.build(cache_, devices=read.layout.devices, now=noon)
    for name, reason in (("Import_Energy_Total_kWh", Reason.WENT_BACKWARDS),
                         ("PV_Energy_Today_kWh", Reason.RESET_OUTSIDE_MIDNIGHT)):  # fmt: skip
        assert bad.values[name].stale, name
        assert bad.values[name].value == first.values[name].value
        assert assembler._gate.rejections[(name, reason)] == 1
    midnight = datetime(2026, 6, 22, 0, 1, tzinfo=TZ)
    after = assembler.build(cache_, devices=read.layout.devices, now=midnight)
    assert (
        after.values["PV_Energy_Today_kWh"].value,
        after.values["PV_Energy_Today_kWh"].stale,
    ) == (0.0, False)
    assert (
        after.values["Import_Energy_Total_kWh"].value
        == first.values["Import_Energy_Total_kWh"].value
    )
