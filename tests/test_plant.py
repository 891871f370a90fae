"""The simulated plant: physics, controls, registers and truth, directly and over TCP.

Register values are decoded by hand here (SPEC §4.1 encodings) so that the plant's truth is
checked without the project's register map.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from givtcp_async.cli import main
from givtcp_async.connection import ConnectionSettings, DongleConnection
from givtcp_async.errors import DeviceErrorResponse
from givtcp_async.protocol.frames import FunctionCode
from givtcp_async.registers.models import detect_model
from givtcp_async.registers.schema import Family
from givtcp_async.simulator.plant import (
    Plant,
    PlantConfig,
    PlantTruth,
    SimClock,
    TruthValue,
    build_default_plant,
)
from tests.conftest import CAPTURES

LONDON = ZoneInfo("Europe/London")
REPO = Path(__file__).resolve().parents[1]
HR = FunctionCode.READ_HOLDING
IR = FunctionCode.READ_INPUT
NOMINAL_V = 51.2

Regs = dict[tuple[int, int, int], int]  # (device, function, register) -> raw value


# --- hand decoding (SPEC §4.1), deliberately independent of givtcp_async.registers -------------


def s16(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


def u32(hi: int, lo: int) -> int:
    return (hi << 16) | lo


def text(words: list[int]) -> str:
    return b"".join(w.to_bytes(2, "big") for w in words).replace(b"\x00", b"").decode("ascii")


def hhmm(raw: int) -> str:
    return f"{raw // 100:02d}:{raw % 100:02d}:00"


def num(values: PlantTruth | Mapping[str, TruthValue], name: str) -> float:
    """A numeric truth value (mypy: the mapping holds numbers, text and datetimes)."""
    value = values[name]
    assert isinstance(value, int | float), name
    return value


def local(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0
) -> datetime:
    """A plant-local (Europe/London) time."""
    return datetime(year, month, day, hour, minute, sec, tzinfo=LONDON)


def wall(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    """A naive wall-clock time, as the inverter's clock (HR35-40) carries it."""
    return local(year, month, day, hour, minute, sec).replace(tzinfo=None)


def switch(raw: int) -> str:
    return {0: "disable", 1: "enable"}[raw]


def slot_registers(first: dict[int, tuple[int, int, int]], base: int, k: int) -> tuple[int, ...]:
    """(start, end, target) of slot ``k``: slots 1 and 2 apart, 3..10 in triples from ``base``."""
    return first.get(k) or (base + 3 * (k - 3), base + 3 * (k - 3) + 1, base + 3 * (k - 3) + 2)


CHARGE_SLOTS = {1: (94, 95, 242), 2: (243, 244, 245)}
DISCHARGE_SLOTS = {1: (56, 57, 272), 2: (44, 45, 275)}


