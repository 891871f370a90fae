"""Issue #16: what is the same for every inverter of a layout is held once, not per inverter:
the map entries, the specs every snapshot hands on, the specs merged with the daemon's own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from givtcp_async import tariffs
from givtcp_async.assemble import LIFTED_PACK_TOTALS, SnapshotAssembler, reuse_equal
from givtcp_async.cache import RegisterCache
from givtcp_async.control.overrides import STATE_SPECS
from givtcp_async.coordinator import merged_specs
from givtcp_async.protocol.frames import FunctionCode, ReadResponse
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
    return gate._held.get(gate.slots[name])


def test_a_value_judged_plainly_keeps_its_reading_and_time_only() -> None:
    specs = {f.name: f for f in field_set(GEN3).inverter}
    gate = ValueGate(GEN3)
    plain, soc = specs["Grid_Voltage"], specs["SOC"]
    for i, now in enumerate((1.0, 2.0, 3.0)):
        gate.check(plain, 240.0 + i, now=now)
        gate.check(soc, 50, now=now)
    slot = gate.slots["Grid_Voltage"]
    assert held_of(gate, "Grid_Voltage") is None  # nothing of holding or unwrapping
    reading = gate._readings[slot]
    assert reading is not None
    assert gate.last("Grid_Voltage") is reading.value == 242.0  # the value kept once
    assert gate._at[slot] == 3.0
    assert held_of(gate, "SOC") is None
    # A suspicious value is held until confirmed: that value gets what holding needs.
    assert gate.check(soc, 0, now=4.0) == Reading(50, soc.unit, stale=True)
    held = held_of(gate, "SOC")
    assert isinstance(held, _Held)
    assert held.candidate == 0
    assert gate.check(soc, 50, now=5.0).value == 50
    assert held.candidate is None


def test_gates_of_inverters_of_a_model_share_their_slots() -> None:
    """Each gate keeps two lists by slot; the slots (a name each) are one mapping per model
    and device kind, not one per inverter."""
    fields = field_set(GEN3)
    a = SnapshotAssembler(GEN3, "SA1234G567", fields, LONDON)
    b = SnapshotAssembler(GEN3, "SA7654G321", fields, LONDON)
    assert a._gate.slots is b._gate.slots
    assert a._device_gate(0x32).slots is b._device_gate(0x33).slots
    assert a._device_gate(0x32).slots is not a._gate.slots
    assert SnapshotAssembler(GEN1, "SA1111G111", field_set(GEN1), LONDON)._gate.slots is not (
        a._gate.slots
    )
    # Judging through either keeps its own values; a name one gate adds grows the other's lists
    # when it first judges it.
    plain = next(f for f in fields.inverter if f.name == "Grid_Voltage")
    a._gate.check(plain, 240.0, now=1.0)
    b._gate.check(plain, 250.0, now=1.0)
    assert (a._gate.last("Grid_Voltage"), b._gate.last("Grid_Voltage")) == (240.0, 250.0)
    extra = replace(plain, name="Not_In_The_Map")
    a._gate.check(extra, 1.0, now=2.0)
    assert b._gate.last("Not_In_The_Map") is None
    assert b._gate.check(extra, 2.0, now=2.0).value == 2.0
    assert a._gate.last("Not_In_The_Map") == 1.0
    b._gate.forget()
    assert b._gate.last("Grid_Voltage") is None
    assert a._gate.last("Grid_Voltage") == 240.0


def test_time_slot_texts_are_shared_and_unchanged() -> None:
    text = time_slot(130, 445)
    assert text == "TimeSlot(start=datetime.time(1, 30), end=datetime.time(4, 45))"
    assert time_slot(130, 445) is text  # one text for every snapshot of every inverter
    assert time_slot(130, 2400) == "TimeSlot(start=None, end=None)"
    assert time_slot(130.0, 445) == "TimeSlot(start=None, end=None)"  # not an int: no time
    assert time_slot(True, 445) == time_slot(1, 445)  # as before: a bool is an int
    assert time_slot(None, 445) == "TimeSlot(start=None, end=None)"


def _page(function: FunctionCode, base: int, values: Sequence[int]) -> ReadResponse:
    return ReadResponse(0x11, function, b"SA1234G567", base, tuple(values))


def _holding() -> list[int]:
    hr = [0] * 60
    hr[0], hr[19], hr[21] = 0x2001, 308, 308  # a Gen3 hybrid
    return hr


def test_caches_of_every_inverter_share_the_register_numbers() -> None:
    one, two = RegisterCache(), RegisterCache()
    for cache in (one, two):
        cache.offer(_page(FunctionCode.READ_INPUT, 300, [7] * 60))
    keys = [list(c.registers(0x11, "IR")) for c in (one, two)]
    assert keys[0] == keys[1] == list(range(300, 360))
    assert all(a is b for a, b in zip(*keys, strict=True))  # not 60 new numbers per inverter
    assert one.get(0x11, "IR", 301) == 7


def test_the_page_of_each_register_is_a_list_by_register_number() -> None:
    cache = RegisterCache()
    cache.offer(_page(FunctionCode.READ_INPUT, 60, [7] * 60))
    first = cache.page(0x11, "IR", 60)
    index = cache.page_index(0x11, "IR")
    assert isinstance(index, list)
    assert len(index) == 120  # not one mapping entry per register
    assert index[:60] == [None] * 60
    assert all(p is first for p in index[60:])
    cache.offer(_page(FunctionCode.READ_INPUT, 90, [8] * 60))  # overlaps: the later page wins
    later = cache.page(0x11, "IR", 90)
    assert later is not None
    assert cache.page_of(0x11, "IR", 89) is first
    assert cache.page_of(0x11, "IR", 90) is later
    assert cache.updated_at(0x11, "IR", 149) == later.received
    assert cache.page_of(0x11, "IR", 150) is None
    # A page far above every register map (another client's read) is cached, not indexed.
    cache.offer(_page(FunctionCode.READ_INPUT, 60000, [9] * 60))
    assert cache.get(0x11, "IR", 60001) == 9
    assert len(cache.page_index(0x11, "IR")) == 150
    assert cache.page_of(0x11, "IR", 60001) is None


def test_raw_values_that_did_not_change_are_the_last_snapshots_objects() -> None:
    cache = RegisterCache()
    model = detect_model(dict(enumerate(_holding())))
    fields = field_set(model)
    assembler = SnapshotAssembler(model, "SA1234G567", fields, LONDON, print_raw=True)
    ir = [1000 + i for i in range(60)]
    cache.offer(_page(FunctionCode.READ_HOLDING, 0, _holding()))
    cache.offer(_page(FunctionCode.READ_INPUT, 0, ir))
    now = datetime(2026, 6, 21, 13, tzinfo=LONDON)
    first = assembler.build(cache, now=now).raw
    assert first is not None
    assert assembler.build(cache, now=now).raw is first  # nothing changed: the same tree
    ir[5] += 1  # one register on
    cache.offer(_page(FunctionCode.READ_INPUT, 0, ir))
    later = assembler.build(cache, now=now).raw
    assert later is not None
    fresh = SnapshotAssembler(model, "SA1234G567", fields, LONDON, print_raw=True)
    assert later == fresh.build(cache, now=now).raw  # what a new assembler makes of the cache
    assert later is not first
    assert later != first
    inv, inv_before = later["invertor"], first["invertor"]
    changed = {k for k in inv if inv[k] != inv_before[k]}
    assert changed  # the value on IR 5 (and any made of it)
    assert all(inv[k] is inv_before[k] for k in inv if k not in changed)
    assert later["batteries"] is first["batteries"]


def test_reuse_equal_keeps_types_and_order() -> None:
    old = {"a": 1.0, "b": {"c": 2}, "d": True}
    assert reuse_equal({"a": 1, "b": {"c": 2}, "d": True}, old)["a"].__class__ is int
    assert reuse_equal({"a": 1.0, "b": {"c": 2}, "d": 1}, old)["d"] is 1  # noqa: F632
    swapped = reuse_equal({"d": True, "b": {"c": 2}, "a": 1.0}, old)
    assert list(swapped) == ["d", "b", "a"]
    assert swapped["b"] is old["b"]
    assert reuse_equal({"a": 1.0, "b": {"c": 2}, "d": True}, old) is old
    assert reuse_equal({"a": 1.0}, None) == {"a": 1.0}
