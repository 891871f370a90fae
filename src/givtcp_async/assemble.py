"""Turn the register cache into a validated :class:`~givtcp_async.snapshot.Snapshot`.

Decoding follows the register map; every value passes the value gates; derived values are
computed only from fresh inputs. Values whose page was not refreshed recently enough are
republished as their last good value, marked stale, and disappear after ``stale_after``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from typing import Any

import structlog

from givtcp_async.cache import RegisterCache
from givtcp_async.layout import TreeLayout, device_paths
from givtcp_async.quality.gates import (
    GateSettings,
    Reading,
    Rule,
    ValueGate,
    gate_slots,
    make_rule,
)
from givtcp_async.quality.pages import is_valid_serial
from givtcp_async.registers.decode import Decoder, compile_decoder, decoder_of
from givtcp_async.registers.models import Model
from givtcp_async.registers.plan import Block, Cadence, page_cadence, source_of
from givtcp_async.registers.raw import composites, raw_value
from givtcp_async.registers.schema import NOW, Bank, Derived, Enc, Field, Source
from givtcp_async.snapshot import DeviceSnapshot, Snapshot, Spec

log = structlog.get_logger(__name__)

INVERTER_ADDRESS = 0x11


# Pack-level totals published at inverter level too when the inverter has no register of its
# own for them (every model but Gen1); the packs of one plant report the same counter.
LIFTED_PACK_TOTALS = ("Battery_Charge_Energy_Total_kWh", "Battery_Discharge_Energy_Total_kWh")
LIFTED_PATH = ("Energy", "Total")


class _Unrefreshed:
    """A value whose page was not refreshed recently enough: the gate republishes the last good
    one, stale."""


UNREFRESHED = _Unrefreshed()


class _Laps:
    """Adds the CPU time since the previous lap to ``timings[stage]``; nothing when None."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.process_time() if timings is not None else 0.0

    def __call__(self, stage: str) -> None:
        if self.timings is not None:
            now = time.process_time()
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.last
            self.last = now


@dataclass(frozen=True, slots=True)
class FieldSet:
    """The map entries that apply to one model: the inverter's, each device kind's, derived."""

    inverter: tuple[Field, ...]
    devices: Mapping[Source, tuple[Field, ...]] = field(default_factory=dict)
    derived: tuple[Derived, ...] = ()

    def specs(self) -> dict[str, Spec]:
        every: list[Spec] = [*self.inverter, *self.derived]
        return {s.name: s for s in every}


_BANKS = ("HR", "IR")
_CLOCKS = frozenset({Enc.DATETIME, Enc.DATETIME_FULL})  # fields that are a clock

# One field compiled for the hot path, made once per assembler (a plain tuple: unpacked in the
# loops): name, bank (0 HR, 1 IR), the register whose page decides freshness, decoder, gate rule,
# whether a naive datetime (the inverter's clock) gets the assembler's zone.
_Entry = tuple[str, int, int, Decoder, Rule, bool]


def _compile(specs: Sequence[Field], model: Model) -> tuple[_Entry, ...]:
    """The entries of ``specs`` for ``model``: made once and shared by every assembler of the
    same model (twenty inverters of one kind hold one copy)."""
    key = (model, tuple(map(id, specs)))
    hit = _COMPILED.get(key)
    if hit is not None:
        return hit[1]
    entries = tuple(
        (
            f.name,
            _BANKS.index(f.bank.value),
            f.registers[0],
            compile_decoder(f),
            make_rule(f, model),
            f.enc in _CLOCKS,
        )
        for f in specs
    )
    if len(_COMPILED) >= 64:  # a handful of models per process; never unbounded
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[key] = (tuple(specs), entries)  # the specs keep their ids from being reused
    return entries


_COMPILED: dict[tuple[Model, tuple[int, ...]], tuple[tuple[Field, ...], tuple[_Entry, ...]]] = {}


