"""Issue #16: what is the same for every inverter of a layout is held once, not per inverter:
the map entries, the specs every snapshot hands on, the specs merged with the daemon's own."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from givtcp_async import tariffs
from givtcp_async.assemble import LIFTED_PACK_TOTALS, SnapshotAssembler
from givtcp_async.control.overrides import STATE_SPECS
from givtcp_async.coordinator import merged_specs
from givtcp_async.quality.gates import Reading, ValueGate, _Held
from givtcp_async.reader import field_set
from givtcp_async.registers.models import detect_model
from givtcp_async.registers.raw import time_slot
from givtcp_async.registers.schema import Source

LONDON = ZoneInfo("Europe/London")
GEN3 = detect_model({0: 0x2001, 19: 308, 21: 308})
GEN1 = detect_model({0: 0x2001, 19: 0, 21: 449})


def test_inverters_of_a_model_share_their_map_entries_and_specs() -> None:
    one, two = field_set(GEN3), field_set(GEN3)
    assert one is two
    assert field_set(GEN1) is not one
    a = SnapshotAssembler(GEN3, "SA1234G567", one, LONDON)
    b = SnapshotAssembler(GEN3, "SA7654G321", two, LONDON)
    assert a._specs is b._specs  # what every snapshot of either hands on as its specs
    assert a._device_specs is b._device_specs
    assert a._derived is b._derived
    # The shared specs are what one assembler alone had: its fields, derived values and the
    # pack totals lifted to the inverter.
    expected = {f.name for f in one.inverter} | {d.name for d in one.derived}
    packs = {f.name for f in one.devices[Source.BATTERY]}
    expected |= {n for n in LIFTED_PACK_TOTALS if n in packs}
    assert set(a._specs) == expected
    assert a._device_specs[Source.BATTERY] == {f.name: f for f in one.devices[Source.BATTERY]}
    other = SnapshotAssembler(GEN1, "SA1111G111", field_set(GEN1), LONDON)
    assert other._specs is not a._specs


def test_specs_merged_with_the_daemons_own_are_one_mapping_per_layout() -> None:
    specs = SnapshotAssembler(GEN3, "SA1234G567", field_set(GEN3), LONDON)._specs
    own = {s.name: s for fn in STATE_SPECS for s in STATE_SPECS[fn]}
    own.update({s.name: s for s in tariffs.specs("GBP")})
    again = {s.name: s for fn in STATE_SPECS for s in STATE_SPECS[fn]}
    again.update({s.name: s for s in tariffs.specs("GBP")})  # the same spec objects
    merged = merged_specs(specs, own)
    assert merged is merged_specs(specs, again)
    assert merged == {**specs, **own}
    assert tariffs.specs("EUR") is not tariffs.specs("GBP")
    euro = {**own, **{s.name: s for s in tariffs.specs("EUR")}}
    assert merged_specs(specs, euro) is not merged
    assert merged_specs(specs, euro)["Day_Cost"].unit == "EUR"


def held_of(gate: ValueGate, name: str) -> object:
    return gate._tracks[name].held


def test_a_value_judged_plainly_keeps_a_small_track_and_its_value_once() -> None:
    specs = {f.name: f for f in field_set(GEN3).inverter}
    gate = ValueGate(GEN3)
    plain, soc = specs["Grid_Voltage"], specs["SOC"]
    for i, now in enumerate((1.0, 2.0, 3.0)):
        gate.check(plain, 240.0 + i, now=now)
        gate.check(soc, 50, now=now)
    track = gate._tracks["Grid_Voltage"]
    assert track.held is None  # nothing of holding or unwrapping
    assert track.reading is not None
    assert track.value is track.reading.value == 242.0  # the value kept once, in its reading
    assert not hasattr(track, "__dict__")
    assert held_of(gate, "SOC") is None
    # A suspicious value is held until confirmed: that track gets what holding needs.
    assert gate.check(soc, 0, now=4.0) == Reading(50, soc.unit, stale=True)
    held = held_of(gate, "SOC")
    assert isinstance(held, _Held)
    assert held.candidate == 0
    assert gate.check(soc, 50, now=5.0).value == 50
    assert held.candidate is None


def test_time_slot_texts_are_shared_and_unchanged() -> None:
    text = time_slot(130, 445)
    assert text == "TimeSlot(start=datetime.time(1, 30), end=datetime.time(4, 45))"
    assert time_slot(130, 445) is text  # one text for every snapshot of every inverter
    assert time_slot(130, 2400) == "TimeSlot(start=None, end=None)"
    assert time_slot(130.0, 445) == "TimeSlot(start=None, end=None)"  # not an int: no time
    assert time_slot(True, 445) == time_slot(1, 445)  # as before: a bool is an int
    assert time_slot(None, 445) == "TimeSlot(start=None, end=None)"
