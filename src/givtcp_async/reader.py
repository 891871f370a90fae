"""Plant detection and block refresh over a :class:`DongleConnection` (the I/O half of issue #3).

Detection reads HR(0..59) to learn the model, probes the optional blocks the model may have,
finds the batteries (LV packs by a valid serial; ``num_batteries`` overrides) and meters, and
returns the read plan. Refresh reads blocks one by one through the connection's queue and feeds
every answer through the page gate into the register cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import structlog

from givtcp_async.assemble import INVERTER_ADDRESS, FieldSet
from givtcp_async.cache import RegisterCache
from givtcp_async.connection import DongleConnection, Priority
from givtcp_async.errors import CommunicationError, DetectionError
from givtcp_async.protocol.frames import FunctionCode, ReadResponse
from givtcp_async.quality.identity import check_serial
from givtcp_async.quality.pages import PageVerdict, ascii_from_registers, is_valid_serial
from givtcp_async.registers.catalog import derived_for, fields_for, read_plan
from givtcp_async.registers.models import BatterySide, Model, detect_model
from givtcp_async.registers.plan import (
    BAMS,
    BCUS,
    BMUS,
    LV_BCU,
    LV_PACKS,
    METERS,
    Block,
    Cadence,
    ReadPlan,
    probe_blocks,
    source_of,
)
from givtcp_async.registers.schema import Bank, Source

log = structlog.get_logger(__name__)

_FUNCTION = {Bank.HOLDING: FunctionCode.READ_HOLDING, Bank.INPUT: FunctionCode.READ_INPUT}


@dataclass(frozen=True, slots=True)
class PlantLayout:
    """What detection found: model, serial, devices behind the inverter, and what to read."""

    model: Model
    serial: str
    devices: tuple[int, ...]  # battery-side and meter addresses
    available: tuple[Block, ...]  # optional blocks that answered their probe
    plan: ReadPlan
    fields: FieldSet

    @property
    def batteries(self) -> tuple[int, ...]:
        return tuple(a for a in self.devices if source_of(a) is not Source.METER)

    @property
    def meters(self) -> tuple[int, ...]:
        return tuple(a for a in self.devices if source_of(a) is Source.METER)


@dataclass(slots=True)
class RefreshReport:
    """Outcome of one refresh: blocks read, blocks refused by the page gate, blocks that failed."""

    read: list[Block] = field(default_factory=list)
    reused: list[Block] = field(default_factory=list)  # read moments ago (detection): not again
    refused: list[tuple[Block, PageVerdict]] = field(default_factory=list)
    failed: list[tuple[Block, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.refused


def field_set(model: Model, available: Iterable[Block] = ()) -> FieldSet:
    """The map entries for ``model`` given the optional blocks that answered: one shared
    :class:`FieldSet` per model and blocks (twenty inverters of one kind hold one)."""
    avail = tuple(available)
    key = (model, avail)
    shared = _FIELD_SETS.get(key)
    if shared is None:
        if len(_FIELD_SETS) >= 64:  # a handful of layouts per process; never unbounded
            _FIELD_SETS.pop(next(iter(_FIELD_SETS)))
        shared = _FIELD_SETS[key] = _field_set(model, avail)
    return shared


_FIELD_SETS: dict[tuple[Model, tuple[Block, ...]], FieldSet] = {}


def _field_set(model: Model, avail: Sequence[Block]) -> FieldSet:
    inverter = tuple(fields_for(model, available=avail))
    devices = {
        src: tuple(fields_for(model, source=src))
        for src in (
            Source.BATTERY,
            Source.METER,
            Source.BMU,
            Source.BCU,
            Source.BAMS,
            Source.LV_BCU,
        )
    }
    return FieldSet(inverter=inverter, devices=devices, derived=tuple(derived_for(model, inverter)))


class PlantReader:
    """Reads one plant through one connection into one cache."""

    def __init__(
        self,
        conn: DongleConnection,
        cache: RegisterCache,
        *,
        probe_timeout: float = 1.0,
        probe_meters: bool = True,
    ) -> None:
        self.conn = conn
        self.cache = cache
        self.probe_timeout = probe_timeout
        self.probe_meters = probe_meters

    async def _read(
        self,
        block: Block,
        *,
        priority: Priority = Priority.POLL,
        timeout: float | None = None,
        retries: int | None = None,
        probe: bool = False,
    ) -> ReadResponse:
        return await self.conn.read(
            block.device_address,
            _FUNCTION[block.bank],
            block.base,
            block.count,
            priority=priority,
            timeout=timeout,
            retries=retries,
            probe=probe,
        )

    async def _probe(
        self, block: Block, retries: int = 1, timeout: float | None = None
    ) -> ReadResponse | None:
        try:
            return await self._read(
                block,
                priority=Priority.COMMAND,
                timeout=timeout or self.probe_timeout,
                retries=retries,
                probe=True,
            )
        except CommunicationError:
            return None

    async def detect(
        self,
        *,
        num_batteries: int | None = None,
        meters: bool = True,
        expected_serial: str | None = None,
        known_packs: Callable[[str], Sequence[int] | None] | None = None,
    ) -> PlantLayout:
        """Identify the plant; raises :class:`DetectionError` when HR(0..59) cannot be read and
        :class:`IdentityError` when its serial is not a GivEnergy serial or not
        ``expected_serial`` (``inverters[].serial``).

        ``meters=False`` skips the meter scan (see :meth:`add_meters`). ``known_packs`` gives,
        for the serial, the LV packs an earlier scan found (or None): those are taken without
        probing the six pack addresses (see :meth:`rescan_packs`).
        """
        try:
            first = await self.conn.read(
                INVERTER_ADDRESS,
                FunctionCode.READ_HOLDING,
                0,
                60,
                priority=Priority.COMMAND,
                retries=3,
            )
        except CommunicationError as err:
            raise DetectionError(f"cannot read the inverter's identity: {err}") from err
        serial = ascii_from_registers(first.values[13:18])
        check_serial(
            serial, expected_serial, f"{self.conn.settings.host}:{self.conn.settings.port}"
        )
        self.cache.offer(first)
        holding = dict(enumerate(first.values))
        model = detect_model(holding)
        available: list[Block] = []
        for block in probe_blocks(model):
            resp = await self._probe(block)
            if resp is not None and self.cache.offer(resp) is PageVerdict.OK:
                available.append(block)
        known = known_packs(serial) if known_packs and num_batteries is None else None
        if known is not None and model.battery_side is BatterySide.LV:
            # The remembered packs, without the LV BCU: the pack rescan after the first poll
            # probes it, so a restart's first refresh stays one request shorter (its words are
            # read at the settings cadence and no first value needs them).
            batteries = [a for a in LV_PACKS if a in known]
        else:
            batteries = await self._find_batteries(model, num_batteries)
        devices = [*batteries, *(await self._find_meters(model) if meters else [])]
        plan = read_plan(
            model,
            batteries=[d for d in devices if d not in METERS],
            meters=[d for d in devices if d in METERS],
            available=available,
        )
        layout = PlantLayout(
            model, serial, tuple(devices), tuple(available), plan, field_set(model, available)
        )
        log.info(
            "plant detected",
            serial=serial,
            model=model.name,
            dtc=model.dtc,
            firmware=model.firmware,
            devices=[f"0x{d:02x}" for d in devices],
            blocks=len(plan.blocks),
        )
        return layout

    async def _find_batteries(self, model: Model, num_batteries: int | None) -> list[int]:
        if model.battery_side is BatterySide.NONE or num_batteries == 0:
            return []
        if model.battery_side is BatterySide.LV:
            if num_batteries is not None:
                return list(LV_PACKS)[:num_batteries]
            found = []
            for addr in LV_PACKS:
                resp = await self._probe(Block(addr, Bank.INPUT, 60, 60, Cadence.STATIC))
                if resp is not None and self._is_pack(resp):
                    self.cache.offer(resp)
                    found.append(addr)
            if found and await self._lv_bcu():
                found.append(LV_BCU)
            return found
        # HV: the stack controller, its configuration page and the modules that answer.
        found = []
        bams = await self._probe(Block(BAMS, Bank.INPUT, 60, 5, Cadence.STATIC), retries=0)
        if bams is not None:  # its counts: read again at the settings cadence (plan.py)
            self.cache.offer(bams)
            found.append(BAMS)
        for addr in BCUS:
            if (
                await self._probe(Block(addr, Bank.INPUT, 60, 60, Cadence.STATIC), retries=0)
                is None
            ):
                break
            found.append(addr)
        limit = len(BMUS) if num_batteries is None else num_batteries
        for addr in list(BMUS)[:limit]:
            resp = await self._probe(Block(addr, Bank.INPUT, 60, 60, Cadence.STATIC), retries=0)
            if resp is None or not any(resp.values):
                break
            found.append(addr)
        return found

    async def _lv_bcu(self) -> bool:
        """Whether 0x31 carries LV BCU data: IR60-63 not all zero (a unit without it answers
        zeros there, SPEC captures); one short probe, read later at the settings cadence."""
        resp = await self._probe(
            Block(LV_BCU, Bank.INPUT, 60, 60, Cadence.SLOW),
            retries=0,
            timeout=min(self.probe_timeout, 0.5),
        )
        if resp is None or not any(resp.values[:4]):
            return False
        return self.cache.offer(resp) is PageVerdict.OK

    @staticmethod
    def _is_pack(resp: ReadResponse) -> bool:
        return is_valid_serial(ascii_from_registers(resp.values[50:55]))

    async def _find_meters(self, model: Model) -> list[int]:
        if not self.probe_meters:
            return []
        found = []
        for addr in METERS:
            # Absent meters time out on some models: a short timeout keeps the scan brief.
            resp = await self._probe(
                Block(addr, Bank.INPUT, 60, 30, Cadence.STATIC),
                retries=0,
                timeout=min(self.probe_timeout, 0.5),
            )
            if resp is not None and resp.values[0] != 0:
                found.append(addr)
        return found

    async def rescan_packs(self, layout: PlantLayout) -> PlantLayout:
        """``layout`` with the LV packs that answer a probe now (after a remembered scan)."""
        if layout.model.battery_side is not BatterySide.LV:
            return layout
        packs = await self._find_batteries(layout.model, None)
        if tuple(packs) != layout.batteries:
            log.info("battery packs changed", serial=layout.serial,
                     packs=[f"0x{a:02x}" for a in packs])  # fmt: skip
        return with_devices(layout, batteries=packs)

    async def add_meters(self, layout: PlantLayout) -> PlantLayout:
        """``layout`` with the meters that answer a probe (for a detection that skipped them)."""
        meters = await self._find_meters(layout.model)
        if meters:
            log.info("meters found", serial=layout.serial, meters=[f"0x{m:02x}" for m in meters])
        return with_devices(layout, meters=meters)

    async def refresh(
        self,
        blocks: Sequence[Block],
        *,
        priority: Priority = Priority.POLL,
        reuse_within: float = 0.0,
    ) -> RefreshReport:
        """Read ``blocks`` in order; failures are reported, never raised.

        A block our own read fetched less than ``reuse_within`` seconds ago (detection, just
        before the first refresh) is not read again: it is reported in ``reused``.
        """
        report = RefreshReport()
        for block in blocks:
            if reuse_within > 0 and self.cache.read_within(
                block.device_address, block.bank.value, block.base, block.count, reuse_within
            ):
                report.reused.append(block)
                continue
            if not self.conn.connected:
                # Queueing reads behind a dead link only delays the next poll: fail them now.
                report.failed.append((block, "NotConnected: link down"))
                continue
            try:
                resp = await self._read(block, priority=priority)
            except CommunicationError as err:
                report.failed.append((block, f"{type(err).__name__}: {err}"))
                continue
            verdict = self.cache.offer(resp)
            if verdict is PageVerdict.OK:
                report.read.append(block)
            else:
                report.refused.append((block, verdict))
        return report


def with_devices(
    layout: PlantLayout,
    *,
    batteries: Sequence[int] | None = None,
    meters: Sequence[int] | None = None,
) -> PlantLayout:
    """``layout`` with these batteries and/or meters (a scan's or a remembered result)."""
    new_batteries = list(layout.batteries if batteries is None else batteries)
    new_meters = [m for m in (layout.meters if meters is None else meters) if m in METERS]
    if new_batteries == list(layout.batteries) and new_meters == list(layout.meters):
        return layout
    plan = read_plan(
        layout.model, batteries=new_batteries, meters=new_meters, available=layout.available
    )
    return replace(layout, devices=(*new_batteries, *new_meters), plan=plan)
