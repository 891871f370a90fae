"""The EV charger's register map, decoding, gates, payloads, state file and policy, without a
network: what a GivEVC's registers mean, what a bad payload gets, what the policy decides."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest

from givtcp_async.errors import ValidationFailed
from givtcp_async.evc import payloads as p
from givtcp_async.evc.controls import EVC_FUNCTIONS, Limits, find
from givtcp_async.evc.policy import ChargerView, GridView, decide
from givtcp_async.evc.simulator import Car, ChargerSimulator
from givtcp_async.evc.snapshot import EvcAssembler, latest_occurrence, serial_of
from givtcp_async.evc.state import EvcState, StateStore
from givtcp_async.registers.evc import ALL_SPECS, EVC_FIELDS, WRITABLE
from givtcp_async.registers.schema import Source

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _registers(sim: ChargerSimulator) -> dict[int, int]:
    return dict(enumerate(sim.render()))


def test_map_is_one_entry_per_value_with_givtcp_names() -> None:
    names = [s.name for s in ALL_SPECS]
    assert len(names) == len(set(names))
    assert {f.source for f in EVC_FIELDS} == {Source.EVC}
    assert all(s.path == ("Charger",) for s in ALL_SPECS)
    # GivTCP 3.5's EVC tree (evc.py getEVC and its cached settings).
    assert set(names) == {
        "Charging_State", "Connection_Status", "Error_Code", "Current_L1", "Current_L2",
        "Current_L3", "Active_Power", "Active_Power_L1", "Active_Power_L2", "Active_Power_L3",
        "Meter_Energy", "Evse_Max_Current", "Evse_Min_Current", "Charge_Limit",
        "Charge_Session_Energy", "Charge_Session_Duration", "Plug_and_Go", "Charge_Control",
        "Voltage_L1", "Voltage_L2", "Voltage_L3", "Serial_Number", "Charge_Start_Time",
        "Charge_End_Time", "System_Time", "Import_Cap", "Charging_Mode", "Max_Session_Energy",
    }  # fmt: skip
    assert all(r <= 114 for f in EVC_FIELDS for r in f.registers)
    assert {91, 93, 95, 97, 98, 99, 100, 101, 102} == WRITABLE


def test_decoding_a_charging_session() -> None:
    sim = ChargerSimulator(serial="GEV2321A0042", voltage=231.5, meter_wh=70_000_000.0)
    sim.plug_in(Car())
    sim.limit_setting = 160
    values = EvcAssembler(UTC).decode(_registers(sim), NOW)
    assert values["Charging_State"] == "Charging"
    assert values["Connection_Status"] == "Connected"
    assert values["Error_Code"] == "Clear"
    assert values["Current_L1"] == 16.0
    assert values["Active_Power"] == values["Active_Power_L1"] == round(16 * 231.5)
    # 7,000.0 kWh needs both words of HR28-29 (high word first): beyond 16 bits at 0.1 kWh.
    assert values["Meter_Energy"] == 70_000.0
    assert values["Charge_Limit"] == 16.0
    assert values["Evse_Min_Current"] == 6.0
    assert values["Evse_Max_Current"] == 32.0
    assert values["Serial_Number"] == "GEV2321A0042"
    assert values["Plug_and_Go"] == "enable"
    assert values["Voltage_L1"] == 231.5
    assert values["Voltage_L2"] == 0.0
    assert values["Charge_Session_Duration"] == "0:00:00"
    assert isinstance(values["System_Time"], datetime)
    assert values["System_Time"].tzinfo is UTC


def test_32_bit_values_are_high_word_first() -> None:
    regs = dict.fromkeys(range(115), 0)
    regs[28], regs[29] = 0x0001, 0x0002  # 65538 x 0.1 kWh
    regs[78], regs[79] = 0, 3725
    values = EvcAssembler(UTC).decode(regs, NOW)
    assert values["Meter_Energy"] == 6553.8
    assert values["Charge_Session_Duration"] == "1:02:05"


def test_serial_is_one_character_per_register_and_must_look_like_one() -> None:
    def regs(text: str) -> dict[int, int]:
        return dict.fromkeys(range(38, 69), 0) | {38 + i: ord(c) for i, c in enumerate(text)}

    assert serial_of(regs("GEV2321A0001")) == "GEV2321A0001"
    assert serial_of({}) is None
    assert serial_of(regs("") | {38: 0x41, 39: 0x07}) is None  # a control character
    assert serial_of(regs("A B C D")) is None
    assert serial_of(regs("AB")) is None


def test_session_times_are_their_latest_occurrence() -> None:
    night = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)
    assert latest_occurrence(time(23, 0), night) == datetime(2025, 6, 1, 23, 0, tzinfo=UTC)
    assert latest_occurrence(time(0, 30), night) == datetime(2025, 6, 2, 0, 30, tzinfo=UTC)
    regs = dict.fromkeys(range(115), 0)
    regs.update({74: 23, 75: 15, 76: 5, 97: 2025, 98: 6, 99: 2, 100: 1, 101: 0, 102: 0})
    values = EvcAssembler(UTC).decode(regs, night)
    assert values["Charge_Start_Time"] == datetime(2025, 6, 1, 23, 15, 5, tzinfo=UTC)
    regs[74] = 24  # not a time of day
    assert EvcAssembler(UTC).decode(regs, night)["Charge_Start_Time"] is None


def test_a_clock_that_is_not_a_date_is_unavailable() -> None:
    regs = dict.fromkeys(range(115), 0)
    regs.update({97: 2025, 98: 2, 99: 30, 100: 1})
    assert EvcAssembler(UTC).decode(regs, NOW)["System_Time"] is None
    regs.update({97: 25, 98: 2, 99: 3})  # a two-digit year is not this charger's clock
    assert EvcAssembler(UTC).decode(regs, NOW)["System_Time"] is None


def test_session_energy_is_held_after_the_session_as_givtcp_does() -> None:
    asm = EvcAssembler(UTC)
    regs = dict.fromkeys(range(115), 0)
    regs.update({0: 4, 72: 123})
    assert asm.decode(regs, NOW)["Charge_Session_Energy"] == 12.3
    regs.update({0: 1, 72: 0})  # unplugged: the charger clears it
    assert asm.decode(regs, NOW)["Charge_Session_Energy"] == 12.3
    regs.update({0: 4, 72: 0})  # a new session starts from zero
    assert asm.decode(regs, NOW)["Charge_Session_Energy"] == 0


def test_gates_reject_implausible_readings_and_keep_the_last_good() -> None:
    clock = [0.0]
    asm = EvcAssembler(UTC, clock=lambda: clock[0])
    sim = ChargerSimulator()
    sim.plug_in(Car())
    regs = _registers(sim)
    good = asm.build(regs, serial="S", held=EvcState().held_values(), now=NOW)
    assert good.value("Current_L1") == 32.0
    assert not good.values["Current_L1"].stale
    bad = dict(regs)
    bad[6] = 5000  # 500 A
    bad[28], bad[29] = 0, 5  # the lifetime meter going backwards
    snap = asm.build(bad, serial="S", held=EvcState().held_values(), now=NOW)
    assert snap.value("Current_L1") == 32.0
    assert snap.values["Current_L1"].stale
    assert snap.value("Meter_Energy") == good.value("Meter_Energy")
    assert snap.values["Meter_Energy"].stale
    assert "Current_L1:out_of_bounds" in asm.rejections
    assert "Meter_Energy:went_backwards" in asm.rejections
    # A failed poll republishes the last good values, stale, until stale_after.
    failed = asm.build(None, serial="S", held=EvcState().held_values(), now=NOW)
    assert failed.value("Charging_State") == "Charging"
    assert failed.values["Charging_State"].stale
    assert failed.fresh("Charging_State") is None
    assert failed.value("Import_Cap") == 0  # held settings are always known


def test_runall_is_givtcps_evc_tree() -> None:
    sim = ChargerSimulator()
    sim.plug_in(Car())
    snap = EvcAssembler(UTC).build(
        _registers(sim), serial=sim.serial, held=EvcState(60, "Solar", 20.5).held_values(),
        now=NOW, stats={"status": "online"},
    )  # fmt: skip
    tree = snap.runall()
    assert set(tree) == {"Charger", "Stats"}
    charger = tree["Charger"]
    assert charger["Charge_Control"] == "Start"
    assert charger["Import_Cap"] == 60
    assert charger["Charging_Mode"] == "Solar"
    assert charger["Max_Session_Energy"] == 20.5
    json.dumps(tree)  # JSON-ready
    assert snap.flat()["Charger/Serial_Number"] == sim.serial


# --- payloads ------------------------------------------------------------------------------


GOOD: list[tuple[str, Any, dict[str, Any]]] = [
    ("setCurrentLimit", {"current": "16"}, {"current": 16}),
    ("setCurrentLimit", "32", {"current": 32}),
    ("setCurrentLimit", 6, {"current": 6}),
    ("setImportCap", {"current": "60"}, {"current": 60}),
    ("setImportCap", "0", {"current": 0}),
    ("setMaxSessionEnergy", {"energy": "20.5"}, {"energy": 20.5}),
    ("setMaxSessionEnergy", "7", {"energy": 7.0}),
    ("setChargingMode", {"state": "hybrid"}, {"state": "Hybrid"}),
    ("setChargingMode", {"mode": "Solar"}, {"state": "Solar"}),
    ("setChargingMode", "Grid", {"state": "Grid"}),
    ("setChargeControl", {"mode": "start"}, {"mode": "Start"}),
    ("controlCharge", "Stop", {"mode": "Stop"}),
    ("setChargeControl", "Ready", {"mode": "Ready"}),
    ("setChargeMode", '"enable"', {"state": True}),
    ("chargeMode", "disable", {"state": False}),
    ("setSystemTime", "22/07/2024 10:03:44", {"dateTime": "2024-07-22T10:03:44"}),
]


@pytest.mark.parametrize(("name", "raw", "expected"), GOOD)
def test_givtcp_payloads_are_accepted(name: str, raw: Any, expected: dict[str, Any]) -> None:
    fn = find(name)
    assert fn.parse(raw).model_dump(mode="json", by_alias=True) == expected


BAD: list[tuple[str, Any, str]] = [
    ("setCurrentLimit", {"current": "99"}, "current"),
    ("setCurrentLimit", {"current": "sixteen"}, "current"),
    ("setCurrentLimit", {"current": "16.5"}, "current"),
    ("setCurrentLimit", {"amps": "16"}, "amps"),
    ("setCurrentLimit", None, "current"),
    ("setImportCap", {"current": "101"}, "current"),
    ("setImportCap", "-1", "current"),
    ("setMaxSessionEnergy", {"energy": "100.5"}, "energy"),
    ("setMaxSessionEnergy", {"energy": "nan"}, "energy"),
    ("setMaxSessionEnergy", {"energy": True}, "energy"),
    ("setChargingMode", {"state": "Turbo"}, "state"),
    ("setChargeControl", {"mode": "Go"}, "mode"),
    ("setChargeMode", "maybe", "state"),
    ("setSystemTime", "31/02/2024 10:00:00", "dateTime"),
    ("setSystemTime", "[1, 2]", "payload"),
    ("setImportCap", "{nope", "payload"),
]


@pytest.mark.parametrize(("name", "raw", "field"), BAD)
def test_bad_payloads_name_the_field_and_what_is_allowed(name: str, raw: Any, field: str) -> None:
    fn = find(name)
    with pytest.raises(ValidationFailed) as caught:
        fn.planner(fn.parse(raw), Limits(now=NOW))
    errors = caught.value.errors
    assert any(e["field"] == field for e in errors), errors
    assert all(e["allowed"] for e in errors)


def test_current_limit_follows_the_chargers_own_range() -> None:
    fn = find("setCurrentLimit")
    with pytest.raises(ValidationFailed) as caught:
        fn.planner(fn.parse("20"), Limits(NOW, evse_min=6, evse_max=16))
    assert caught.value.errors[0] == {
        "field": "current", "value": 20, "allowed": "6-16 A", "message": "out of range"
    }  # fmt: skip
    plan = fn.planner(fn.parse("16"), Limits(NOW, evse_min=6, evse_max=16))
    assert [(w.register, w.value) for w in plan.writes] == [(91, 160)]


def test_plans_write_givtcps_registers() -> None:
    def writes(name: str, raw: Any) -> list[tuple[int, int]]:
        fn = find(name)
        return [(w.register, w.value) for w in fn.planner(fn.parse(raw), Limits(NOW)).writes]

    assert writes("setChargeControl", "Start") == [(95, 1)]
    assert writes("setChargeControl", "Stop") == [(95, 2)]
    assert writes("setChargeMode", "enable") == [(93, 0)]
    assert writes("setChargeMode", "disable") == [(93, 1)]
    assert writes("setSystemTime", "22/07/2024 10:03:44") == [
        (97, 2024), (98, 7), (99, 22), (100, 10), (101, 3), (102, 44)
    ]  # fmt: skip
    for held in ("setImportCap", "setChargingMode", "setMaxSessionEnergy"):
        fn = find(held)
        assert not fn.planner(fn.parse(fn.example), Limits(NOW)).writes


def test_names_and_aliases() -> None:
    assert find("/setcurrentlimit").name == "setCurrentLimit"
    assert find("controlCharge").name == "setChargeControl"
    assert find("chargeMode").name == "setChargeMode"
    assert {f.name for f in EVC_FUNCTIONS} >= {
        "setChargeControl", "setChargingMode", "setCurrentLimit", "setImportCap",
        "setMaxSessionEnergy", "setSystemTime", "setChargeMode",
    }  # fmt: skip
    assert p.MAX_AMPS == 80


# --- the state file --------------------------------------------------------------------------


def test_state_file_round_trip_and_hostile_values(tmp_path: Path) -> None:
    path = tmp_path / "S.evc.json"
    store = StateStore(path)
    store.update(import_cap=60, charging_mode="Solar", max_session_energy=12.5)
    again = StateStore(path).state
    assert (again.import_cap, again.charging_mode, again.max_session_energy) == (60, "Solar", 12.5)
    path.write_text(json.dumps({"import_cap": 9999, "charging_mode": "Turbo", "user_limit": "x",
                                "stopped_by": "import_cap", "max_session_energy": 5}))  # fmt: skip
    hostile = StateStore(path).state
    assert hostile == EvcState(stopped_by="import_cap", max_session_energy=5.0)
    path.write_text("{not json")
    assert StateStore(path).state == EvcState()


# --- the policy --------------------------------------------------------------------------------


def view(**kw: Any) -> ChargerView:
    base: dict[str, Any] = {"charging": True, "plugged": True, "limit": 32.0, "evse_min": 6.0,
                            "evse_max": 32.0, "power": 7360.0, "session_energy": 5.0}  # fmt: skip
    return ChargerView(**{**base, **kw})


def kinds(decision: Any) -> list[tuple[str, int | None]]:
    return [(a.kind, a.amps) for a in decision.actions]


def test_cap_lowers_the_limit_by_the_excess_as_givtcp_does() -> None:
    d = decide(view(), GridView(40.0), EvcState(import_cap=40))
    # 40 A > 95 % of 40: new limit = 32 - (40 - 36) = 28 A.
    assert kinds(d) == [("limit", 28)]
    assert d.actions[0].safety
    assert d.user_limit == 32


def test_cap_stops_below_the_minimum_and_restarts_with_hysteresis() -> None:
    state = EvcState(import_cap=20)
    d = decide(view(limit=8.0), GridView(25.0), state)
    assert kinds(d) == [("stop", None)]
    assert d.stopped_by == "import_cap"
    stopped = EvcState(import_cap=20, stopped_by="import_cap", user_limit=32)
    # 6 A more would land above 80 % of the cap: stay stopped.
    assert decide(view(charging=False), GridView(11.0), stopped).stopped_by == "import_cap"
    assert not decide(view(charging=False), GridView(11.0), stopped).actions
    # Room again: the limit first (at most 90 % of the cap), then Start.
    d = decide(view(charging=False), GridView(4.0), stopped)
    assert kinds(d) == [("limit", 14), ("start", None)]
    assert d.stopped_by is None


def test_cap_band_and_giving_current_back() -> None:
    state = EvcState(import_cap=40, user_limit=32)
    assert not decide(view(limit=20.0), GridView(35.0), state).actions  # 80-95 %: hold
    # Below 80 %: up towards the wish, to 90 % of the cap at most.
    assert kinds(decide(view(limit=20.0), GridView(30.0), state)) == [("limit", 26)]
    assert kinds(decide(view(limit=20.0), GridView(2.0), state)) == [("limit", 32)]
    assert not decide(view(limit=32.0), GridView(2.0), state).actions


def test_cap_without_a_grid_reading_holds_the_minimum() -> None:
    d = decide(view(), None, EvcState(import_cap=40))
    assert kinds(d) == [("limit", 6)]
    assert d.actions[0].safety
    assert not decide(view(limit=6.0), None, EvcState(import_cap=40)).actions
    assert not decide(view(), None, EvcState()).actions  # no cap: nothing to enforce


def test_session_energy_limit_stops_once() -> None:
    state = EvcState(max_session_energy=10.0)
    d = decide(view(session_energy=10.1), None, state)
    assert kinds(d) == [("stop", None)]
    assert d.stopped_by == "session_energy"
    after = EvcState(max_session_energy=10.0, stopped_by="session_energy")
    assert not decide(view(charging=False), GridView(0.0), after).actions
    assert decide(view(plugged=False), None, after).stopped_by is None  # car gone: forgotten


def test_modes_follow_the_pv_surplus() -> None:
    sunny = GridView(0.0, pv_power=4000.0, load_power=500.0 + 1380.0, voltage=230.0)
    hybrid = decide(view(limit=6.0, power=1380.0), sunny, EvcState(charging_mode="Hybrid"))
    assert kinds(hybrid) == [("limit", 21)]  # 6 A + 3500 W / 230 V
    solar = decide(view(limit=6.0, power=1380.0), sunny, EvcState(charging_mode="Solar"))
    assert kinds(solar) == [("limit", 15)]
    cloudy = GridView(3.0, pv_power=500.0, load_power=400.0 + 1380.0, voltage=230.0)
    d = decide(view(limit=6.0, power=1380.0), cloudy, EvcState(charging_mode="Solar"))
    assert kinds(d) == [("stop", None)]
    assert d.stopped_by == "solar"
    car_off = GridView(0.0, pv_power=4000.0, load_power=500.0, voltage=230.0)
    stopped = EvcState(charging_mode="Solar", stopped_by="solar")
    back = decide(view(charging=False, power=0.0), car_off, stopped)
    assert kinds(back) == [("limit", 15), ("start", None)]
    assert not decide(view(), sunny, EvcState()).actions  # Grid: the current is left alone