def decode(regs: Regs) -> tuple[dict[str, object], list[dict[str, object]]]:
    """GivTCP-named values from raw registers, decoded by hand from the SPEC's tables."""

    def h(r: int) -> int:
        return regs[(0x11, HR, r)]

    def i(r: int) -> int:
        return regs[(0x11, IR, r)]

    pv1, pv2, grid, inverter, battery = i(18), i(20), s16(i(30)), s16(i(24)), s16(i(52))
    cap_wh = h(55) * NOMINAL_V
    v: dict[str, object] = {
        "Invertor_Serial_Number": text([h(r) for r in range(13, 18)]),
        "Invertor_Firmware": f"D0.{h(19)}-A0.{h(21)}",
        "Modbus_Version": h(34) / 100,
        "Invertor_Max_Inv_Rate": (h(2) & 0xFF) * 100,
        "Invertor_Max_Bat_Rate": 3600,  # SPEC §4.2: DTC 20xx with ARM fw 3xx
        "Battery_Capacity_kWh": round(cap_wh / 1000, 2),
        "Export_Limit": h(26),
        "Invertor_Time": datetime(2000 + h(35), h(36), h(37), h(38), h(39), h(40)),  # noqa: DTZ001
        "Invertor_Temperature": s16(i(41)) / 10,
        "PV_Power_String_1": pv1,
        "PV_Power_String_2": pv2,
        "PV_Power": pv1 + pv2,
        "PV_Voltage_String_1": i(1) / 10,
        "PV_Voltage_String_2": i(2) / 10,
        "PV_Current_String_1": i(8) / 10,
        "PV_Current_String_2": i(9) / 10,
        "Combined_Generation_Power": u32(i(247), i(248)),
        "Grid_Voltage": i(5) / 10,
        "Grid_Current": i(58) / 100,
        "Grid_Frequency": i(13) / 100,
        "Grid_Power": grid,
        "Import_Power": max(0, -grid),
        "Export_Power": max(0, grid),
        "EPS_Power": i(31),
        "Invertor_Power": inverter,
        "AC_Charge_Power": max(0, -inverter),
        "Load_Power": i(42),
        "SOC": i(59),
        "Battery_Power": battery,
        "Charge_Power": max(0, -battery),
        "Discharge_Power": max(0, battery),
        "Battery_Voltage": i(50) / 100,
        "Battery_Current": s16(i(51)) / 100,
        "PV_Energy_Today_kWh": (i(17) + i(19)) / 10,
        "Import_Energy_Today_kWh": i(26) / 10,
        "Export_Energy_Today_kWh": i(25) / 10,
        "AC_Charge_Energy_Today_kWh": i(35) / 10,
        "Invertor_Energy_Today_kWh": i(44) / 10,
        "Battery_Charge_Energy_Today_kWh": i(36) / 10,
        "Battery_Discharge_Energy_Today_kWh": i(37) / 10,
        "Battery_Throughput_Today_kWh": (i(36) + i(37)) / 10,
        "PV_Energy_Total_kWh": u32(i(11), i(12)) / 10,
        "Import_Energy_Total_kWh": u32(i(32), i(33)) / 10,
        "Export_Energy_Total_kWh": u32(i(21), i(22)) / 10,
        "AC_Charge_Energy_Total_kWh": u32(i(27), i(28)) / 10,
        "Invertor_Energy_Total_kWh": u32(i(45), i(46)) / 10,
        "Battery_Throughput_Total_kWh": u32(i(6), i(7)) / 10,
        "Battery_Charge_Energy_Total_kWh": regs[(0x32, IR, 106)] / 10,
        "Battery_Discharge_Energy_Total_kWh": regs[(0x32, IR, 105)] / 10,
        "Eco_Mode": switch(h(27)),
        "Enable_Charge_Schedule": switch(h(96)),
        "Enable_Discharge_Schedule": switch(h(59)),
        "Enable_Charge_Target": switch(h(20)),
        "Target_SOC": h(116),
        "Battery_Power_Reserve": h(110),
        "Battery_Power_Cutoff": h(114),
        "Battery_Charge_Rate": round(min(h(111) / 100 * cap_wh, 3600)),
        "Battery_Discharge_Rate": round(min(h(112) / 100 * cap_wh, 3600)),
        "Active_Power_Rate": h(50),
        "Real_Time_Control": switch(h(166)),
        "Battery_pause_mode": ["Disabled", "PauseCharge", "PauseDischarge", "PauseBoth"][h(318)],
        "Battery_pause_start_time_slot": hhmm(h(319)),
        "Battery_pause_end_time_slot": hhmm(h(320)),
        "Battery_Calibration_Status": h(29),
    }
    for k in range(1, 11):
        cs, ce, ct = slot_registers(CHARGE_SLOTS, 246, k)
        ds, de, dt = slot_registers(DISCHARGE_SLOTS, 276, k)
        v[f"Charge_start_time_slot_{k}"] = hhmm(h(cs))
        v[f"Charge_end_time_slot_{k}"] = hhmm(h(ce))
        v[f"Charge_Target_SOC_{k}"] = h(ct)
        v[f"Discharge_start_time_slot_{k}"] = hhmm(h(ds))
        v[f"Discharge_end_time_slot_{k}"] = hhmm(h(de))
        v[f"Discharge_Target_SOC_{k}"] = h(dt)

    packs: list[dict[str, object]] = []
    for addr in range(0x32, 0x38):

        def b(r: int, addr: int = addr) -> int:
            return regs[(addr, IR, r)]

        serial_words = [b(r) for r in range(110, 115)]
        if not any(serial_words):
            continue
        pack: dict[str, object] = {
            "Battery_Serial_Number": text(serial_words),
            "Battery_SOC": b(100),
            "Battery_Capacity": u32(b(84), b(85)) / 100,
            "Battery_Design_Capacity": u32(b(86), b(87)) / 100,
            "Battery_Remaining_Capacity": u32(b(88), b(89)) / 100,
            "Battery_Firmware_Version": b(98),
            "Battery_Cells": b(97),
            "Battery_Cycles": b(96),
            "Battery_Temperature": s16(b(81)) / 10,
            "Battery_Voltage": b(80) / 1000,
            "Battery_Current": s16(b(95)) / 100,
        }
        for n in range(16):
            pack[f"Battery_Cell_{n + 1}_Voltage"] = b(60 + n) / 1000
        for n in range(4):
            pack[f"Battery_Cell_{n + 1}_Temperature"] = s16(b(76 + n)) / 10
        packs.append(pack)
    return v, packs


# --- helpers -----------------------------------------------------------------------------------


def plant_at(start: datetime, **kwargs: object) -> Plant:
    """A frozen-clock plant (speed 0) starting at plant-local ``start``."""
    return build_default_plant(speed=0, start=start, **kwargs)  # type: ignore[arg-type]


def write(plant: Plant, *pairs: tuple[int, int]) -> None:
    for register, value in pairs:
        assert plant.write_holding(register, value) is not None, (register, value)


def balance(t: PlantTruth) -> float:
    """PV + import + discharge - (load + export + charge), in W."""
    sources = num(t, "PV_Power") + num(t, "Import_Power") + num(t, "Discharge_Power")
    sinks = num(t, "Load_Power") + num(t, "Export_Power") + num(t, "Charge_Power")
    return sources - sinks


def samples(plant: Plant, seconds: float, every: float) -> Iterator[PlantTruth]:
    elapsed = 0.0
    while elapsed < seconds:
        plant.advance(every)
        elapsed += every
        yield plant.truth()


@contextlib.asynccontextmanager
async def serve(plant: Plant) -> AsyncIterator[DongleConnection]:
    """The plant behind a simulated dongle on 127.0.0.1, and a connection to it."""
    async with plant.simulator() as sim:
        settings = ConnectionSettings(host="127.0.0.1", port=sim.port, pacing=0.0)
        async with DongleConnection(settings) as conn:
            await conn.wait_connected(5)
            yield conn


