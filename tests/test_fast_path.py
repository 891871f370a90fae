"""The snapshot's hot path gives what the reference path gives (issue #16).

Compiled decoders against :func:`decode_field` (pymodbus's conversion) for every field of the
map; freshness judged per page; one clock read per build.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from givtcp_async.assemble import FieldSet, SnapshotAssembler
from givtcp_async.cache import RegisterCache
from givtcp_async.protocol.frames import FunctionCode, ReadResponse, WriteResponse
from givtcp_async.quality.gates import Reading
from givtcp_async.registers import ALL_FIELDS, derived_for, fields_for
from givtcp_async.registers.decode import apply_scale, compile_decoder, decode_field
from givtcp_async.registers.models import detect_model
from givtcp_async.registers.schema import Enc, Field
from givtcp_async.sinks import state_topics
from givtcp_async.sinks.state_topics import StateTopics
from givtcp_async.snapshot import Snapshot

LONDON = ZoneInfo("Europe/London")
SERIAL = b"SA1234G567"
EDGES = (0, 1, 2, 59, 100, 1630, 2359, 2400, 0x7FFF, 0x8000, 0x8001, 0xFFFE, 0xFFFF)


def _words(rng: random.Random, field: Field) -> dict[int, int]:
    return {r: rng.choice(EDGES) if rng.random() < 0.5 else rng.randrange(0x10000)
            for r in field.registers}  # fmt: skip


@pytest.mark.parametrize("field", ALL_FIELDS, ids=lambda f: f.name)
def test_compiled_decoder_equals_reference(field: Field) -> None:
    decode = compile_decoder(field)
    rng = random.Random(field.name)
    for _ in range(60):
        words = _words(rng, field)
        expected = decode_field(field, words.get)
        got = decode(words.get)
        assert type(got) is type(expected), (words, got, expected)
        assert got == expected or (got != got and expected != expected), (words, got, expected)
    missing = dict.fromkeys(field.registers[1:], 7)  # the first register never read
    assert decode(missing.get) is None


@pytest.mark.parametrize("scale", [0.1, 0.01, 0.001, 0.5, 0.25, 2.0, 10.0])
def test_scaled_words_equal_apply_scale(scale: float) -> None:
    field = Field("X", (), ALL_FIELDS[0].bank, (0,), Enc.S16, scale=scale)
    decode = compile_decoder(field)
    for w in range(0, 0x10000, 7):
        raw = w - 0x10000 if w & 0x8000 else w
        assert decode({0: w}.get) == apply_scale(raw, scale)


def test_compiled_decoder_refuses_a_field_short_of_registers() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        compile_decoder(Field("X", (), ALL_FIELDS[0].bank, (0,), Enc.U32))


class Clock:
    """A monotonic clock that counts its reads."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.t


def _page(function: FunctionCode, base: int, values: list[int]) -> ReadResponse:
    return ReadResponse(0x11, function, SERIAL, base, tuple(values))


def _holding() -> list[int]:
    hr = [0] * 60
    hr[0], hr[19], hr[21] = 0x2001, 449, 308  # a Gen3 hybrid
    return hr


def test_one_clock_read_per_build_and_freshness_per_page() -> None:
    clock = Clock()
    cache = RegisterCache(clock)
    model = detect_model(dict(enumerate(_holding())))
    inverter = tuple(fields_for(model))
    fields = FieldSet(inverter, derived=tuple(derived_for(model, inverter)))
    assembler = SnapshotAssembler(model, "SA1234G567", fields, LONDON, clock=clock)
    cache.offer(_page(FunctionCode.READ_HOLDING, 0, _holding()))
    ir = [0] * 60
    ir[5] = 1234  # a value on IR 0-59
    cache.offer(_page(FunctionCode.READ_INPUT, 0, ir))
    now = datetime(2026, 6, 21, 13, tzinfo=LONDON)
    reads = clock.reads
    first = assembler.build(cache, now=now)
    assert clock.reads - reads == 1
    ir_names = [f.name for f in fields.inverter if f.bank.value == "IR" and f.registers[0] < 60]
    hr_names = [f.name for f in fields.inverter if f.bank.value == "HR" and f.registers[0] < 60]
    # Some values are rejected (all-zero pages); the ones accepted at first are judged below.
    ir_names = [n for n in ir_names if not first.values[n].stale]
    hr_names = [n for n in hr_names if not first.values[n].stale]
    assert len(ir_names) > 5
    assert len(hr_names) > 5
    # 100 s on: the IR page (90 s) is stale as a whole, the HR page (400 s) fresh as a whole.
    clock.t += 100
    # A write echo changes one HR register's value; it does not refresh the stale IR page.
    cache.offer_write(WriteResponse(0x11, SERIAL, 20, 1))
    later = assembler.build(cache, now=now)
    assert all(later.values[n].stale for n in ir_names)
    assert not any(later.values[n].stale for n in hr_names)
    assert {d.name for d in fields.derived} <= set(later.values)


def _snapshot(values: Mapping[str, object]) -> Snapshot:
    model = detect_model(dict(enumerate(_holding())))
    specs = {f.name: f for f in fields_for(model) if f.name in values}
    readings = {n: Reading(v) for n, v in values.items()}
    now = datetime(2026, 6, 21, 13, tzinfo=LONDON)
    return Snapshot("SA1234G567", model, now, readings, specs)


def test_mqtt_changes_only_compares_values_before_formatting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topics = StateTopics("GivEnergy", publish_json=False)
    first = {"SOC": 50, "Battery_Voltage": 51.2, "Grid_Power": 120}
    assert len(topics.messages(_snapshot(first))) == 3
    formatted: list[object] = []
    original = state_topics.payload_text

    def counting(value: object) -> str:
        formatted.append(value)
        return original(value)

    monkeypatch.setattr(state_topics, "payload_text", counting)
    assert topics.messages(_snapshot(first)) == []
    assert formatted == []  # nothing changed: nothing formatted
    # A change past the third decimal is formatted, reads the same as the value before (formatted
    # again: payloads are not kept, issue #16), and is not published.
    assert topics.messages(_snapshot({**first, "Battery_Voltage": 51.2001})) == []
    assert formatted == [51.2001, 51.2]
    formatted.clear()
    (message,) = topics.messages(
        _snapshot({**first, "Battery_Voltage": 51.2001, "Grid_Power": 130})
    )
    assert message.topic.endswith("/Grid_Power")
    assert message.payload == "130"
    assert formatted == [130]  # a changed int always reads differently: formatted once
