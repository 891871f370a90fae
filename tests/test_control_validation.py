"""Every catalogue function refuses bad payloads: the error names field, value and what is
allowed, and nothing at all is written (register file unchanged, no write request sent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices

from givtcp_async.control import payloads as p
from givtcp_async.control.catalogue import CATALOGUE, ControlFunction
from givtcp_async.errors import ValidationFailed
from givtcp_async.registers.models import Model
from tests.control_support import example_dict, model_of, preferred_kind, rig

# setPVInputMode is available on no model (refused as a function before its payload).
FUNCTIONS = [fn for fn in CATALOGUE if preferred_kind(fn) is not None]
WRONG_TYPE: list[Any] = [[1, 2], {"x": 1}]


def _kind_of(payload: type[p.Payload], field: str) -> str:
    extra = payload.model_fields[field].json_schema_extra
    assert isinstance(extra, dict)
    return str(extra["x-kind"])


def _out_of_range(kind: str, model: Model) -> list[Any]:
    limit = p.battery_power_limit(model)
    table: dict[str, list[Any]] = {
        "percent": [3, "101", -4],
        "percent0": [101, "-1"],
        "percent1": [0, "101"],
        "watts": [limit + 1, "-1"],
        "watts16": [65536, -1],
        "minutes": [1440, "-5"],
        "time": ["2400", "12:60", "24:00", 2360, "23:59:60"],
        "datetime": ["31/02/2024 10:00:00", "01/01/1999 00:00:00", "32/01/2024 10:00:00"],
        "choice": ["Nope", 9],
        "switch": ["maybe", 2],
    }
    return table[kind]


MALFORMED_TIMES = ["1:2", "ab:cd", "12.30", "1", "12345", "", " : "]


def cases(fn: ControlFunction, model: Model) -> list[tuple[str, Any, str, Any]]:
    """(label, payload, field the error must name, value it must report)."""
    base = example_dict(fn)
    fields = {
        name: info for name, info in fn.payload.model_fields.items()
        if name not in fn.payload.ignored_fields
    }  # fmt: skip
    out: list[tuple[str, Any, str, Any]] = [
        ("unknown field", {**base, "bogus": 1}, "bogus", 1),
        ("JSON array", "[1, 2]", "payload", [1, 2]),
        ("not JSON", "{nope", "payload", "{nope"),
    ]
    for name, info in fields.items():
        kind = _kind_of(fn.payload, name)
        alias = info.validation_alias
        keys = [str(k) for k in alias.choices] if isinstance(alias, AliasChoices) else [name]
        key = keys[0]
        for value in WRONG_TYPE:
            out.append((f"wrong type {name}", {**base, key: value}, name, value))
        if kind != "switch":
            out.append((f"true/false for {name}", {**base, key: True}, name, True))
        for value in _out_of_range(kind, model):
            out.append((f"out of range {name}={value!r}", {**base, key: value}, name, value))
        if kind == "time":
            for value in MALFORMED_TIMES:
                out.append((f"malformed time {name}={value!r}", {**base, key: value}, name, value))
        if info.is_required():
            missing = {k: v for k, v in base.items() if k not in keys}
            out.append((f"missing {name}", missing, name, None))
    return out


@pytest.mark.parametrize("fn", FUNCTIONS, ids=[f.name for f in FUNCTIONS])
async def test_bad_payloads_are_rejected_and_write_nothing(
    fn: ControlFunction, tmp_path: Path
) -> None:
    kind = preferred_kind(fn)
    assert kind is not None
    async with rig(kind, tmp_path) as r:
        before = r.snapshot()
        mark = r.sim.mark()
        checked = 0
        for label, payload, field, value in cases(fn, r.model):
            result = await r.control.execute(fn.name, payload)
            assert result.status == "rejected", (fn.name, label, result.message)
            assert result.function == fn.name
            assert not result.registers
            named = [e for e in result.errors if e["field"] == field]
            assert named, (fn.name, label, result.errors)
            assert named[0]["value"] == value, (fn.name, label, named[0])
            assert named[0]["allowed"], (fn.name, label, named[0])
            assert field in result.message or label.startswith(("JSON", "not JSON"))
            checked += 1
        assert r.snapshot() == before, f"{fn.name}: a rejected payload changed a register"
        assert r.writes_seen(mark) == []
        assert r.controller.ledger.total == 0
        assert checked >= 3


def test_every_required_field_has_a_missing_case_and_every_time_a_malformed_one() -> None:
    """The generator above covers what the issue asks for, for every function."""
    for fn in FUNCTIONS:
        labels = [c[0] for c in cases(fn, model_of(preferred_kind(fn) or "gen3"))]
        for name, info in fn.payload.model_fields.items():
            if name in fn.payload.ignored_fields:
                continue
            assert any(lb.startswith(f"wrong type {name}") for lb in labels), fn.name
            assert any(lb.startswith(f"out of range {name}") for lb in labels), fn.name
            if info.is_required():
                assert f"missing {name}" in labels, fn.name
            if _kind_of(fn.payload, name) == "time":
                assert any(lb.startswith(f"malformed time {name}") for lb in labels), fn.name


# --- payload forms -------------------------------------------------------------------------


def _parse(name: str, raw: Any, kind: str = "gen3") -> p.Payload:
    return CATALOGUE.get(name).parse(raw, model_of(kind))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0100", 100), ("100", 100), ("01:30", 130), ("1:30", 130), ("01:30:59", 130),
        ("23:59", 2359), ("00:00", 0), (130, 130), (0, 0), (" 04:00 ", 400),
    ],
)  # fmt: skip
def test_times_in_every_givtcp_form(raw: Any, expected: int) -> None:
    assert _parse("setChargeStart1", raw) == p.TimePayload(time=expected)
    payload = _parse("setChargeSlot1", {"start": raw, "finish": raw})
    assert isinstance(payload, p.ChargeSlotPayload)
    assert (payload.start, payload.finish) == (expected, expected)


def test_numbers_as_strings_or_numbers_and_plain_scalars() -> None:
    for raw in ('{"chargeToPercent":"50"}', '{"chargeToPercent":50}', "50", b"50", '"50"',
                {"chargeToPercent": 50.0}, " 50 ", "50.0"):  # fmt: skip
        assert _parse("setChargeTarget", raw) == p.ChargeTargetPayload(chargeToPercent=50), raw


def test_original_givtcp_payloads() -> None:
    slot = _parse(
        "setChargeSlot1",
        '{"enable": true, "start": "0100", "finish": "0400", "chargeToPercent": "100"}',
    )
    assert isinstance(slot, p.ChargeSlotPayload)
    assert (slot.start, slot.finish, slot.chargeToPercent) == (100, 400, 100)
    assert "enable" not in slot.model_dump(exclude_none=True)
    dslot = _parse(
        "setDischargeSlot2", '{"start":"0100","finish":"0400","dischargeToPercent":"55"}'
    )
    assert isinstance(dslot, p.DischargeSlotPayload)
    assert dslot.dischargeToPercent == 55
    assert _parse("setBatteryReserve", '{"dischargeToPercent":"5"}') == p.ReservePayload(
        reservePercent=5
    )
    assert _parse("setBatteryReserve", '{"reservePercent":"6"}') == p.ReservePayload(
        reservePercent=6
    )
    mode = _parse("setBatteryMode", '{"mode":"1"}')
    assert isinstance(mode, p.BatteryModePayload)
    assert mode.mode is p.BatteryMode.DYNAMIC
    dt = _parse("setDateTime", '{"dateTime":"22/07/2024 10:03:44"}')
    assert isinstance(dt, p.DateTimePayload)
    assert dt.dateTime.isoformat() == "2024-07-22T10:03:44"
    originals = [
        "enableChargeTarget",
        "disableChargeTarget",
        "pauseChargeSchedule",
        "resumeChargeSchedule",
        "pauseDischargeSchedule",
        "resumeDischargeSchedule",
    ]
    for name in originals:
        _parse(name, None)
        _parse(name, "")


def test_later_givtcp_forms() -> None:
    assert _parse("enableChargeSchedule", '{"state":"enable"}') == p.SwitchPayload(state=True)
    assert _parse("enableChargeSchedule", "disable") == p.SwitchPayload(state=False)
    for name in ("Eco", "eco (paused)", "Timed Demand", "timed export"):
        _parse("setBatteryMode", name)
    assert _parse("setBatteryPauseMode", '{"state":"PauseCharge"}') == p.PauseModePayload(
        state=p.PauseMode.PAUSE_CHARGE
    )
    assert _parse("setBatteryCalibration", "Charge Only") == p.CalibrationPayload(
        state=p.Calibration.CHARGE_ONLY
    )
    for raw in ("Cancel", "Normal", "0", 0):
        payload = _parse("forceCharge", raw)
        assert isinstance(payload, p.DurationPayload)
        assert payload.cancel
    assert _parse("forceExport", '{"duration":"30"}') == p.DurationPayload(duration=30)
    _parse("rebootInverter", "restart")
    _parse("syncDateTime", "anything")


def test_enable_flag_only_where_givtcp_had_it() -> None:
    with pytest.raises(ValidationFailed) as err:
        _parse("setChargeTarget", {"chargeToPercent": 50, "enable": True})
    assert err.value.errors[0]["field"] == "enable"


def test_aliases_and_routers() -> None:
    assert CATALOGUE.get("enableDishargeSchedule").name == "enableDischargeSchedule"
    assert CATALOGUE.get("reboot").name == "rebootInverter"
    assert CATALOGUE.get("/reboot").name == "rebootInverter"
    assert CATALOGUE.get("rebootInvertor").name == "rebootInverter"
    assert CATALOGUE.get("setEMSChargeStart2").name == "setChargeStart2"
    assert CATALOGUE.get("setlocalcontrolmode").name == "setExportPriority"
    gen3 = model_of("gen3")
    fn, payload = CATALOGUE.resolve(
        "setChargeSlot",
        {"start": "01:00", "finish": "04:00", "slot": "3", "chargeToPercent": "80"},
        gen3,
    )
    assert fn.name == "setChargeSlot3"
    assert isinstance(payload, p.ChargeSlotPayload)
    fn, payload = CATALOGUE.resolve(
        "setDischargeTarget", {"dischargeToPercent": "20", "slot": "1"}, gen3
    )
    assert fn.name == "setDischargeTarget1"
    with pytest.raises(ValidationFailed) as err:
        CATALOGUE.resolve("setChargeSlot", {"start": "01:00", "finish": "04:00"}, gen3)
    assert err.value.errors[0]["field"] == "slot"
    with pytest.raises(ValidationFailed) as err:
        CATALOGUE.resolve(
            "setChargeSlot", {"start": "0100", "finish": "0400", "slot": 2}, model_of("gen1")
        )
    assert err.value.errors[0] == {
        "field": "slot",
        "value": 2,
        "allowed": "1-1",
        "message": "no such slot",
    }


def test_rates_are_checked_against_the_battery() -> None:
    assert _parse("setChargeRate", "2600", "gen1") == p.ChargeRatePayload(chargeRate=2600)
    with pytest.raises(ValidationFailed) as err:
        _parse("setChargeRate", "2601", "gen1")
    assert err.value.errors[0] == {
        "field": "chargeRate",
        "value": "2601",
        "allowed": "0-2600 W",
        "message": "rate out of range for this battery",
    }
    _parse("setDischargeRate", "3600", "gen3")
    _parse("setDischargeRate", "6000", "aio")


def test_json_schema_for_every_function() -> None:
    for fn in FUNCTIONS:
        schema = fn.json_schema()
        assert schema["title"] == fn.name
        assert fn.writes in schema["description"]
        for name in fn.payload.model_fields:
            if name in fn.payload.ignored_fields:
                continue
            assert name in schema.get("properties", {}), (fn.name, name)