async def read_all(conn: DongleConnection) -> Regs:
    regs: Regs = {}
    reads = [(0x11, HR, base) for base in (0, 60, 120, 180, 240, 300)]
    reads += [(0x11, IR, base) for base in (0, 120, 180, 240)]
    reads += [(addr, IR, 60) for addr in range(0x32, 0x38)]
    for addr, fn, base in reads:
        resp = await conn.read(addr, fn, base, 60)
        for n, value in enumerate(resp.values):
            regs[(addr, fn, base + n)] = value
    return regs


async def inverter_page(conn: DongleConnection, fn: FunctionCode = IR, base: int = 0) -> list[int]:
    return list((await conn.read(0x11, fn, base, 60)).values)


# --- identity and layout ---------------------------------------------------------------------


def test_default_plant_is_a_gen3_hybrid_with_ten_slots() -> None:
    plant = plant_at(local(2024, 6, 21, 12, 0))
    model = detect_model({r: plant.holding(r) for r in range(60)})
    assert model.family is Family.HYBRID_GEN3
    assert model.extended_slots
    assert model.rated_power == 5000 == (plant.holding(2) & 0xFF) * 100
    assert model.battery_max_power == 3600
    assert plant.holding(0) == 0x2001
    assert plant.holding(21) > 302
    assert plant.holding(30) == 0x11
    serials = [plant.serial, plant.dongle_serial, *plant.battery_serials]
    assert len(plant.battery_serials) == 2
    for serial in serials:
        assert len(serial) == 10
        assert serial.isalnum()
        assert serial == serial.upper()
        assert serial[:2].isalpha()
        assert serial[2:6].isdigit()
        assert serial[6].isalpha()
    assert plant.serial.startswith("SA")
    assert plant.dongle_serial.startswith("WG")
    assert all(s.startswith("DZ") for s in plant.battery_serials)
    # HR55 is the packs' design capacity in Ah.
    design = sum(u32(plant.input(86, 0x32 + i), plant.input(87, 0x32 + i)) for i in range(2))
    assert plant.holding(55) == design // 100


def test_static_registers_look_like_the_captured_hybrids() -> None:
    from givtcp_async.protocol.capture import load_capture
    from givtcp_async.simulator.store import RegisterStore

    capture = next((CAPTURES / "hybrid_2_bat_a").glob("*.jsonl"))
    real = RegisterStore.from_capture(load_capture(capture))
    plant = plant_at(local(2024, 6, 21, 12, 0))
    # Identity words share the captured layout: module word, MPPT/phase, Modbus address and
    # version, the grid-protection table, battery voltage limits.
    for register in (1, 2, 3, 7, 30, 34, 46, 47, *range(60, 84), 97, 98):
        assert plant.holding(register) == real.holding(register), register
    # The captured battery pages have the same shape: 16 cells, firmware, serial at 110-114.
    assert plant.input(97, 0x32) == real.input(97, 0x32) == 16


@pytest.mark.parametrize("batteries", [1, 2, 6])
async def test_pages_answer_as_a_gen3_does(batteries: int) -> None:
    plant = plant_at(local(2024, 6, 21, 12, 0), batteries=batteries)
    async with serve(plant) as conn:
        for base in (0, 60, 120, 180, 240, 300):
            resp = await conn.read(0x11, HR, base, 60)
            assert resp.serial == plant.serial.encode()
        for base in (0, 120, 180, 240):
            await conn.read(0x11, IR, base, 60)
        with pytest.raises(DeviceErrorResponse):
            await conn.read(0x11, IR, 60, 60)
        with pytest.raises(DeviceErrorResponse):
            await conn.read(0x11, HR, 360, 60)
        with pytest.raises(DeviceErrorResponse):
            await conn.read(0x32, HR, 0, 60)
        for slot in range(6):
            page = (await conn.read(0x32 + slot, IR, 60, 60)).values
            if slot < batteries:
                assert text(list(page[50:55])) == plant.battery_serials[slot]
                assert all(2800 < mv < 3700 for mv in page[:16])
                assert abs(page[40] - 50) <= 2  # IR100 SOC: packs differ a little
            else:
                assert page == (0,) * 60
        # 0x31 answers its LV BCU page (IR60-63: statuses, request currents) as the captured
        # Gen2 with the same BMS firmware does; the rest of the page is zero.
        bcu = await conn.read(0x31, IR, 60, 60, timeout=0.3, retries=0)
        assert bcu.values == (0, 0, 83, 83) + (0,) * 56
    assert plant.holding(55) == 186 * batteries


# --- physics ---------------------------------------------------------------------------------


def test_energy_balances_every_step_and_the_counters_agree() -> None:
    plant = plant_at(local(2024, 6, 21, 0, 0), seed=4, soc=40)
    write(plant, (94, 200), (95, 400), (96, 1), (56, 1900), (57, 2000), (59, 1), (27, 0))
    first = plant.truth()
    worst = 0.0
    for t in samples(plant, 86400, plant.step_seconds):
        worst = max(worst, abs(balance(t)))
        inverter_side = num(t, "Load_Power") + num(t, "Grid_Power")
        assert abs(num(t, "Invertor_Power") - inverter_side) <= 1
    assert worst <= 3
    last = plant.truth()

    def gained(name: str) -> float:
        return num(last, name) - num(first, name)

    sources = gained("PV_Energy_Total_kWh") + gained("Import_Energy_Total_kWh")
    sources += gained("Battery_Discharge_Energy_Total_kWh")
    sinks = gained("Load_Energy_Total_kWh") + gained("Export_Energy_Total_kWh")
    sinks += gained("Battery_Charge_Energy_Total_kWh")
    assert sources == pytest.approx(sinks, abs=0.5)
    assert gained("PV_Energy_Total_kWh") > 10  # a midsummer day
    assert gained("Import_Energy_Total_kWh") > 3  # the 02:00-04:00 charge slot
    assert gained("Export_Energy_Total_kWh") > 3  # the 19:00 timed export
    inverter = gained("Invertor_Energy_Total_kWh") - gained("AC_Charge_Energy_Total_kWh")
    grid = gained("Export_Energy_Total_kWh") - gained("Import_Energy_Total_kWh")
    assert inverter - grid == pytest.approx(gained("Load_Energy_Total_kWh"), abs=0.5)