_Statics = tuple[
    Mapping[str, Spec],
    Mapping[Source, Mapping[str, Spec]],
    tuple[tuple[Derived, Rule], ...],
    dict[Source, dict[str, int]],
]


def _statics(fields: FieldSet, model: Model) -> _Statics:
    """What an assembler looks specs up in (every spec by name, each device kind's, the derived
    values' rules): made once per field set and model and shared, read-only, by every assembler
    of it (each snapshot hands ``specs`` on to the sinks); and the value gates' slots by device
    kind, which the gates of every assembler of it share (they only grow)."""
    key = (id(fields), model)
    hit = _STATICS.get(key)
    if hit is not None and hit[0] is fields:
        return hit[1]
    specs = fields.specs()
    pack_fields = {f.name: f for f in fields.devices.get(Source.BATTERY, ())}
    for name in LIFTED_PACK_TOTALS:
        if name not in specs and name in pack_fields:
            specs[name] = replace(pack_fields[name], path=LIFTED_PATH)
    device_specs = {src: {f.name: f for f in fs} for src, fs in fields.devices.items()}
    derived = tuple((d, make_rule(d, model)) for d in fields.derived)
    slots = {src: gate_slots() for src in (Source.INVERTER, *fields.devices)}
    statics: _Statics = (specs, device_specs, derived, slots)
    if len(_STATICS) >= 64:  # a handful of models per process; never unbounded
        _STATICS.pop(next(iter(_STATICS)))
    _STATICS[key] = (fields, statics)  # the field set keeps its id from being reused
    return statics


_STATICS: dict[tuple[int, Model], tuple[FieldSet, _Statics]] = {}


