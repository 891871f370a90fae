"""GivTCP 3.5's ``raw`` block for the three-phase, EMS and Gateway families, their meters and HV
stacks (issue 12): each value under the name GivTCP 3.5's Modbus model gives its register, in
that library's form, laid out as GivTCP 3.5 prints it (``raw/invertor``,
``raw/HV_Battery_Stacks/Stack_<i>``, ``raw/meters/Meter_ID_<n>``). The captures are served by
the simulator and read as the daemon reads them; the expected values are the capture's register
words decoded here by hand, not through the register map."""

from __future__ import annotations

from collections import Counter
from functools import cache
from typing import Any

import jsonschema_rs
import pytest

from givtcp_async.protocol.frames import FunctionCode
from givtcp_async.registers import DERIVED
from givtcp_async.registers.catalog import ALL_INVERTER_FIELDS
from givtcp_async.registers.schema import Family
from givtcp_async.simulator.store import RegisterStore
from givtcp_async.sinks.runall_schema import runall_schemas
from tests.conftest import CAPTURES
from tests.oracle_support import capture_store, project_run, unique_serials

IR = int(FunctionCode.READ_INPUT)
HR = int(FunctionCode.READ_HOLDING)
THREE_PHASE = CAPTURES / "three_phase_hv_a/giv3hy11_da011_detect_10min.jsonl"
EMS = CAPTURES / "ems_2_inv_3_bat_a/ems_arm1036_30min.jsonl"
GATEWAY = CAPTURES / "gateway_2aio_a/gateway_gaaa0014_10min_daylight.jsonl"