def test_counters_never_go_backwards_except_today_at_local_midnight() -> None:
    # Across the autumn clock change (27 October 2024, 02:00 BST -> 01:00 GMT).
    plant = plant_at(local(2024, 10, 25, 21, 0), seed=2)
    totals = [k for k in plant.truth().values if k.endswith("_Total_kWh")]
    todays = [k for k in plant.truth().values if k.endswith("_Today_kWh")]
    prev = plant.truth()
    resets = 0
    for t in samples(plant, 3 * 86400, 300):
        for name in totals:
            assert num(t, name) >= num(prev, name), name
        clock, before = t["Invertor_Time"], prev["Invertor_Time"]
        assert isinstance(clock, datetime)
        assert isinstance(before, datetime)
        if clock.date() != before.date():
            resets += 1
            assert clock.hour == 0
            assert clock.minute < 5
            for name in todays:
                assert num(t, name) <= 1.0, name
        else:
            for name in todays:
                assert num(t, name) >= num(prev, name), name
        house = t.time.astimezone(LONDON).replace(tzinfo=None)
        assert abs((clock - house).total_seconds()) < 1
        prev = t
    assert resets == 3


def test_soc_stays_between_reserve_and_full_and_moves_with_the_battery() -> None:
    plant = plant_at(local(2024, 5, 1, 0, 0), seed=5, soc=35)
    write(plant, (110, 25))
    socs = []
    prev = plant.truth()
    for t in samples(plant, 2 * 86400, plant.step_seconds):
        soc = num(t, "SOC")
        assert 25 <= soc <= 100
        socs.append(soc)
        power = num(t, "Battery_Power")  # the step that just ended
        for now, before in zip(t.batteries, prev.batteries, strict=True):
            change = num(now, "Battery_Remaining_Capacity") - num(
                before, "Battery_Remaining_Capacity"
            )
            if power > 0:
                assert change <= 0.01
            elif power < 0:
                assert change >= -0.01
            else:
                assert abs(change) <= 0.01
        prev = t
    assert min(socs) == 25
    assert max(socs) == 100


def test_cells_and_temperatures_follow_soc_and_current() -> None:
    plant, twin = (plant_at(local(2024, 1, 10, 1, 0), soc=20) for _ in range(2))
    write(twin, (27, 0))  # storage mode: the twin's battery rests all night
    write(plant, (27, 0), (94, 100), (95, 500), (96, 1))
    rest = plant.truth().batteries[0]
    for p in (plant, twin):
        p.advance(60)
    pack = plant.truth().batteries[0]
    assert num(plant.truth(), "Battery_Power") == -3600
    assert num(pack, "Battery_Current") < -20  # + = discharge
    assert num(pack, "Battery_Cell_1_Voltage") > num(rest, "Battery_Cell_1_Voltage")

    def gap() -> float:
        """How much warmer the charged packs are than the resting twin's."""
        mine, theirs = plant.truth().batteries[0], twin.truth().batteries[0]
        return num(mine, "Battery_Cell_1_Temperature") - num(theirs, "Battery_Cell_1_Temperature")

    for p in (plant, twin):
        p.advance(4 * 3600)  # four hours at 3.6 kW
    warm = gap()
    assert warm > 1.0
    for p in (plant, twin):
        p.advance(3 * 3600)  # the slot is over: three idle hours
    assert gap() < warm / 2
    write(plant, (94, 800), (95, 1200))
    plant.advance(4 * 3600)
    full = plant.truth()
    assert num(full, "SOC") == 100
    cells = [num(full.batteries[0], f"Battery_Cell_{n}_Voltage") for n in range(1, 17)]
    assert all(3.35 < c < 3.65 for c in cells)
    assert num(full.batteries[0], "Battery_Voltage") == pytest.approx(sum(cells), abs=0.002)


def test_pv_follows_the_day() -> None:
    plant = plant_at(local(2024, 6, 21, 0, 0), seed=1, pv_peak_w=6000)
    pv = [num(t, "PV_Power") for t in samples(plant, 86400, 600)]
    night = pv[:18] + pv[-12:]  # 00:10-03:00 and 22:10-24:00
    assert set(night) == {0}
    assert max(pv) > 2000
    assert max(pv) <= 6000
    winter = plant_at(local(2024, 12, 21, 0, 0), seed=1, pv_peak_w=6000)
    pv_winter = [num(t, "PV_Power") for t in samples(winter, 86400, 600)]
    assert sum(pv_winter) < sum(pv) / 2
    assert pv_winter[:45] == [0] * 45  # nothing before 07:40 GMT in December


# --- controls --------------------------------------------------------------------------------