@dataclass
class SnapshotAssembler:
    """Builds successive snapshots of one inverter; owns the gates' memory of last good values."""

    model: Model
    serial: str
    fields: FieldSet
    tz: tzinfo
    gate_settings: GateSettings = field(default_factory=GateSettings)
    fresh_age: Mapping[str, float] = field(default_factory=lambda: {"IR": 90.0, "HR": 400.0})
    print_raw: bool = False
    layout: TreeLayout = TreeLayout.GIVTCP3
    clock: Callable[[], float] = time.monotonic
    _gate: ValueGate = field(init=False)
    _device_gates: dict[str, ValueGate] = field(init=False, default_factory=dict)
    _specs: Mapping[str, Spec] = field(init=False)
    _device_specs: Mapping[Source, Mapping[str, Spec]] = field(init=False)
    _compiled: dict[Source, tuple[_Entry, ...]] = field(init=False)
    _derived: tuple[tuple[Derived, Rule], ...] = field(init=False)
    _clock_entry: _Entry | None = field(init=False)
    _slots: dict[Source, dict[str, int]] = field(init=False)
    # The raw tree of the last snapshot: what did not change is handed on as the same objects.
    _raw_before: dict[str, Any] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._specs, self._device_specs, self._derived, self._slots = _statics(
            self.fields, self.model
        )
        self._gate = ValueGate(
            self.model, self.gate_settings, self.clock, slots=self._slots[Source.INVERTER]
        )
        self._compiled = {
            Source.INVERTER: _compile(
                [f for f in self.fields.inverter if f.source is Source.INVERTER], self.model
            ),
            **{src: _compile(fs, self.model) for src, fs in self.fields.devices.items()},
        }
        clock_fields = [f for f in self.fields.inverter if f.enc is Enc.DATETIME]
        self._clock_entry = _compile(clock_fields[:1], self.model)[0] if clock_fields else None

    @property
    def rejections(self) -> dict[str, int]:
        """Rejected readings by "field:reason", over this assembler's lifetime."""
        out: dict[str, int] = {}
        for gate in (self._gate, *self._device_gates.values()):
            for (name, reason), n in gate.rejections.items():
                key = f"{name}:{reason.value}"
                out[key] = out.get(key, 0) + n
        return out

    def _values(
        self,
        cache: RegisterCache,
        address: int,
        entries: Sequence[_Entry],
        stale_pages: set[int],
        now: float,
        missed: Sequence[Block] = (),
    ) -> list[Any]:
        """The decoded value of each entry at ``address``, or :data:`UNREFRESHED` where its
        page is too old (``stale_pages``: their ids) or was missed by this refresh."""
        out: list[Any] = []
        append = out.append
        pages = tuple(cache.page_index(address, b) for b in _BANKS)
        getters = tuple(cache.registers(address, b).get for b in _BANKS)
        missed_here = [b for b in missed if b.device_address == address]
        if not missed_here and not stale_pages:  # the common case: the loop below, written out
            for _, bank, first, decode, _rule, localise in entries:
                try:
                    page = pages[bank][first]
                except IndexError:  # past the last page read
                    page = None
                if page is None:
                    append(UNREFRESHED)
                elif localise:
                    value = decode(getters[bank])
                    if isinstance(value, datetime):
                        value = self._clock_now(value, page.received, now)
                    append(value)
                else:
                    append(decode(getters[bank]))
            return out
        for _, bank, first, decode, rule, localise in entries:
            try:
                page = pages[bank][first]
            except IndexError:
                page = None
            if page is None or (stale_pages and id(page) in stale_pages):
                append(UNREFRESHED)
                continue
            spec = rule.spec
            if (
                missed_here
                and isinstance(spec, Field)
                and any(b.covers(spec.bank, r) for b in missed_here for r in spec.registers)
            ):
                append(UNREFRESHED)
                continue
            value = decode(getters[bank])
            if localise and isinstance(value, datetime):
                value = self._clock_now(value, page.received, now)
            append(value)
        return out

    def _clock_now(self, value: datetime, received: float, now: float) -> datetime:
        """A clock field as of now: its page (a settings page, read every settings_interval)
        was read a while ago and the clock ran on since, so it moves at every poll. The gates
        check the result like any reading."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.tz)
        if now - received >= 1:
            value += timedelta(seconds=int(now - received))  # whole seconds, as the clock shows
        return value

    def _stale_pages(self, cache: RegisterCache, now: float) -> set[int]:
        """The ids of the cached pages too old to publish from: freshness is judged per page, by
        the age of the cadence it is read at (``page_cadence``): a page read every poll against
        the live pages' age, one read at the settings cadence (holding registers, the HV BAMS, the
        LV BCU) against the settings' age."""
        live, slow = self.fresh_age.get("IR", 90.0), self.fresh_age.get("HR", 400.0)
        return {
            id(p)
            for p in cache.pages()
            if now - p.received > (live if page_cadence(*p.key) is Cadence.FAST else slow)
        }

    @staticmethod
    def _judge(
        gate: ValueGate,
        entries: Sequence[_Entry],
        values: Sequence[Any],
        now: float,
        local: datetime,
        inverter_time: datetime | None,
    ) -> dict[str, Reading]:
        """The readings ``gate`` makes of decoded ``values`` at monotonic time ``now``."""
        out: dict[str, Reading] = {}
        judge = gate.judge
        for (name, _, _, _, rule, _), value in zip(entries, values, strict=True):
            out[name] = (
                gate.unrefreshed(rule, now)
                if value is UNREFRESHED
                else judge(rule, value, now, local, inverter_time)
            )
        return out

    def _inverter_time(self, cache: RegisterCache) -> datetime | None:
        if self._clock_entry is None:
            return None
        _, bank, _, decode, _, _ = self._clock_entry
        value = decode(cache.registers(INVERTER_ADDRESS, _BANKS[bank]).get)
        if isinstance(value, datetime):
            return value.replace(tzinfo=self.tz) if value.tzinfo is None else value
        return None

    def _derive(
        self,
        readings: dict[str, Reading],
        now: float,
        local: datetime,
        inverter_time: datetime | None,
    ) -> None:
        for spec, rule in self._derived:
            self._derive_one(spec, rule, readings, now, local, inverter_time)

    def _derive_one(
        self,
        spec: Derived,
        rule: Rule,
        readings: dict[str, Reading],
        now: float,
        local: datetime,
        inverter_time: datetime | None,
    ) -> None:
        """``readings[spec.name]``: computed from fresh inputs only (:data:`NOW` is ``local``)."""
        values: dict[str, Any] = {}
        for n in spec.inputs:
            if n == NOW:
                values[n] = local
                continue
            r = readings.get(n)
            if r is None or r.stale or r.value is None:
                readings[spec.name] = self._gate.unrefreshed(rule, now)
                return
            values[n] = r.value
        try:
            value = spec.compute(values, self.model)
        except (ArithmeticError, TypeError, ValueError) as err:
            log.warning("derived value failed", field=spec.name, error=repr(err))
            value = None
        readings[spec.name] = self._gate.judge(rule, value, now, local, inverter_time)

    def build(
        self,
        cache: RegisterCache,
        *,
        devices: Sequence[int] = (),
        now: datetime,
        stats: Mapping[str, Any] | None = None,
        missed: Sequence[Block] = (),
        timings: dict[str, float] | None = None,
    ) -> Snapshot:
        """A snapshot of what the cache holds now; ``now`` must be timezone-aware.

        ``devices`` are the battery-side and meter addresses detection found; ``missed`` the
        blocks this refresh asked for but did not get (failed or refused by the page gate):
        their values are republished as last good, stale. ``timings``, when given, gets the CPU
        seconds of each stage added to it: decode, gates, derived, assemble (the benchmark).
        """
        lap = _Laps(timings)
        mono = self.clock()  # the one clock read of this build
        local = now.astimezone(self.tz)
        inverter_time = self._inverter_time(cache)
        stale_pages = self._stale_pages(cache, mono)
        plan = [(INVERTER_ADDRESS, self._gate, self._compiled[Source.INVERTER])] + [
            (addr, self._device_gate(addr), self._compiled.get(source_of(addr), ()))
            for addr in devices
        ]
        decoded = [
            self._values(cache, addr, entries, stale_pages, mono, missed)
            for addr, _, entries in plan
        ]
        lap("decode")
        readings, *per_device = [
            self._judge(gate, entries, values, mono, local, inverter_time)
            for (_, gate, entries), values in zip(plan, decoded, strict=True)
        ]
        lap("gates")
        snaps = [
            self._device_snapshot(addr, device_readings)
            for (addr, _, _), device_readings in zip(plan[1:], per_device, strict=True)
        ]
        # A pack slot read only because num_batteries asks for it, where no pack has answered
        # yet, has no serial: it is not a battery to publish (GivTCP skips it too). A serial
        # that is not GivEnergy's (it names the device's topics) is never published either.
        snaps = [
            s
            for s in snaps
            if (s.serial or source_of(s.address) is not Source.BATTERY)
            and (not s.serial or is_valid_serial(s.serial))
        ]
        batteries = tuple(d for d in snaps if source_of(d.address) is not Source.METER)
        meters = tuple(d for d in snaps if source_of(d.address) is Source.METER)
        self._lift_pack_totals(readings, batteries)
        lap("assemble")
        self._derive(readings, mono, local, inverter_time)
        lap("derived")
        raw: dict[str, Any] | None = None
        if self.print_raw and self.layout is TreeLayout.GIVTCP2:
            raw = {"invertor": cache.raw(INVERTER_ADDRESS)}
            for snap in snaps:
                raw[snap.serial or f"0x{snap.address:02x}"] = cache.raw(snap.address)
        elif self.print_raw:
            raw = self._named_raw(cache, readings, batteries, meters)
        if raw is not None:
            raw = self._raw_before = reuse_equal(raw, self._raw_before)
        snapshot = Snapshot(
            serial=self.serial,
            model=self.model,
            taken_at=local,
            values=readings,
            specs=self._specs,
            batteries=batteries,
            meters=meters,
            stats=dict(stats or {}),
            raw=raw,
            layout=self.layout,
        )
        lap("assemble")
        return snapshot

    def patch(
        self,
        previous: Snapshot,
        cache: RegisterCache,
        registers: Iterable[int],
        *,
        now: datetime,
        stats: Mapping[str, Any] | None = None,
    ) -> Snapshot:
        """``previous`` with what a command changed: the inverter's holding-register fields
        covering ``registers`` decoded again from the cache (the command's read-back is in
        it), the derived values that depend on them, and new ``stats``.

        Only those readings pass the gates again: re-judging an unchanged live value would
        count as a second reading and could confirm a held jump early.
        """
        changed = set(registers)
        local = now.astimezone(self.tz)
        specs = [
            f
            for f in self.fields.inverter
            if f.source is Source.INVERTER
            and f.bank is Bank.HOLDING
            and f.name in previous.specs
            and changed.intersection(f.registers)
        ]
        if not specs:
            return replace(previous, stats=dict(stats or previous.stats))
        getter = cache.getter(INVERTER_ADDRESS, Bank.HOLDING.value)
        inverter_time = self._inverter_time(cache)
        readings = dict(previous.values)
        names: set[str] = set()
        for spec in specs:
            value = decoder_of(spec)(getter)
            if isinstance(value, datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=self.tz)
            readings[spec.name] = self._gate.check(
                spec, value, local_time=local, inverter_time=inverter_time
            )
            names.add(spec.name)
        mono = self.clock()
        for derived, rule in self._derived:
            if names.intersection(derived.inputs):
                self._derive_one(derived, rule, readings, mono, local, inverter_time)
                names.add(derived.name)
        return replace(previous, values=readings, stats=dict(stats or previous.stats))

    def _named_raw(
        self,
        cache: RegisterCache,
        readings: Mapping[str, Reading],
        packs: Sequence[DeviceSnapshot],
        meters: Sequence[DeviceSnapshot] = (),
    ) -> dict[str, Any]:
        """GivTCP 3's ``raw``: every entry with a raw name, in the raw form (registers/raw.py):
        ``invertor`` (the inverter, EMS or Gateway itself), ``batteries`` (LV packs by serial)
        or, on a plant with HV stacks, ``HV_Battery_Stacks/Stack_<i>`` (the BCU's values and
        each module's by its serial), and ``meters/Meter_ID_<n>``, as GivTCP 3.5 lays them out."""
        getters = {b: cache.getter(INVERTER_ADDRESS, b) for b in ("HR", "IR")}
        invertor: dict[str, Any] = {}
        for spec in self.fields.inverter:
            if spec.raw is not None and spec.source is Source.INVERTER:
                value = raw_value(spec, getters[spec.bank.value])
                if value is not None:
                    invertor[spec.raw] = value
        for derived in self.fields.derived:
            reading = readings.get(derived.name)
            if derived.raw is not None and reading is not None and reading.value is not None:
                invertor[derived.raw] = reading.value
        invertor.update(composites(invertor, self.model.family, self.model.device_type_code))
        batteries: dict[str, dict[str, Any]] = {}
        pack_fields = self.fields.devices.get(Source.BATTERY, ())
        for pack in packs:
            if source_of(pack.address) is not Source.BATTERY or not pack.serial:
                continue
            get = cache.getter(pack.address, "IR")
            values = {f.raw: raw_value(f, get) for f in pack_fields if f.raw is not None}
            batteries[pack.serial] = {k: v for k, v in sorted(values.items()) if v is not None}
        out: dict[str, Any] = {"invertor": dict(sorted(invertor.items()))}
        stacks = self._raw_stacks(cache, packs)
        if stacks:
            out["HV_Battery_Stacks"] = stacks
        else:
            out["batteries"] = batteries
        meter_fields = self.fields.devices.get(Source.METER, ())
        named = {
            f"Meter_ID_{m.address}": self._raw_device(cache, m.address, meter_fields)
            for m in sorted(meters, key=lambda m: m.address)
        }
        if named:
            out["meters"] = named
        return out

    @staticmethod
    def _raw_device(cache: RegisterCache, address: int, fields: Iterable[Field]) -> dict[str, Any]:
        get = cache.getter(address, "IR")
        values = {f.raw: raw_value(f, get) for f in fields if f.raw is not None}
        return {k: v for k, v in sorted(values.items()) if v is not None}

    def _raw_stacks(
        self, cache: RegisterCache, devices: Sequence[DeviceSnapshot]
    ) -> dict[str, dict[str, Any]]:
        """GivTCP's ``HV_Battery_Stacks``: ``Stack_<i>`` (i from 0, in BCU address order) with
        the BCU's raw values and each of its modules' under the module's serial."""
        bcus = sorted((d for d in devices if source_of(d.address) is Source.BCU),
                      key=lambda d: d.address)  # fmt: skip
        if not bcus:
            return {}
        paths = device_paths(self.layout, devices)
        bcu_fields = self.fields.devices.get(Source.BCU, ())
        bmu_fields = self.fields.devices.get(Source.BMU, ())
        stacks: dict[str, dict[str, Any]] = {}
        for index, bcu in enumerate(bcus):
            stack = self._raw_device(cache, bcu.address, bcu_fields)
            for module in devices:
                if (
                    source_of(module.address) is Source.BMU
                    and module.serial
                    and paths[module.address][:2] == paths[bcu.address][:2]
                ):
                    stack[module.serial] = self._raw_device(cache, module.address, bmu_fields)
            stacks[f"Stack_{index}"] = stack
        return stacks

    def _lift_pack_totals(
        self, readings: dict[str, Reading], packs: Sequence[DeviceSnapshot]
    ) -> None:
        for name in LIFTED_PACK_TOTALS:
            if name in readings or name not in self._specs:
                continue
            first = next(
                (
                    p.values[name]
                    for p in packs
                    if source_of(p.address) is Source.BATTERY and name in p.values
                ),
                None,
            )
            if first is not None:
                readings[name] = first

    def _device_gate(self, address: int) -> ValueGate:
        gate = self._device_gates.get(str(address))
        if gate is None:
            slots = self._slots.setdefault(source_of(address), gate_slots())
            gate = self._device_gates[str(address)] = ValueGate(
                self.model, self.gate_settings, self.clock, slots=slots
            )
        return gate

    def _device_snapshot(self, address: int, readings: dict[str, Reading]) -> DeviceSnapshot:
        serial = next(
            (str(r.value) for n, r in readings.items() if n.endswith("Serial_Number") and r.value),
            "",
        )
        return DeviceSnapshot(
            address, serial, readings, self._device_specs.get(source_of(address), {})
        )


_ABSENT: Any = object()


def reuse_equal(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """``new`` with every value equal to ``old``'s under the same key (same type) as ``old``'s
    very object, nested dicts alike; ``old`` itself when nothing differs (keys in the same
    order). What did not change since the last snapshot is then not a second copy: each poll
    leaves only what changed behind (issue #16)."""
    if old is None:
        return new
    same = len(new) == len(old)
    for key, value in new.items():
        before = old.get(key, _ABSENT)
        if before is value:
            continue
        if value.__class__ is dict and before.__class__ is dict:
            kept = reuse_equal(value, before)
            new[key] = kept
            same = same and kept is before
        elif before.__class__ is value.__class__ and before == value:
            new[key] = before
        else:
            same = False
    return old if same and all(a == b for a, b in zip(new, old, strict=True)) else new