def s16(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def u32(store: RegisterStore, register: int, device: int = 0x11) -> int:
    bank = store.devices[device].banks[IR]
    return bank[register] << 16 | bank[register + 1]


def ir(store: RegisterStore, register: int, device: int = 0x11) -> int:
    return store.devices[device].banks[IR][register]


def hr(store: RegisterStore, register: int, device: int = 0x11) -> int:
    return store.devices[device].banks[HR][register]


def text(store: RegisterStore, first: int, count: int, device: int = 0x11) -> str:
    raw = b"".join(ir(store, first + i, device).to_bytes(2, "big") for i in range(count))
    return raw.replace(b"\x00", b"").decode("ascii").strip()


@cache
def _store(name: str) -> RegisterStore:
    path = {"three-phase": THREE_PHASE, "ems": EMS, "gateway": GATEWAY}[name]
    return unique_serials(capture_store(path))


async def _raw(name: str) -> tuple[RegisterStore, dict[str, Any], dict[str, Any]]:
    store = _store(name)
    snap = await project_run(store, print_raw=True)
    tree = snap.runall()
    # What the OpenAPI document says /runAll's raw block is (schemathesis holds REST to it).
    schema = runall_schemas()["RunAll"]["properties"]["raw"]
    errors = [str(e) for e in jsonschema_rs.Draft202012Validator(schema).iter_errors(tree["raw"])]
    assert errors == []
    return store, tree["raw"], tree


@pytest.mark.parametrize("family", [Family.THREE_PHASE, Family.EMS, Family.GATEWAY,
                                    Family.AIO, Family.HYBRID_GEN3])  # fmt: skip
def test_a_raw_name_is_one_value(family: Family) -> None:
    names = [f.raw for f in ALL_INVERTER_FIELDS if f.raw and f.applies_to(family)]
    names += [d.raw for d in DERIVED if d.raw and d.applies_to(family)]
    assert [n for n, k in Counter(names).items() if k > 1] == []


async def test_three_phase_raw_has_givtcp_names_meters_and_stacks() -> None:
    store, raw, tree = await _raw("three-phase")
    inv = raw["invertor"]
    # The grid meter's and the inverter's per-phase powers: GivTCP's p_load_acN / p_out_acN,
    # in W as the map decodes them (GivTCP scales them by 0.1; the captures say W).
    for n in (1, 2, 3):
        assert inv[f"p_load_ac{n}"] == s16(ir(store, 1082 + n))
        assert inv[f"p_out_ac{n}"] == s16(ir(store, 1090 + n))
        assert inv[f"v_ac{n}"] == pytest.approx(ir(store, 1060 + n) / 10)
    assert inv["battery_soc"] == ir(store, 1132)
    assert inv["p_load_all"] == pytest.approx(u32(store, 1089) / 10)
    assert inv["e_import_total"] == pytest.approx(u32(store, 1382) / 10)
    assert inv["e_pv_today"] == pytest.approx(u32(store, 1412) / 10)
    assert inv["t_inverter"] == pytest.approx(ir(store, 1128) / 10)
    # Protection limits as GivTCP numbers their stages; its other spellings.
    assert inv["v_grid_low_limit_1"] == pytest.approx(hr(store, 1018) / 10)
    assert inv["f_grid_high_limit_2"] == pytest.approx(hr(store, 1025) / 100)
    assert inv["time_grid_low_freq_limit_2"] == pytest.approx(hr(store, 1040) / 100)
    assert inv["battery_power_cutoff"] == hr(store, 1078)
    assert inv["p_export_limit"] == pytest.approx(hr(store, 1063) / 10)
    assert inv["v_battery_LV"] == pytest.approx(hr(store, 1089) / 10)
    for gone in ("p_meter_active_ac1", "p_inverter_active_ac1", "v_grid_low_limit_trip",
                 "battery_reserve_soc", "export_power_rate"):  # fmt: skip
        assert gone not in inv
    # Its slots: HHMM numbers and the library's TimeSlot text.
    assert inv["charge_slot_1_start"] == hr(store, 1113)
    assert inv["discharge_slot_2_end"] == hr(store, 1121)
    assert inv["charge_slot_1"].startswith("TimeSlot(")
    assert inv["model"] == "4"
    # HV stacks, not LV packs: the BCU's values and each module's, by serial.
    assert "batteries" not in raw
    stacks = raw["HV_Battery_Stacks"]
    assert list(stacks) == ["Stack_0"]
    stack = stacks["Stack_0"]
    assert stack["number_of_module"] == ir(store, 64, 0x70) == 6
    assert stack["cluster_cell_voltage"] == ir(store, 67, 0x70)
    assert stack["battery_nominal_capacity"] == pytest.approx(ir(store, 98, 0x70) / 10)
    assert stack["pack_software_version"] == text(store, 60, 2, 0x70) + "0009"  # one digit a byte
    assert (ir(store, 62, 0x70), ir(store, 63, 0x70)) == (0, 9)
    assert stack["battery_voltage"] == pytest.approx(ir(store, 73, 0x70) / 10)
    modules = {k: v for k, v in stack.items() if isinstance(v, dict)}
    assert len(modules) == 6
    for address in range(0x50, 0x56):
        serial = text(store, 114, 5, address)
        assert modules[serial]["serial_number"] == serial
        assert modules[serial]["v_cell_01"] == pytest.approx(ir(store, 60, address) / 1000)
        assert modules[serial]["t_cell_24"] == pytest.approx(s16(ir(store, 113, address)) / 10)
    # Meters: GivTCP's Meter_ID_<n>, the values the Meter_Details tree has.
    meters = raw["meters"]
    assert sorted(meters) == ["Meter_ID_1", "Meter_ID_2"]
    for n in (1, 2):
        mine = tree["Meter_Details"][f"Meter_ID{n}"]
        assert meters[f"Meter_ID_{n}"]["v_phase_1"] == pytest.approx(ir(store, 60, n) / 10)
        assert meters[f"Meter_ID_{n}"]["v_phase_1"] == mine["Phase_1_Voltage"]
        assert meters[f"Meter_ID_{n}"]["p_active_phase_2"] == s16(ir(store, 69, n))
        assert meters[f"Meter_ID_{n}"]["e_export_active"] == mine["Export_Energy_kWh"]


async def test_ems_raw_has_givtcp_names() -> None:
    store, raw, tree = await _raw("ems")
    inv = raw["invertor"]
    assert inv["ems_status"] == ir(store, 2040)
    assert inv["meter_count"] == ir(store, 2041) == 2
    assert inv["inverter_count"] == ir(store, 2044) == 2
    assert inv["calc_load_power"] == ir(store, 2086)
    assert inv["grid_meter_power"] == s16(ir(store, 2089))
    assert inv["total_battery_power"] == s16(ir(store, 2090))
    assert inv["remaining_battery_wh"] == ir(store, 2091)
    assert inv["other_battery_power"] == s16(ir(store, 2094))
    for n in (1, 2):
        assert inv[f"inverter_{n}_power"] == s16(ir(store, 2053 + n))
        assert inv[f"inverter_{n}_soc"] == ir(store, 2057 + n)
        assert inv[f"inverter_{n}_temp"] == pytest.approx(s16(ir(store, 2061 + n)) / 10)
        serial = text(store, 2066 + 5 * (n - 1), 5)
        assert inv[f"inverter_{n}_serial_number"] == serial
        assert tree["Inverters"][f"Inverter_{n}"][f"Inverter_{n}_Serial_Number"] == serial
    assert inv["meter_3_power"] == s16(ir(store, 2048))
    # The plant's controls: the switch is GivTCP's plant_status, slots and targets by kind.
    assert inv["plant_status"] == hr(store, 2040)
    assert inv["export_power_limit"] == hr(store, 2071) == 9500
    assert inv["discharge_slot_1_start"] == hr(store, 2044) == 1900
    assert inv["charge_target_1"] == hr(store, 2055)
    assert inv["export_slot_1"].startswith("TimeSlot(")
    assert inv["model"] == "5"
    assert sorted(raw["meters"]) == ["Meter_ID_1", "Meter_ID_3"]


async def test_gateway_raw_has_givtcp_names_in_its_forms() -> None:
    store, raw, tree = await _raw("gateway")
    inv = raw["invertor"]
    assert inv["software_version"] == "GAAA0014"
    assert inv["work_mode"] == ir(store, 1604)  # the code, where runAll says "On grid"
    assert inv["v_grid"] == pytest.approx(s16(ir(store, 1608)) / 10)
    assert inv["p_ac1"] == s16(ir(store, 1616))
    assert inv["p_pv"] == ir(store, 1617)
    assert inv["p_load"] == ir(store, 1618)
    # The register's own sign, where the map negates it for runAll.
    assert inv["p_aio_total"] == s16(ir(store, 1702))
    assert tree["Power"]["Power"]["Battery_Power"] == -s16(ir(store, 1702))
    assert inv["p_liberty"] == s16(ir(store, 1619))
    assert inv["p_aio1_inverter"] == s16(ir(store, 1816))
    # High word first (the decision for GAAA0014), under GivTCP's names.
    assert inv["e_grid_import_total"] == pytest.approx(u32(store, 1641) / 10)
    assert inv["e_pv_today"] == pytest.approx(ir(store, 1643) / 10)
    assert inv["e_battery_discharge_total"] == pytest.approx(u32(store, 1799) / 10)
    assert inv["e_aio2_discharge_today"] == pytest.approx(ir(store, 1753) / 10)
    assert inv["parallel_aio_num"] == ir(store, 1700) == 2
    assert inv["aio1_soc"] == ir(store, 1801)
    assert inv["aio1_serial_number_new"] == text(store, 1841, 5)
    assert "aio2_serial_number_new" not in inv  # GivTCP's is at IR1848: not this firmware's
    assert "gateway_fault_codes" not in inv
    assert inv["model"] == "7"
    assert sorted(raw["meters"]) == ["Meter_ID_1", "Meter_ID_2"]