async def test_charge_slot_charges_from_the_grid_to_the_target_then_holds() -> None:
    plant = plant_at(local(2024, 1, 10, 1, 0), soc=30)
    async with serve(plant) as conn:
        for register, value in ((94, 100), (95, 500), (96, 1), (20, 1), (116, 80)):
            assert (await conn.write(0x11, register, value)).value == value
        seen_charging = held = 0
        for _ in range(4 * 12):
            plant.advance(300)
            ir = await inverter_page(conn)
            soc, battery, grid, load = ir[59], s16(ir[52]), s16(ir[30]), ir[42]
            assert soc <= 80
            if soc < 79:
                assert battery == -3600
                assert grid == -(3600 + load)
                seen_charging += 1
            elif soc == 80 and battery == 0:
                assert grid == -load  # the battery holds: the house runs from the grid
                held += 1
        assert seen_charging > 5
        assert held > 5


def test_charge_slot_wraps_midnight_and_per_slot_target_applies() -> None:
    plant = plant_at(local(2024, 1, 10, 22, 0), soc=30)
    write(plant, (94, 2230), (95, 130), (96, 1), (20, 0), (242, 60))
    plant.advance(1200)  # 22:20: before the slot
    assert num(plant.truth(), "Charge_Power") == 0
    plant.advance(1800)  # 22:50
    assert num(plant.truth(), "Charge_Power") == 3600
    plant.advance(3600)  # 23:50, then past midnight
    plant.advance(1800)
    t = plant.truth()
    assert t["Invertor_Time"] == wall(2024, 1, 11, 0, 20)
    assert num(t, "SOC") == 60
    assert num(t, "Charge_Power") == 0
    write(plant, (242, 100))
    plant.advance(60)
    assert num(plant.truth(), "Charge_Power") == 3600
    plant.advance(2 * 3600)  # 02:20: slot over
    assert num(plant.truth(), "Charge_Power") == 0


async def test_eco_discharges_to_match_demand_down_to_the_reserve() -> None:
    plant = plant_at(local(2024, 1, 10, 17, 0), soc=30)
    async with serve(plant) as conn:
        await conn.write(0x11, 110, 20)
        matched = floor = 0
        for _ in range(30):
            plant.advance(600)
            ir = await inverter_page(conn)
            soc, battery, grid, load, pv = ir[59], s16(ir[52]), s16(ir[30]), ir[42], ir[18]
            assert pv == 0
            assert soc >= 20
            if soc > 21:
                assert battery == load
                assert grid == 0
                matched += 1
            elif soc == 20 and battery == 0:
                assert grid == -load
                floor += 1
        assert matched >= 2
        assert floor > 10


def test_cutoff_is_a_floor_too() -> None:
    plant = plant_at(local(2024, 1, 10, 17, 0), soc=30)
    write(plant, (110, 4), (114, 25))
    for t in samples(plant, 6 * 3600, 600):
        assert num(t, "SOC") >= 25
    assert num(plant.truth(), "SOC") == 25


async def test_timed_export_discharges_at_the_discharge_rate() -> None:
    plant = plant_at(local(2024, 1, 10, 16, 55), soc=90)
    rate = round(0.10 * 372 * NOMINAL_V)  # HR112 = 10 (C/100) of 372 Ah x 51.2 V
    async with serve(plant) as conn:
        for register, value in ((27, 0), (59, 1), (56, 1700), (57, 1800), (112, 10)):
            await conn.write(0x11, register, value)
        plant.advance(600)
        ir = await inverter_page(conn)
        battery, grid, load = s16(ir[52]), s16(ir[30]), ir[42]
        assert battery == rate
        assert grid == rate - load  # the excess is exported
        assert s16(ir[24]) == rate
        plant.advance(3600)  # 18:05: after the slot the battery stores (timed mode)
        ir = await inverter_page(conn)
        assert s16(ir[52]) == 0
        assert s16(ir[30]) == -ir[42]
        # Timed demand (eco on) inside the slot matches the house instead of exporting.
        await conn.write(0x11, 27, 1)
        await conn.write(0x11, 57, 1900)
        plant.advance(60)
        ir = await inverter_page(conn)
        assert s16(ir[52]) == min(ir[42], rate)
        assert s16(ir[30]) == min(0, rate - ir[42])


async def test_pause_mode_pauses_inside_its_slot() -> None:
    plant = plant_at(local(2024, 1, 10, 18, 0), soc=60)
    async with serve(plant) as conn:
        plant.advance(60)
        assert s16((await inverter_page(conn))[52]) > 0  # eco: discharging into the house
        await conn.write(0x11, 318, 2)  # pause discharge; no pause slot: all day
        plant.advance(60)
        ir = await inverter_page(conn)
        assert s16(ir[52]) == 0
        assert s16(ir[30]) == -ir[42]
        await conn.write(0x11, 319, 2000)  # a slot that does not cover 18:02
        await conn.write(0x11, 320, 2200)
        plant.advance(60)
        assert s16((await inverter_page(conn))[52]) > 0
        plant.advance(2 * 3600)  # 20:03: inside the slot
        assert s16((await inverter_page(conn))[52]) == 0


