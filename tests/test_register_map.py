"""The register map against real captures, with values worked out by hand from SPEC §4.

Each plant's registers come from its capture (the last read of each register wins, as in
:meth:`RegisterStore.from_capture`). On Gen1 and AC-coupled units the capture holds some pages
only at the facade addresses 0x31/0x32 (SPEC §2.5), which show the same register file, so those
pages are merged into the inverter's (except IR60-119, the battery page at 0x32).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from givtcp_async.protocol.capture import load_capture
from givtcp_async.protocol.frames import FunctionCode
from givtcp_async.registers import (
    ALL_FIELDS,
    ALL_INVERTER_FIELDS,
    BATTERY_FIELDS,
    DERIVED,
    Block,
    Cadence,
    battery_blocks,
    candidate_blocks,
    decode_field,
    derived_for,
    fields_for,
    meter_blocks,
    probe_blocks,
    read_plan,
)
from givtcp_async.registers.decode import apply_scale, hhmm, scale_decimals
from givtcp_async.registers.models import Model, detect_model
from givtcp_async.registers.plan import covering, source_of
from givtcp_async.registers.schema import NOW, Bank, Derived, Enc, Family, Field, Kind, Source
from givtcp_async.simulator.store import RegisterStore
from tests.conftest import CAPTURES, VECTORS

HR = int(FunctionCode.READ_HOLDING)
IR = int(FunctionCode.READ_INPUT)

GEN1 = CAPTURES / "hybrid_2_bat_a/hybrid_gen1_arm449_0x11_poll_10min.jsonl"
GEN2 = CAPTURES / "hybrid_gen2_1_bat_a/hybrid_gen2_arm920_60s.jsonl"
AC = CAPTURES / "ems_2_inv_3_bat_a/ac_arm282_1x_givbat512gen3_30min.jsonl"
EMS = CAPTURES / "ems_2_inv_3_bat_a/ems_arm1036_30min.jsonl"
AIO = CAPTURES / "aio_a/aio_arm612_5min.jsonl"
HV_GEN3 = CAPTURES / "hybrid_hv_gen3_a/givhy80g3hv_hass295_120s.jsonl"
THREE_PHASE = CAPTURES / "three_phase_hv_a/giv3hy11_da011_detect_10min.jsonl"
THREE_PHASE_HASS = CAPTURES / "three_phase_hv_a/giv3hy11_hass174_180s.jsonl"
GATEWAY = CAPTURES / "gateway_2aio_a/gateway_gaaa0014_10min_daylight.jsonl"

# The HV Gen3 and the second three-phase capture never read HR0 (their pollers read HR240/1060/
# 1120 only). The HV Gen3 unit is a GIV-HY8.0-G3-HV (file name; "FG" serial prefix = HV Gen3,
# SPEC §4.2), i.e. DTC 0x8102 (8 kW); the three-phase unit's DTC 0x4004 is in its other capture.
ASSUMED_DTC = {HV_GEN3: 0x8102, THREE_PHASE_HASS: 0x4004}


@dataclass(frozen=True)
class Plant:
    store: RegisterStore
    holding: Mapping[int, int]
    inputs: Mapping[int, int]
    model: Model

    def getter(self, bank: Bank) -> Callable[[int], int | None]:
        return (self.holding if bank is Bank.HOLDING else self.inputs).get

    def device(self, address: int) -> Callable[[int], int | None]:
        dev = self.store.devices[address]
        return dev.banks.get(IR, {}).get


@cache
def plant(path: Path) -> Plant:
    store = RegisterStore.from_capture(load_capture(path))
    banks: dict[int, dict[int, int]] = {HR: {}, IR: {}}
    for address in (0x32, 0x31, 0x11):  # 0x11 last: the canonical address wins
        dev = store.devices.get(address)
        if dev is None:
            continue
        for function, bank in dev.banks.items():
            for register, value in bank.items():
                if address != 0x11 and function == IR and 60 <= register < 120:
                    continue
                banks.setdefault(function, {})[register] = value
    detection = dict(banks[HR])
    detection.setdefault(0, ASSUMED_DTC.get(path, 0))
    return Plant(store, banks[HR], banks[IR], detect_model(detection))


def decoded(p: Plant, source: Source = Source.INVERTER, address: int = 0x11) -> dict[str, Any]:
    fields = fields_for(p.model, source=source)
    if source is Source.INVERTER:
        return {f.name: decode_field(f, p.getter(f.bank)) for f in fields}
    get = p.device(address)
    return {f.name: decode_field(f, get) for f in fields}


def derived(p: Plant) -> dict[str, Any]:
    fields = fields_for(p.model)
    values = decoded(p)
    out: dict[str, Any] = {}
    for d in derived_for(p.model, fields):
        if all(values.get(n) is not None for n in d.inputs):
            out[d.name] = d.compute({n: values[n] for n in d.inputs}, p.model)
    return out


def naive(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    """A zone-less datetime, as the inverter clock decodes."""
    return datetime(year, month, day, hour, minute, second)  # noqa: DTZ001


def bounds_of(spec: Field | Derived, model: Model) -> tuple[float, float] | None:
    b = spec.bounds
    return b(model) if callable(b) else b


def out_of_bounds(spec: Field | Derived, value: Any, model: Model) -> bool:
    b = bounds_of(spec, model)
    if b is None or value is None or isinstance(value, bool | str | datetime):
        return False
    return not b[0] <= value <= b[1]


# --- detection -----------------------------------------------------------------------------------

ALL_CAPTURES = sorted(CAPTURES.glob("*/*.jsonl"))


@pytest.mark.parametrize(
    ("path", "family", "dtc", "arm"),
    [
        (GEN1, Family.HYBRID_GEN1, 0x2001, 449),
        (GEN2, Family.HYBRID_GEN2, 0x2003, 920),
        (AC, Family.AC, 0x3001, 282),
        (AIO, Family.AIO, 0x8001, 612),
        (HV_GEN3, Family.HV_GEN3, 0x8102, 0),
        (THREE_PHASE, Family.THREE_PHASE, 0x4004, 0),
        (THREE_PHASE_HASS, Family.THREE_PHASE, 0x4004, 0),
        (EMS, Family.EMS, 0x5001, 1036),
        (GATEWAY, Family.GATEWAY, 0x7001, 14),
    ],
)
def test_detect_every_plant(path: Path, family: Family, dtc: int, arm: int) -> None:
    model = plant(path).model
    assert (model.family, model.device_type_code, model.arm_firmware) == (family, dtc, arm)


def test_every_capture_is_covered() -> None:
    covered = {GEN1, GEN2, AC, AIO, HV_GEN3, THREE_PHASE, THREE_PHASE_HASS, EMS, GATEWAY}
    assert set(ALL_CAPTURES) == covered


# --- golden values: inverter -----------------------------------------------------------------


def test_gen1_golden() -> None:
    p = plant(GEN1)
    v = decoded(p)
    assert v["Grid_Voltage"] == 243.5  # IR5 = 0x0983 = 2435 -> 243.5 V
    assert v["Grid_Power"] == -721  # IR30 = 0xfd2f = 64815 - 65536 = -721 W (import)
    assert v["Battery_Power"] == -937  # IR52 = 0xfc57 = 64599 - 65536 = -937 W (charging)
    assert v["SOC"] == 83  # IR59 = 0x0053
    assert v["Grid_Frequency"] == 50.11  # IR13 = 0x1393 = 5011 -> 50.11 Hz
    # IR11/12 = 0x0003, 0x3a07 -> 3 * 65536 + 14855 = 211463 -> 21146.3 kWh
    assert v["PV_Energy_Total_kWh"] == 21146.3
    assert v["Battery_Discharge_Energy_Total_kWh"] == 1571.1  # IR180 = 0x3d5f = 15711
    assert v["Battery_Charge_Energy_Total_kWh"] == 1843.0  # IR181 = 0x47fe = 18430
    assert v["Invertor_Temperature"] == 48.1  # IR41 = 0x01e1 = 481
    assert v["Invertor_Serial_Number"] == "SA2114G000"  # HR13-17 = 0x5341 0x3231 ... "SA21..."
    assert v["Device_Type_Code"] == "2001"  # HR0 = 0x2001
    assert v["Charge_start_time_slot_1"] == "23:30:00"  # HR94 = 0x091a = 2330
    assert v["Charge_end_time_slot_1"] == "05:30:00"  # HR95 = 0x0212 = 530
    assert v["Invertor_Time"] == naive(2026, 6, 5, 12, 19, 53)  # HR35-40 = 26,6,5,12,19,53
    assert v["Eco_Mode"] == "enable"  # HR27 = 1
    assert v["Enable_Discharge_Schedule"] == "disable"  # HR59 = 0
    assert v["Target_SOC"] == 29  # HR116 = 0x001d
    assert v["Certification"] == "G98"  # HR2 = 0x0832: high byte 8 = G98
    assert v["Meter_Type"] == "EM115"  # HR47 = 1
    assert "Charge_start_time_slot_2" not in v  # Gen1: one charge slot (SPEC §7 #4)
    assert "Battery_pause_mode" not in v  # no HR300 page on DC hybrids
    d = derived(p)
    assert d["PV_Power"] == 4921  # IR18 + IR20 = 2565 + 2356
    assert d["Import_Power"] == 721
    assert d["Export_Power"] == 0
    assert d["Charge_Power"] == 937
    assert d["Discharge_Power"] == 0
    assert d["Solar_to_House"] == 4092  # min(PV 4921, load IR42 4092)
    assert d["Solar_to_Battery"] == 829  # 4921 - 4092 - export 0
    assert d["Grid_to_Battery"] == 108  # import > 0: charge 937 - (4921 - 4092)
    assert d["Grid_to_House"] == 0  # max(721 - 937, 0)
    assert d["Battery_Capacity_kWh"] == 17.72  # HR55 = 346 Ah x 51.2 V = 17.7152 kWh
    assert d["SOC_kWh"] == 14.71  # 83 % of 17.72 (rounded first, as GivTCP) = 14.7076
    # HR111 = 50 -> 50/100 x 17715.2 Wh = 8857.6 W, capped at Gen1's 2600 W (SPEC §4.2)
    assert d["Battery_Charge_Rate"] == 2600
    assert d["Mode"] == "Eco"  # HR27 = 1, HR59 = 0, HR110 = 4
    # (IR44 15.8 - IR35 0.0) - (IR25 5.6 - IR26 1.0) = 11.2 kWh
    assert d["Load_Energy_Today_kWh"] == 11.2
    assert d["Invertor_Firmware"] == "D0.449-A0.449"
    assert d["Invertor_Max_Inv_Rate"] == 5000
    assert d["Invertor_Max_Bat_Rate"] == 2600


def test_gen2_golden() -> None:
    p = plant(GEN2)
    v = decoded(p)
    assert v["Grid_Voltage"] == 244.5  # IR5 = 0x098d = 2445 (last frame; SPEC's is 2443)
    # IR6/7 = 0x0001, 0x20f9 = 73977 -> 7397.7 kWh
    assert v["Battery_Throughput_Total_kWh"] == 7397.7
    assert v["PV_Energy_Total_kWh"] == 6439.9  # IR11/12 = 0x0000, 0xfb8f = 64399
    assert v["PV1_Energy_Today_kWh"] == 12.2  # IR17 = 122
    assert v["Battery_Power"] == 441  # IR52 = 0x01b9: discharging
    assert v["Battery_Current"] == 8.18  # IR51 = 0x0332 = 818 -> 8.18 A
    assert v["Battery_Voltage"] == 52.39  # IR50 = 0x1477 = 5239
    assert "Battery_Discharge_Energy_Total_kWh" not in v  # IR180/181 are Gen1-only
    d = derived(p)
    # HR111 = 16 -> 16/100 x 186 Ah x 51.2 V = 1523.7 W; HR112 = 50 -> 4761.6 capped at 3600
    assert d["Battery_Charge_Rate"] == 1524
    assert d["Battery_Discharge_Rate"] == 3600
    assert d["Battery_to_House"] == 441  # discharge 441 - export 0
    # discharging at 441 W from 46 % to the 4 % reserve: 9.52 kWh x 0.42 / 0.441 kW x 60
    assert d["Discharge_Time_Remaining"] == 544


def test_ac_golden() -> None:
    p = plant(AC)
    v = decoded(p)
    assert v["Invertor_Serial_Number"] == "CE2231G000"
    assert v["Battery_Charge_Rate_AC"] == 100  # HR313
    assert v["EPS_Enable"] == "enable"  # HR317 = 1
    assert v["Battery_pause_mode"] == "Disabled"  # HR318 = 0
    assert v["Discharge_end_time_slot_1"] == "23:59:00"  # HR57 = 0x0937 = 2359
    assert v["Invertor_Temperature"] == 42.0  # IR41 = 0x01a4 = 420
    assert v["SOC"] == 39  # IR59
    assert "PV_Voltage_String_1" not in v  # IR1 echoes the AC voltage on AC units
    assert derived(p)["Mode"] == "Export (Paused)"  # HR27 = 0, HR59 = 0
    pack = decoded(p, Source.BATTERY, 0x32)
    assert pack["Battery_Serial_Number"] == "AC0000G000"  # IR110-114
    assert pack["Battery_Charge_Energy_Total_kWh"] == 3161.3  # IR106 = 0x7b7d = 31613
    assert pack["Battery_Discharge_Energy_Total_kWh"] == 2528.5  # IR105 = 0x62c5 = 25285


def test_aio_golden() -> None:
    p = plant(AIO)
    v = decoded(p)
    assert v["Battery_Voltage"] == 313.14  # IR50 = 0x7a52 = 31314 -> 313.14 V (HV stack)
    assert v["Charge_end_time_slot_2"] == "22:40:00"  # HR244 = 0x08c0 = 2240
    assert v["Battery_pause_start_time_slot"] == "13:00:00"  # HR319 = 1300
    assert v["Battery_pause_end_time_slot"] == "09:00:00"  # HR320 = 900
    assert v["Discharge_Target_SOC_10"] == 4  # HR299
    assert derived(p)["Battery_Capacity_kWh"] == 15.96  # HR55 = 52 Ah x 307 V = 15.964 kWh
    bcu = decoded(p, Source.BCU, 0x70)
    assert bcu["Stack_Voltage"] == 314.9  # IR73 = 0x0c4d = 3149
    assert bcu["Stack_Cell_Count"] == 96  # IR67 = 0x60: 4 modules x 24 cells
    bmu = decoded(p, Source.BMU, 0x50)
    assert bmu["Battery_Serial_Number"] == "HX0000G000"
    assert bmu["Battery_Cell_1_Voltage"] == 3.28  # IR60 = 0x0cd0 = 3280 mV
    assert bmu["Battery_Cell_1_Temperature"] == 20.2  # IR90 = 0x00ca = 202
    assert "Battery_Cell_13_Temperature" not in bmu  # the All-in-One has 12 sensors a module
    assert decoded(p, Source.BAMS, 0xA0)["Module_Count"] == 4  # IR62


def test_hv_gen3_golden() -> None:
    p = plant(HV_GEN3)
    v = decoded(p)
    assert v["Battery_Voltage"] == 240.07  # IR50 = 0x5dc7 = 24007
    assert v["PV_Power_String_2"] == 4531  # IR20 = 0x11b3
    assert v["Grid_Power"] == 4458  # IR30 = 0x116a: exporting
    assert v["Charge_Target_SOC_1"] == 100  # HR242 = 0x64
    assert v["Discharge_Target_SOC_1"] == 4  # HR272
    meter = decoded(p, Source.METER, 0x01)
    assert meter["Phase_1_Power_Factor"] == 0.998  # IR80 = 0x4e0c = 19980 -> 1.998 - 1
    assert meter["Phase_1_Current"] == 18.31  # IR63 = 0x0727 = 1831 -> 18.31 A
    bmu = decoded(p, Source.BMU, 0x50)
    assert bmu["Battery_Cell_24_Voltage"] == 3.336  # IR83 = 0x0d08 = 3336
    assert bmu["Battery_Cell_24_Temperature"] == 30.0  # IR113 = 0x012c = 300


def test_three_phase_golden() -> None:
    p = plant(THREE_PHASE)
    v = decoded(p)
    assert v["Invertor_Serial_Number"] == "TC2337G000"
    assert v["Invertor_Time"] == naive(2026, 7, 9, 21, 20, 29)  # HR35-40 = 26,7,9,21,20,29
    assert v["Target_SOC"] == 100  # HR1111
    assert v["Charge_start_time_slot_1"] == "01:00:00"  # HR1113 = 100
    assert v["Battery_Power_Reserve"] == 5  # HR1109
    assert v["Real_Time_Control"] == "enable"  # HR1005 = 1
    meter = decoded(p, Source.METER, 0x01)
    assert meter["Phase_2_Power"] == 537  # IR69 = 0x0219
    assert meter["Phase_2_Power_Factor"] == -0.723  # IR81 = 2770 -> 0.277 - 1
    assert meter["Phase_2_Current"] == 3.2  # IR64 = 32 -> 3.2 A (x 231.2 V = 740 VA ~ IR77)
    assert decoded(p, Source.BCU, 0x70)["Stack_Voltage"] == 471.8  # IR73 = 0x126e = 4718


def test_ems_golden() -> None:
    p = plant(EMS)
    v = decoded(p)
    assert v["Invertor_Serial_Number"] == "EMS2522000"
    assert v["EMS_Plant_Enable"] == "enable"  # HR2040 = 1
    assert v["Discharge_start_time_slot_1"] == "19:00:00"  # HR2044 = 0x076c = 1900
    assert v["Discharge_end_time_slot_1"] == "23:59:00"  # HR2045 = 2359
    assert v["Charge_Target_SOC_1"] == 100  # HR2055
    assert v["Export_Target_SOC_3"] == 4  # HR2070
    assert v["Export_Limit"] == 9500  # HR2071 = 0x251c
    assert v["Inverter_Count"] == 2  # IR2044 (the peer's reading; issue 12)
    assert v["Meter_Count"] == 2  # IR2041
    assert v["Grid_Power"] == -94  # IR2089 (the EMS's grid meter), not the single-phase IR30
    assert "Invertor_Power" not in v  # the EMS's IR0-59 are not mapped
    meter = decoded(p, Source.METER, 0x01)
    assert meter["Phase_1_Power_Factor"] == -0.0866  # IR80 = 0xfc9e = -866 (signed / 10000)
    assert meter["Phase_1_Current"] == 2.9  # IR63 = 29 -> 2.9 A (x 241.7 V = 701 VA)


def test_gateway_golden() -> None:
    p = plant(GATEWAY)
    v = decoded(p)
    assert v["Invertor_Serial_Number"] == "GW2412G000"
    assert v["Gateway_Software_Code"] == "GAAA"  # IR1600-1601 = 0x4741 0x4141
    assert derived(p)["Gateway_Software_Version"] == "GAAA0014"  # IR1602-1603 = 0, 0x0104
    assert v["AIO_1_Serial_Number"] == "CH2414G000"  # IR1841-1845
    assert v["AIO_2_Serial_Number"] == "CH2542G000"  # IR1846-1850
    assert v["Discharge_start_time_slot_1"] == "22:35:00"  # HR56 = 0x08bb = 2235
    assert v["Discharge_end_time_slot_1"] == "00:01:00"  # HR57 = 1
    assert v["Battery_Charge_Rate_AC"] == 50  # HR313 = 0x32
    assert v["Battery_pause_mode"] == "PauseCharge"  # HR318 = 1
    assert "Phase_1_Power_Factor" not in decoded(p, Source.METER, 0x01)
    assert decoded(p, Source.METER, 0x01)["Phase_1_Current"] == 3.8  # IR63 = 380 -> 3.80 A


# --- battery pages -----------------------------------------------------------------------------


def test_gen1_two_battery_pages() -> None:
    p = plant(GEN1)
    first = decoded(p, Source.BATTERY, 0x32)
    second = decoded(p, Source.BATTERY, 0x33)
    assert first["Battery_Serial_Number"] == "BG2134G000"  # IR110-114
    assert second["Battery_Serial_Number"] == "DZ2228G000"
    cells = [first[f"Battery_Cell_{n}_Voltage"] for n in range(1, 17)]
    assert len(cells) == 16
    assert first["Battery_Cells"] == 16
    assert cells[0] == 3.366
    assert cells[5] == 3.406
    assert first["Battery_Voltage"] == 54.076  # IR80 = 0xd33c = 54076 mV
    assert abs(sum(cells) - 54.076) < 0.05  # the cells add up to IR80 (54.051 V)
    assert first["Battery_SOC"] == 81
    assert second["Battery_SOC"] == 79
    assert first["Battery_Capacity"] == 189.61  # IR84/85 = 0x0000, 0x4a11 = 18961 -> Ah
    assert first["Battery_Design_Capacity"] == 160.0  # IR86/87 = 16000
    assert second["Battery_Design_Capacity"] == 186.0  # IR86/87 = 0x48a8 = 18600
    assert first["Battery_Cell_1_Temperature"] == 23.3  # IR76 = 0x00e9 = 233
    assert first["Battery_Firmware_Version"] == 3007
    assert second["Battery_Firmware_Version"] == 3009
    # BMS firmware 3007/3009 leaves the pack energy totals at 0: "unsupported", out of bounds,
    # so the gates never publish them (the inverter's IR180/181 serve on Gen1).
    by_name = {f.name: f for f in BATTERY_FIELDS}
    for name in ("Battery_Charge_Energy_Total_kWh", "Battery_Discharge_Energy_Total_kWh"):
        assert first[name] == 0.0
        assert out_of_bounds(by_name[name], first[name], p.model)
    # An absent slot (0x34) has no valid serial.
    assert decoded(p, Source.BATTERY, 0x34)["Battery_Serial_Number"] == ""


# --- whole-map checks on every capture ---------------------------------------------------------

# Known rejections on real captures: pack totals stuck at 0 on BMS fw 3007/3009 (SPEC §7 #19).
KNOWN_BAD = {
    (GEN1, "Battery_Charge_Energy_Total_kWh"),
    (GEN1, "Battery_Discharge_Energy_Total_kWh"),
}


def _present_devices(p: Plant) -> list[tuple[int, Source]]:
    out: list[tuple[int, Source]] = []
    for address, dev in sorted(p.store.devices.items()):
        source = source_of(address)
        if source is Source.INVERTER:
            continue
        bank = dev.banks.get(IR, {})
        if (
            source is Source.BATTERY
            and not str(decode_field(BATTERY_FIELDS[0], bank.get) or "").isalnum()
        ):
            continue  # absent pack slot
        if source is Source.METER and not bank.get(60):
            continue  # absent meter (SPEC §4.6: present <=> IR60 != 0)
        out.append((address, source))
    return out


@pytest.mark.parametrize("path", ALL_CAPTURES, ids=lambda p: p.name)
def test_no_value_out_of_bounds(path: Path) -> None:
    p = plant(path)
    fields = fields_for(p.model)
    values = decoded(p)
    bad = [(n, values[n]) for n in values if out_of_bounds(_spec(fields, n), values[n], p.model)]
    bad += [
        (n, value)
        for n, value in derived(p).items()
        if out_of_bounds(next(d for d in DERIVED if d.name == n and d.applies_to(p.model.family)),
                         value, p.model)
    ]  # fmt: skip
    count = sum(v is not None for v in values.values())
    for address, source in _present_devices(p):
        specs = fields_for(p.model, source=source)
        for name, value in decoded(p, source, address).items():
            count += value is not None
            if (path, name) not in KNOWN_BAD and out_of_bounds(_spec(specs, name), value, p.model):
                bad.append((f"0x{address:02x}/{name}", value))
    assert bad == []
    assert count >= 15  # the capture really decoded


def _spec(fields: list[Field], name: str) -> Field:
    return next(f for f in fields if f.name == name)


@pytest.mark.parametrize("path", ALL_CAPTURES, ids=lambda p: p.name)
def test_every_register_read_decodes(path: Path) -> None:
    """Each applicable field whose registers the capture holds decodes to a value."""
    p = plant(path)
    for f in fields_for(p.model):
        get = p.getter(f.bank)
        if all(get(r) is not None for r in f.registers):
            value = decode_field(f, get)
            unset_time = f.enc is Enc.TIME and get(f.registers[0]) in (60, 2400)
            assert value is not None or unset_time, f.name


# --- structure ---------------------------------------------------------------------------------


def _model(dtc: int, arm: int = 0) -> Model:
    return detect_model({0: dtc, 21: arm, 2: 0})


REPRESENTATIVES: dict[Family, list[Model]] = {
    Family.HYBRID_GEN1: [_model(0x2001, 449)],
    Family.HYBRID_GEN2: [_model(0x2003, 920)],
    Family.HYBRID_GEN3: [_model(0x2001, 302), _model(0x2001, 350)],
    Family.HYBRID_GEN4: [_model(0x8301)],
    Family.HYBRID_POLAR: [_model(0x2101)],
    Family.PV_ONLY: [_model(0x2301)],
    Family.AC: [_model(0x3001, 282)],
    Family.AIO: [_model(0x8001, 612)],
    Family.HV_GEN3: [_model(0x8102)],
    Family.AIO_HYBRID: [_model(0x8201)],
    Family.AIO_COMMERCIAL: [_model(0x4101)],
    Family.THREE_PHASE: [_model(0x4004)],
    Family.AC_THREE_PHASE: [_model(0x6001)],
    Family.EMS: [_model(0x5001, 1036)],
    Family.GATEWAY: [_model(0x7001, 14)],
}


def test_representatives_cover_every_family() -> None:
    assert set(REPRESENTATIVES) == set(Family)
    for family, models in REPRESENTATIVES.items():
        assert all(m.family is family for m in models)


_DEVICE_PAGES = {
    Source.BATTERY: battery_blocks([0x32]),
    Source.BMU: battery_blocks([0x50]),
    Source.BCU: battery_blocks([0x70]),
    Source.BAMS: battery_blocks([0xA0]),
    Source.LV_BCU: battery_blocks([0x31]),
}


@pytest.mark.parametrize("field", ALL_FIELDS, ids=lambda f: f"{f.source}:{f.name}")
def test_field_registers_lie_in_read_blocks(field: Field) -> None:
    families = field.families if field.families is not None else frozenset(Family)
    for family in families:
        for model in REPRESENTATIVES[family]:
            if field.source is Source.INVERTER:
                blocks = candidate_blocks(model) + probe_blocks(model)
            elif field.source is Source.METER:
                blocks = meter_blocks([0x01], family)
            else:
                blocks = _DEVICE_PAGES[field.source]
            for register in field.registers:
                assert covering(blocks, field.bank, register), (family, register)


def test_no_block_a_model_lacks() -> None:
    """Blocks the spec says a model does not answer never appear (SPEC §3.2)."""

    def keys(m: Model) -> set[tuple[Bank, int]]:
        return {(b.bank, b.base) for b in candidate_blocks(m) + probe_blocks(m)}

    for fam in (Family.HYBRID_GEN1, Family.HYBRID_GEN2):
        assert (Bank.HOLDING, 300) not in keys(REPRESENTATIVES[fam][0])
    assert (Bank.HOLDING, 540) not in keys(REPRESENTATIVES[Family.HYBRID_GEN1][0])
    assert (Bank.HOLDING, 1100) not in keys(REPRESENTATIVES[Family.AIO][0])
    ems = {(b.bank, b.base, b.count) for b in candidate_blocks(REPRESENTATIVES[Family.EMS][0])}
    assert (Bank.HOLDING, 2040, 36) in ems
    three = [b for b in candidate_blocks(REPRESENTATIVES[Family.THREE_PHASE][0])
             if b.bank is Bank.INPUT and b.base >= 1000]  # fmt: skip
    assert [(b.base, b.count) for b in three] == [
        (1000, 60), (1060, 60), (1120, 60), (1180, 60), (1240, 60), (1300, 60), (1360, 54),
    ]  # fmt: skip
    for models in REPRESENTATIVES.values():
        for m in models:
            assert all(b.count <= 60 for b in candidate_blocks(m) + probe_blocks(m))


@pytest.mark.parametrize("family", list(Family))
def test_no_duplicate_names_within_a_group(family: Family) -> None:
    for model in REPRESENTATIVES[family]:
        available = probe_blocks(model)
        for source in Source:
            fields = fields_for(model, source=source, available=available)
            specs: list[Field | Derived] = list(fields)
            if source is Source.INVERTER:
                specs += derived_for(model, fields)
            seen: set[tuple[tuple[str, ...], str]] = set()
            for spec in specs:
                key = (spec.path, spec.name)
                assert key not in seen, key
                seen.add(key)
            # One name means one value per device, whatever its group (MQTT leaf, HA id).
            names = [s.name for s in specs]
            assert len(names) == len(set(names))


def test_derived_inputs_exist() -> None:
    names = {f.name for f in ALL_INVERTER_FIELDS} | {NOW}
    for d in DERIVED:
        assert set(d.inputs) <= names, d.name


@pytest.mark.parametrize(
    "family",
    [Family.HYBRID_GEN1, Family.HYBRID_GEN2, Family.AC, Family.AIO, Family.HV_GEN3],
)
def test_derived_all_computable(family: Family) -> None:
    """Every derived value that applies to these families has all its inputs there."""
    model = REPRESENTATIVES[family][0]
    fields = fields_for(model, available=probe_blocks(model))
    expected = {d.name for d in DERIVED if d.applies_to(family)}
    assert {d.name for d in derived_for(model, fields)} == expected


def test_one_entry_per_name_and_family() -> None:
    """A name is one value on a model: two entries of one family never share it."""
    for family in Family:
        for source in Source:
            names = [f.name for f in ALL_FIELDS if f.source is source and f.applies_to(family)]
            if source is Source.INVERTER:
                names += [d.name for d in DERIVED if d.applies_to(family)]
            assert len(names) == len(set(names)), (family, source)


def test_one_raw_name_per_family() -> None:
    """GivTCP 3's ``raw`` block (and the oracle's matching) keys values by raw name."""
    for family in Family:
        for source in Source:
            raws = [f.raw for f in ALL_FIELDS if f.raw and f.source is source
                    and f.applies_to(family)]  # fmt: skip
            if source is Source.INVERTER:
                raws += [d.raw for d in DERIVED if d.raw and d.applies_to(family)]
            assert len(raws) == len(set(raws)), (family, source)


def test_field_conventions() -> None:
    for f in ALL_FIELDS:
        if f.name.endswith("_kWh"):
            assert f.unit == "kWh", f.name
            assert f.kind in (Kind.TODAY, Kind.TOTAL), f.name
        if f.kind is Kind.TODAY:
            assert f.ha is not None, f.name
            assert f.ha.state_class == "total_increasing", f.name
        if f.kind is Kind.TOTAL and f.unit == "kWh":
            assert f.ha is not None, f.name
            assert f.ha.device_class == "energy", f.name
            assert f.ha.state_class == "total", f.name
        if re.fullmatch(r"Battery_Cell_\d+_(Voltage|Temperature)", f.name):
            assert f.ha is not None, f.name
            assert not f.ha.enabled_by_default, f.name
        if f.ha is not None and f.ha.platform != "sensor":
            assert f.control, f.name
        if f.unit == "W":
            assert f.bounds is not None, f.name
    units = {f.unit for f in ALL_FIELDS} | {d.unit for d in DERIVED}
    assert units <= {None, "W", "Wh", "VA", "var", "kWh", "kvarh", "V", "A", "Hz", "°C", "%", "Ah",
                     "h", "min", "s"}  # fmt: skip


def test_controls_use_givtcp_names() -> None:
    controls = {f.name: f.control for f in ALL_FIELDS if f.control}
    controls |= {d.name: d.control for d in DERIVED if d.control}
    assert controls["Target_SOC"] == "setChargeTarget"
    assert controls["Charge_start_time_slot_1"] == "setChargeStart1"
    assert controls["Discharge_end_time_slot_10"] == "setDischargeEnd10"
    assert controls["Battery_Power_Reserve"] == "setBatteryReserve"
    assert controls["Battery_Power_Cutoff"] == "setBatteryCutoff"
    assert controls["Eco_Mode"] == "setEcoMode"
    assert controls["Mode"] == "setBatteryMode"
    assert controls["Battery_Charge_Rate"] == "setChargeRate"
    assert controls["Battery_pause_mode"] == "setBatteryPauseMode"
    assert controls["Charge_Target_SOC_3"] == "setChargeTarget3"


def test_slot_registers() -> None:
    by = {(f.name, f.families and Family.AIO in f.families): f for f in ALL_INVERTER_FIELDS}
    # Charge slot 2 is HR243/244 (extended firmware); slot k >= 3 at HR246 + 3(k - 3).
    assert by[("Charge_start_time_slot_2", True)].registers == (243,)
    assert by[("Charge_end_time_slot_10", True)].registers == (268,)
    assert by[("Discharge_start_time_slot_2", True)].registers == (44,)
    assert by[("Discharge_start_time_slot_3", True)].registers == (276,)
    assert by[("Discharge_Target_SOC_10", True)].registers == (299,)
    gen2 = {f.name for f in fields_for(REPRESENTATIVES[Family.HYBRID_GEN2][0])}
    assert {n for n in gen2 if "time_slot" in n} == {
        "Charge_start_time_slot_1", "Charge_end_time_slot_1",
        "Discharge_start_time_slot_1", "Discharge_end_time_slot_1",
        "Discharge_start_time_slot_2", "Discharge_end_time_slot_2",
    }  # fmt: skip


# --- read plan ---------------------------------------------------------------------------------


def _keys(blocks: tuple[Block, ...]) -> list[tuple[int, str, int, int]]:
    return [(b.device_address, b.bank.value, b.base, b.count) for b in blocks]


def test_read_plan_gen1() -> None:
    model = plant(GEN1).model
    plan = read_plan(model, batteries=[0x32, 0x33], meters=[])
    assert sorted(_keys(plan.blocks)) == [
        (0x11, "HR", 0, 60), (0x11, "HR", 60, 60), (0x11, "HR", 120, 60),
        (0x11, "IR", 0, 60), (0x11, "IR", 180, 60),
        (0x32, "IR", 60, 60), (0x33, "IR", 60, 60),
    ]  # fmt: skip
    assert {b.base for b in plan.by_cadence(Cadence.SLOW)} == {0, 60, 120}
    assert len(plan.by_cadence(Cadence.FAST)) == 4


def test_read_plan_only_used_blocks() -> None:
    gen2 = read_plan(plant(GEN2).model, batteries=[0x32], meters=[0x01])
    assert (0x11, "IR", 180, 60) not in _keys(gen2.blocks)  # no Gen2 field lives in IR180+
    assert (0x01, "IR", 60, 30) in _keys(gen2.blocks)
    ems = _keys(read_plan(plant(EMS).model, meters=[0x01, 0x03]).blocks)
    assert (0x11, "HR", 2040, 36) in ems
    assert (0x11, "IR", 2040, 60) in ems
    assert (0x11, "IR", 0, 60) not in ems
    hv = read_plan(plant(HV_GEN3).model, batteries=[0x70, 0x50, 0x51, 0x52])
    hv_keys = _keys(hv.blocks)
    assert (0x11, "HR", 1060, 60) not in hv_keys  # answered with zeros, nothing uses it
    assert (0x70, "IR", 120, 60) in hv_keys
    assert (0x52, "IR", 60, 60) in hv_keys
    three = _keys(read_plan(plant(THREE_PHASE).model, batteries=[0xA0]).blocks)
    assert (0x11, "HR", 1120, 5) in three
    assert (0xA0, "IR", 60, 5) in three
    # The three-phase live data (issue 12): every IR1000-1413 page is read.
    assert {base for _, bank, base, _ in three if bank == "IR" and base >= 1000} == set(
        range(1000, 1361, 60)
    )


def test_read_plan_probes() -> None:
    gen3 = _model(0x2001, 302)
    assert not gen3.extended_slots
    probes = probe_blocks(gen3)
    assert {(b.bank, b.base) for b in probes} == {
        (Bank.HOLDING, 240), (Bank.HOLDING, 300), (Bank.INPUT, 240),
    }  # fmt: skip
    without = _keys(read_plan(gen3).blocks)
    assert (0x11, "HR", 240, 60) not in without
    names = {f.name for f in fields_for(gen3)}
    assert "Charge_start_time_slot_2" not in names
    assert "Battery_pause_mode" not in names
    confirmed = [b for b in probes if b.bank is Bank.HOLDING]
    plan = read_plan(gen3, available=confirmed)
    assert (0x11, "HR", 240, 60) in _keys(plan.blocks)
    assert (0x11, "HR", 300, 60) in _keys(plan.blocks)
    names = {f.name for f in fields_for(gen3, available=confirmed)}
    assert {"Charge_start_time_slot_2", "Battery_pause_mode"} <= names
    # A block that is not a probe of this model is ignored.
    stray = Block(0x11, Bank.HOLDING, 540, 60, Cadence.SLOW)
    assert (0x11, "HR", 540, 60) not in _keys(read_plan(gen3, available=[stray]).blocks)


@pytest.mark.parametrize("family", list(Family))
def test_read_plan_has_no_duplicates(family: Family) -> None:
    for model in REPRESENTATIVES[family]:
        plan = read_plan(
            model, batteries=[0x32, 0x32], meters=[0x01], available=probe_blocks(model)
        )
        keys = [b.key for b in plan.blocks]
        assert len(keys) == len(set(keys))
        assert (0x11, Bank.HOLDING, 0) in keys  # detection always needs HR(0,60)


# --- decode unit tests -------------------------------------------------------------------------


def _f(enc: Enc, registers: tuple[int, ...] = (0,), **kw: Any) -> Field:
    return Field("X", (), Bank.INPUT, registers, enc=enc, **kw)


def _dec(field: Field, *words: int) -> object:
    return decode_field(field, dict(zip(field.registers, words, strict=False)).get)


def test_decode_integers() -> None:
    assert _dec(_f(Enc.U16), 0xFF75) == 65397
    assert _dec(_f(Enc.S16), 0xFF75) == -139  # SPEC §4.1: IR30 = 0xFF75 -> -139 W
    assert _dec(_f(Enc.U32, (11, 12)), 0x0000, 0xFB8F) == 64399
    assert _dec(_f(Enc.U32, (11, 12), scale=0.1), 0x0000, 0xFB8F) == 6439.9
    assert _dec(_f(Enc.S32, (1, 2)), 0xFFFF, 0xFFFE) == -2
    assert _dec(_f(Enc.HIGH_BYTE), 0x0201) == 2  # HR3: 2 MPPT
    assert _dec(_f(Enc.LOW_BYTE), 0x0201) == 1  # 1 phase
    assert _dec(_f(Enc.U16, scale=0.1), 3) == 0.3  # not 0.30000000000000004
    assert _dec(_f(Enc.U16, scale=0.01), 4996) == 49.96
    assert _dec(_f(Enc.U16, scale=10), 7) == 70
    assert _dec(_f(Enc.HEX), 0x2001) == "2001"
    assert _dec(_f(Enc.HEX, (1, 2)), 0x0001, 0x00AB) == "000100ab"


def test_decode_options() -> None:
    f = _f(Enc.U16, options={0: "Off", 1: "On"})
    assert _dec(f, 1) == "On"
    assert _dec(f, 7) == 7  # an unknown code stays numeric
    b = _f(Enc.BOOL, options={0: "disable", 1: "enable"})
    assert _dec(b, 0) == "disable"
    assert _dec(b, 1) == "enable"
    assert _dec(_f(Enc.BOOL), 1) is True
    assert _dec(_f(Enc.BOOL), 2) is None  # not a boolean


def test_decode_ascii() -> None:
    serial = (13, 14, 15, 16, 17)
    words = (0x5341, 0x3231, 0x3134, 0x4730, 0x3437)
    assert _dec(_f(Enc.ASCII, serial), *words) == "SA2114G047"
    assert _dec(_f(Enc.ASCII, (1, 2)), 0x4100, 0x0042) == "AB"  # NULs stripped anywhere
    assert _dec(_f(Enc.ASCII, (1, 2)), 0, 0) == ""
    assert _dec(_f(Enc.ASCII, (1,)), 0x41FF) is None  # not printable ASCII


def test_decode_times() -> None:
    t = _f(Enc.TIME)
    assert _dec(t, 1630) == "16:30:00"
    assert _dec(t, 30) == "00:30:00"
    assert _dec(t, 0) == "00:00:00"
    assert _dec(t, 2359) == "23:59:00"
    assert _dec(t, 60) is None  # minute 60: the "unset" sentinel of some firmware
    assert _dec(t, 1275) is None  # minute 75
    assert _dec(t, 2400) is None  # beyond 23:59
    assert _dec(t, 65535) is None
    assert hhmm(-5) is None


def test_decode_datetimes() -> None:
    dt = _f(Enc.DATETIME, (35, 36, 37, 38, 39, 40))
    assert _dec(dt, 23, 4, 28, 12, 15, 36) == naive(2023, 4, 28, 12, 15, 36)
    value = _dec(dt, 24, 12, 31, 23, 59, 59)
    assert isinstance(value, datetime)
    assert value.tzinfo is None
    assert _dec(dt, 24, 13, 1, 0, 0, 0) is None  # month 13 (the Dec 2024 firmware bug)
    assert _dec(dt, 23, 2, 30, 0, 0, 0) is None  # 30 February
    assert _dec(dt, 23, 1, 1, 24, 0, 0) is None  # hour 24
    assert _dec(dt, 0, 0, 0, 0, 0, 0) is None  # an unset clock


def test_decode_power_factors() -> None:
    assert _dec(_f(Enc.PF), 10370) == 0.037  # SPEC §2.8: IR16 = 10370 -> +0.037
    assert _dec(_f(Enc.PF), 10000) == 0.0
    assert _dec(_f(Enc.PF), 0) == -1.0
    assert _dec(_f(Enc.SIGNED_PF), 0xFC9E) == -0.0866
    assert _dec(_f(Enc.SIGNED_PF), 9998) == 0.9998


def test_decode_missing_register() -> None:
    f = _f(Enc.U32, (6, 7))
    assert decode_field(f, {6: 1}.get) is None
    empty: dict[int, int] = {}
    assert decode_field(_f(Enc.U16), empty.get) is None


def test_scale_helpers() -> None:
    assert [scale_decimals(s) for s in (1, 10, 0.1, 0.01, 0.001)] == [0, 0, 1, 2, 3]
    assert apply_scale(12345, 0.001) == 12.345
    assert isinstance(apply_scale(5, 1), int)


# --- the Gen1 register dump in vectors.json ----------------------------------------------------


def _vector(name: str) -> dict[tuple[str, int], int]:
    dumps = json.loads(VECTORS.read_text())["register_dumps"]
    regs = next(d["registers"] for d in dumps if d["name"] == name)
    return {(k.split(":")[0], int(k.split(":")[1])): v for k, v in regs.items()}


def test_vector_dump_gen1_daytime() -> None:
    """DW's Gen1 fixture (daytime, discharging, a little solar), decoded and derived."""
    regs = _vector("json_inverter_daytime_discharging_with_solar_generation")
    model = detect_model({r: v for (bank, r), v in regs.items() if bank == "HR"})
    assert model.family is Family.HYBRID_GEN1  # HR0 = 8193 = 0x2001, HR21 = 449
    fields = fields_for(model)
    hr = {r: v for (bank, r), v in regs.items() if bank == "HR"}
    ir = {r: v for (bank, r), v in regs.items() if bank == "IR"}
    values = {f.name: decode_field(f, (hr if f.bank is Bank.HOLDING else ir).get) for f in fields}
    assert values["Grid_Voltage"] == 236.3  # IR5 = 2363
    assert values["Battery_Discharge_Energy_Total_kWh"] == 173.0  # IR180 = 1730
    now = datetime(2022, 3, 1, 12, 0, tzinfo=UTC)
    given = {**values, NOW: now}
    d = {
        x.name: x.compute({n: given[n] for n in x.inputs}, model)
        for x in derived_for(model, fields)
    }
    assert d["Discharge_Completion_Time"] == now + timedelta(minutes=d["Discharge_Time_Remaining"])
    assert d["Charge_Completion_Time"] == now  # not charging
    assert d["PV_Power"] == 245  # IR18 + IR20 = 117 + 128
    assert d["Battery_to_House"] == 339  # discharge IR52 360 - export IR30 21
    assert d["Battery_to_Grid"] == 21  # exporting: 360 - 339
    assert d["Solar_to_House"] == 245  # min(245, load IR42 515)
    assert d["Grid_to_House"] == 0  # not importing
    # (IR44 3.8 - IR35 9.3) - (IR25 0.0 - IR26 19.8) = 14.3 kWh
    assert d["Load_Energy_Today_kWh"] == 14.3
    # 160 Ah x 51.2 V = 8.19 kWh (rounded, as GivTCP); (68 - 4) % of it at 0.36 kW = 873.6
    # min, truncated as GivTCP does
    assert d["Discharge_Time_Remaining"] == 873
    assert d["Mode"] == "Eco"  # HR27 = 1, HR59 = 0, HR110 = 4
    pack_regs = _vector("json_battery_daytime_discharging")
    pack = {
        f.name: decode_field(f, lambda r: pack_regs.get(("IR", r)))
        for f in fields_for(model, source=Source.BATTERY)
    }
    assert pack["Battery_Cell_1_Voltage"] == 3.232  # IR60 = 3232 mV
    assert pack["Battery_SOC"] == 67  # IR100
    assert pack["Battery_Discharge_Energy_Total_kWh"] == 169.6  # IR105 = 1696
    assert pack["Battery_Charge_Energy_Total_kWh"] == 174.4  # IR106 = 1744
    assert str(pack["Battery_Serial_Number"]).startswith("BG")  # IR110 = 16967 = "BG"