def test_pause_charge_exports_the_surplus() -> None:
    plant = plant_at(local(2024, 6, 21, 13, 0), seed=1, soc=40)
    plant.advance(60)
    t = plant.truth()
    assert num(t, "Charge_Power") > 0
    assert num(t, "Export_Power") == 0
    write(plant, (318, 1))
    plant.advance(60)
    t = plant.truth()
    assert num(t, "Charge_Power") == 0
    assert num(t, "Export_Power") == num(t, "PV_Power") - num(t, "Load_Power")


def test_charge_rate_zero_stops_charging_and_rates_cap_power() -> None:
    plant = plant_at(local(2024, 6, 21, 12, 30), seed=1, soc=40)
    plant.advance(60)
    t = plant.truth()
    surplus = num(t, "PV_Power") - num(t, "Load_Power")
    assert surplus > 1000
    assert num(t, "Charge_Power") == pytest.approx(min(surplus, 3600), abs=2)
    write(plant, (111, 0))
    plant.advance(60)
    t = plant.truth()
    assert num(t, "Charge_Power") == 0
    assert t["Battery_Charge_Rate"] == 0
    assert num(t, "Export_Power") == num(t, "PV_Power") - num(t, "Load_Power")
    write(plant, (111, 5))
    plant.advance(60)
    t = plant.truth()
    cap = round(0.05 * 372 * NOMINAL_V)
    assert t["Battery_Charge_Rate"] == cap
    surplus = num(t, "PV_Power") - num(t, "Load_Power")
    assert num(t, "Charge_Power") == pytest.approx(min(cap, surplus), abs=2)
    # Discharge: eco in the evening with HR112 = 2 caps what the battery gives the house.
    evening = plant_at(local(2024, 1, 10, 18, 0), soc=60)
    write(evening, (112, 2))
    evening.advance(60)
    t = evening.truth()
    cap = round(0.02 * 372 * NOMINAL_V)
    assert num(t, "Discharge_Power") == cap < num(t, "Load_Power")
    assert num(t, "Import_Power") == num(t, "Load_Power") - cap


def test_export_limit_and_active_power_rate_curtail() -> None:
    plant = plant_at(local(2024, 6, 21, 13, 0), seed=1, soc=100)
    plant.advance(60)
    t = plant.truth()
    assert num(t, "Export_Power") > 1500
    write(plant, (26, 500))
    plant.advance(60)
    t = plant.truth()
    assert num(t, "Export_Power") == 500
    assert num(t, "PV_Power") == num(t, "Load_Power") + 500
    write(plant, (26, 6000), (50, 20))
    plant.advance(60)
    assert num(plant.truth(), "Invertor_Power") == 1000


async def test_writing_the_date_and_time_moves_the_inverter_clock() -> None:
    plant = plant_at(local(2024, 1, 10, 12, 0, 30), soc=50)
    async with serve(plant) as conn:
        assert (await conn.write(0x11, 38, 5)).value == 5
        hr = await inverter_page(conn, HR)
        assert hr[35:41] == [24, 1, 10, 5, 0, 30]
        plant.advance(95)
        hr = await inverter_page(conn, HR)
        assert hr[35:41] == [24, 1, 10, 5, 2, 5]
        # The inverter's clock, not the house's, runs the schedule: a 05:00-06:00 slot
        # charges now although it is past noon in the plant's time zone.
        for register, value in ((94, 500), (95, 600), (96, 1)):
            await conn.write(0x11, register, value)
        plant.advance(600)
        assert s16((await inverter_page(conn))[52]) == -3600
        # Moving the date starts a new day for the "today" counters.
        assert (await inverter_page(conn))[26] > 0  # import today
        await conn.write(0x11, 37, 11)
        ir = await inverter_page(conn)
        assert ir[26] == 0
        assert (await inverter_page(conn, HR))[35:38] == [24, 1, 11]
        # Year, month, day written in turn land on a valid date; a bad day is refused.
        for register, value in ((35, 23), (36, 2)):
            await conn.write(0x11, register, value)
        with pytest.raises(DeviceErrorResponse):
            await conn.write(0x11, 37, 29)  # 2023 is no leap year
        await conn.write(0x11, 37, 28)
        assert (await inverter_page(conn, HR))[35:38] == [23, 2, 28]
    clock = plant.truth()["Invertor_Time"]
    assert isinstance(clock, datetime)
    assert clock.date() == wall(2023, 2, 28).date()
    assert plant.now().date() == wall(2024, 1, 10).date()


async def test_reboot_is_recorded_and_reads_back_zero() -> None:
    plant = plant_at(local(2024, 1, 10, 12, 0))
    async with serve(plant) as conn:
        assert (await conn.write(0x11, 163, 100)).value == 0
        assert plant.reboots == [plant.now()]
        assert (await inverter_page(conn, HR, 120))[163 - 120] == 0
        for value in (1, 2, 101, 200):
            with pytest.raises(DeviceErrorResponse):
                await conn.write(0x11, 163, value)
    assert len(plant.reboots) == 1
    kinds = [(e.kind, e.value) for e in plant.events if e.register == 163]
    assert kinds == [("reboot", 100), ("write", 100)] + [("refused", v) for v in (1, 2, 101, 200)]


async def test_refused_writes_leave_every_register_untouched() -> None:
    plant = plant_at(local(2024, 4, 30, 12, 0))
    bad = [
        (110, 101), (116, 150), (114, 101), (94, 1260), (95, 2400), (243, 2500), (96, 2),
        (27, 2), (111, 101), (112, 500), (318, 4), (319, 2460), (36, 13), (36, 0), (37, 31),
        (37, 0), (38, 24), (39, 60), (40, 60), (29, 2), (163, 1), (0, 0x2001), (13, 0x4142),
        (31, 0), (32, 1), (55, 100), (240, 1), (270, 1), (300, 1), (242, 101),
    ]  # fmt: skip
    async with serve(plant) as conn:
        before = await read_all(conn)
        for register, value in bad:
            with pytest.raises(DeviceErrorResponse):
                await conn.write(0x11, register, value)
        with pytest.raises(DeviceErrorResponse):
            await conn.write(0x32, 110, 50)  # batteries take no writes
        after = await read_all(conn)
    assert after == before
    assert [e.kind for e in plant.events] == ["refused"] * len(bad)


async def test_calibration_runs_its_stages() -> None:
    plant = plant_at(local(2024, 1, 10, 12, 0), soc=15)
    async with serve(plant) as conn:
        with pytest.raises(DeviceErrorResponse):
            await conn.write(0x11, 29, 2)
        await conn.write(0x11, 29, 1)
        plant.advance(60)
        hr = await inverter_page(conn, HR)
        ir = await inverter_page(conn)
        assert hr[29] == 1
        assert s16(ir[52]) == 3600
        stages: list[int] = []
        socs: list[int] = []
        for _ in range(12 * 12):
            plant.advance(300)
            stage = (await inverter_page(conn, HR))[29]
            socs.append((await inverter_page(conn))[59])
            if not stages or stages[-1] != stage:
                stages.append(stage)
        # Discharge to empty, set the lower point, charge to full, set the upper point, balance,
        # then back to normal operation.
        assert stages[0] in (1, 2, 3)
        assert stages[-1] == 0
        assert {3, 5} <= set(stages)
        assert min(socs) == 0
        assert max(socs) == 100
        await conn.write(0x11, 29, 3)  # charge only, then stop it
        await conn.write(0x11, 29, 0)
        plant.advance(60)
        assert (await inverter_page(conn, HR))[29] == 0


# --- truth -------------------------------------------------------------------------------------


def _scenario(name: str) -> Plant:
    if name == "summer-noon":
        return plant_at(local(2024, 6, 21, 13, 0), seed=3, soc=55)
    if name == "night-charge":
        plant = plant_at(local(2024, 1, 10, 1, 0), seed=3, soc=30)
        write(plant, (94, 100), (95, 500), (96, 1), (20, 1), (116, 90), (319, 2200))
        return plant
    plant = plant_at(local(2024, 3, 10, 17, 0), seed=3, soc=95, batteries=3)
    write(plant, (27, 0), (59, 1), (276, 1700), (277, 2100), (112, 15), (318, 1))
    return plant


@pytest.mark.parametrize("scenario", ["summer-noon", "night-charge", "timed-export"])
async def test_truth_agrees_with_registers_decoded_by_hand(scenario: str) -> None:
    plant = _scenario(scenario)
    plant.advance(3 * 3600 + 17)
    async with serve(plant) as conn:
        regs = await read_all(conn)
    truth = plant.truth()
    inverter, packs = decode(regs)
    model_only = {"Load_Energy_Today_kWh", "Load_Energy_Total_kWh"}
    assert set(truth.values) - model_only == set(inverter)
    for name, value in inverter.items():
        assert truth[name] == value, name
    assert len(truth.batteries) == len(packs) == len(plant.battery_serials)
    for mine, theirs in zip(truth.batteries, packs, strict=True):
        assert dict(mine) == theirs
    assert truth.time == plant.now()
    assert truth.time.tzinfo is not None
    if scenario == "summer-noon":
        assert num(truth, "PV_Power") > 0
        assert num(truth, "PV_Current_String_1") > 0
    elif scenario == "night-charge":
        assert num(truth, "Grid_Power") < 0
        assert num(truth, "Battery_Power") == -3600
    else:
        assert num(truth, "Grid_Power") > 0
        assert num(truth, "Battery_Power") > 0


# --- speed, determinism, independence ----------------------------------------------------------


def test_simulated_day_at_high_speed_finishes_quickly() -> None:
    plant = plant_at(local(2024, 6, 1, 0, 0), seed=9)
    cpu = time.process_time()
    plant.advance(86400)
    used = time.process_time() - cpu
    assert plant.truth()["Invertor_Time"] == wall(2024, 6, 2, 0, 0)
    assert used < 30  # ~0.1 s normally; the bound only catches a pathological slowdown


def test_clock_speed_freeze_and_advance() -> None:
    real = [1000.0]
    start = datetime(2024, 6, 21, 12, 0, tzinfo=LONDON)
    clock = SimClock(start, 3600, monotonic=lambda: real[0])
    real[0] += 2
    assert clock.now() == start + timedelta(hours=2)
    clock.speed = 0
    real[0] += 100
    assert clock.now() == start + timedelta(hours=2)
    clock.advance(30)
    assert clock.now() == start + timedelta(hours=2, seconds=30)
    clock.speed = 1
    real[0] += 5
    assert clock.now() == start + timedelta(hours=2, seconds=35)
    naive = SimClock(datetime(2024, 1, 1, 0, 0), 0)  # noqa: DTZ001
    assert naive.now().tzinfo == LONDON
    assert naive.now().hour == 0
    with pytest.raises(ValueError, match="speed"):
        SimClock(start, -1)
    with pytest.raises(ValueError, match="advance"):
        clock.advance(-5)


def test_plant_follows_its_clock_at_speed() -> None:
    real = [0.0]
    plant = build_default_plant(
        speed=3600, start=local(2024, 6, 21, 6, 0), seed=1, monotonic=lambda: real[0]
    )
    real[0] += 6  # six simulated hours
    plant.sync()
    assert plant.truth()["Invertor_Time"] == wall(2024, 6, 21, 12, 0)
    assert num(plant.truth(), "PV_Energy_Today_kWh") > 5


def test_same_seed_same_operations_same_plant_however_it_is_stepped() -> None:
    start = wall(2024, 6, 21, 0, 0)
    a, b = plant_at(start, seed=11), plant_at(start, seed=11)
    for plant in (a, b):
        write(plant, (94, 200), (95, 400), (96, 1), (20, 1), (116, 70))
    a.advance(6 * 3600)
    for _ in range(6 * 360):
        b.advance(10)
    assert a.registers() == b.registers()
    assert a.truth() == b.truth()


def test_two_plants_in_one_process_are_independent() -> None:
    start = wall(2024, 6, 21, 12, 0)
    a, b = plant_at(start, seed=1), plant_at(start, seed=2)
    assert a.serial != b.serial
    assert a.store is not b.store
    write(a, (27, 0), (110, 50))
    assert b.holding(27) == 1
    assert b.holding(110) == 4
    a.advance(3600)
    assert b.now() == start.replace(tzinfo=LONDON)
    b.advance(3600)
    loads = [num(p.truth(), "Load_Power") for p in (a, b)]
    pv = [num(p.truth(), "PV_Power") for p in (a, b)]
    assert loads[0] != loads[1] or pv[0] != pv[1]
    assert a.holding(27) == 0
    assert b.holding(27) == 1


async def test_two_plants_served_side_by_side() -> None:
    start = wall(2024, 6, 21, 12, 0)
    a, b = plant_at(start, seed=1), plant_at(start, seed=2, batteries=1)
    async with serve(a) as conn_a, serve(b) as conn_b:
        await conn_a.write(0x11, 116, 55)
        hr_a = await inverter_page(conn_a, HR, 60)
        hr_b = await inverter_page(conn_b, HR, 60)
        assert hr_a[116 - 60] == 55
        assert hr_b[116 - 60] == 100
        a.advance(3600)
        assert (await inverter_page(conn_a, HR))[38] == 13
        assert (await inverter_page(conn_b, HR))[38] == 12
        assert (await conn_b.read(0x11, HR, 0, 60)).serial == b.serial.encode()


def test_attach_needs_the_plants_own_store() -> None:
    from givtcp_async.simulator.server import DongleSimulator
    from givtcp_async.simulator.store import RegisterStore

    plant = plant_at(local(2024, 6, 21, 12, 0))
    with pytest.raises(ValueError, match="store"):
        plant.attach(DongleSimulator(RegisterStore()))
    sim = DongleSimulator(plant.store)
    plant.attach(sim)
    plant.attach(sim)
    assert sim.pre_answer_hooks == [plant.sync]
    plant.detach(sim)
    assert sim.pre_answer_hooks == []


def test_bad_plant_options_are_refused() -> None:
    bad: list[dict[str, Any]] = [
        {"batteries": 0},
        {"batteries": 7},
        {"soc": 101},
        {"step_seconds": 0},
        {"speed": -1},
        {"serial": "sa123"},
    ]
    for kwargs in bad:
        option = next(iter(kwargs))
        with pytest.raises(ValueError, match=option):
            PlantConfig(**kwargs)


# --- command line --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batteries", "7"], "--batteries"),
        (["--batteries", "0"], "--batteries"),
        (["--start", "yesterday"], "--start"),
        (["--speed", "-1"], "--speed"),
        (["--speed", "nan"], "--speed"),
        (["--capture", "FILE", "--seed", "3"], "--seed"),
    ],
)
def test_simulate_refuses_bad_plant_options(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = next((CAPTURES / "hybrid_2_bat_a").glob("*.jsonl"))
    argv = ["simulate", "--port", "0", *[str(capture) if a == "FILE" else a for a in args]]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "listening" not in captured.out


async def test_simulate_serves_the_default_plant_without_a_capture() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "givtcp_async", "simulate", "--port", "0", "--speed", "0",
        "--start", "2024-06-21T12:00:00", "--batteries", "3", "--seed", "7",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        listening = None
        async with asyncio.timeout(30):
            while listening is None:
                line = await proc.stdout.readline()
                assert line, "simulate exited before listening"
                with contextlib.suppress(ValueError):
                    listening = json.loads(line)["listening"]
        port = int(listening.rsplit(":", 1)[1])
        settings = ConnectionSettings(host="127.0.0.1", port=port, pacing=0.0)
        async with DongleConnection(settings) as conn:
            await conn.wait_connected(5)
            hr = await inverter_page(conn, HR)
            assert hr[0] == 0x2001
            assert hr[55] == 3 * 186
            assert hr[35:41] == [24, 6, 21, 12, 0, 0]  # frozen clock
            assert text(hr[13:18]) == "SA2347G007"
            assert (await conn.read(0x34, IR, 60, 60)).values[50] != 0
            assert (await conn.read(0x35, IR, 60, 60)).values == (0,) * 60
            assert (await conn.write(0x11, 116, 80)).value == 80
            with pytest.raises(DeviceErrorResponse):
                await conn.write(0x11, 116, 101)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            code = await proc.wait()
    assert code == 0
