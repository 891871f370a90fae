"""The whole register map, and which of it applies to a model.

A field applies to a model when its ``families`` include the model's family (or are None) *and*
every one of its registers lies in a block the model's plan reads: the candidate blocks, plus any
probe block that answered. So an optional page (the HR240 slot page on older Gen3 firmware, the
HR300 page on a Gen3 hybrid) brings its fields in only once a read has confirmed it.
:func:`read_plan` turns that back into the blocks to poll, each once and only if a field uses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from givtcp_async.registers.battery import BATTERY_FIELDS, LV_BCU_FIELDS
from givtcp_async.registers.derived import DERIVED
from givtcp_async.registers.ems import EMS_FIELDS
from givtcp_async.registers.evc import EVC_BLOCKS, EVC_FIELDS
from givtcp_async.registers.gateway import GATEWAY_FIELDS
from givtcp_async.registers.hv import BAMS_FIELDS, BCU_FIELDS, BMU_FIELDS, HV_FIELDS
from givtcp_async.registers.inverter import INVERTER_FIELDS
from givtcp_async.registers.meter import METER_FIELDS
from givtcp_async.registers.models import Model
from givtcp_async.registers.plan import (
    BAMS,
    DETECTION_BLOCK,
    INVERTER,
    LV_BCU,
    Block,
    ReadPlan,
    battery_blocks,
    candidate_blocks,
    fields_covered,
    meter_blocks,
    probe_blocks,
    source_of,
)
from givtcp_async.registers.schema import NOW, Bank, Derived, Field, Source
from givtcp_async.registers.three_phase import THREE_PHASE_FIELDS

# Every field read from the inverter address (0x11), whatever the model.
ALL_INVERTER_FIELDS: Final[tuple[Field, ...]] = (
    INVERTER_FIELDS + THREE_PHASE_FIELDS + EMS_FIELDS + GATEWAY_FIELDS
)
ALL_FIELDS: Final[tuple[Field, ...]] = (
    ALL_INVERTER_FIELDS + BATTERY_FIELDS + METER_FIELDS + HV_FIELDS + LV_BCU_FIELDS
)

_BY_SOURCE: Final[dict[Source, tuple[Field, ...]]] = {
    Source.INVERTER: ALL_INVERTER_FIELDS,
    Source.BATTERY: BATTERY_FIELDS,
    Source.METER: METER_FIELDS,
    Source.BMU: BMU_FIELDS,
    Source.BCU: BCU_FIELDS,
    Source.BAMS: BAMS_FIELDS,
    Source.LV_BCU: LV_BCU_FIELDS,
    Source.EVC: EVC_FIELDS,
}
# One representative address per device kind, to find the page(s) its fields must lie in.
_DEVICE_PAGES: Final[dict[Source, list[Block]]] = {
    Source.BATTERY: battery_blocks([0x32]),
    Source.BMU: battery_blocks([0x50]),
    Source.BCU: battery_blocks([0x70]),
    Source.BAMS: battery_blocks([BAMS]),
    Source.LV_BCU: battery_blocks([LV_BCU]),
    Source.EVC: list(EVC_BLOCKS),  # a charger on its own connection, not behind a dongle
}


def blocks_for(model: Model, available: Iterable[Block] = ()) -> list[Block]:
    """The inverter-address blocks a model's fields may use: candidates plus confirmed probes."""
    return candidate_blocks(model) + list(available)


def fields_for(
    model: Model,
    *,
    source: Source = Source.INVERTER,
    available: Iterable[Block] = (),
) -> list[Field]:
    """The fields of one device kind (default: the inverter itself) that apply to ``model``."""
    fields = [f for f in _BY_SOURCE[source] if f.applies_to(model.family)]
    if source is Source.INVERTER:
        blocks: Sequence[Block] = blocks_for(model, available)
    elif source is Source.METER:
        blocks = meter_blocks([0x01], model.family)
    else:
        blocks = _DEVICE_PAGES[source]
    return fields_covered(fields, blocks)


def derived_for(model: Model, fields: Iterable[Field | Derived]) -> list[Derived]:
    """The derived values for ``model`` whose inputs are all among ``fields``."""
    names = {f.name for f in fields} | {NOW}
    return [d for d in DERIVED if d.applies_to(model.family) and set(d.inputs) <= names]


def _used(block: Block, fields: Iterable[Field]) -> bool:
    return any(block.covers(f.bank, r) for f in fields for r in f.registers)


def read_plan(
    model: Model,
    batteries: Iterable[int] = (),
    meters: Iterable[int] = (),
    available: Iterable[Block] = (),
) -> ReadPlan:
    """The blocks to poll: candidates plus confirmed probes, each once, only if a field uses it.

    ``batteries`` are battery-side addresses (LV packs, HV modules, BCUs, BAMS); ``meters`` the
    meter addresses found; ``available`` the probe blocks that answered.
    """
    probed = {b.key for b in probe_blocks(model)}
    confirmed = [b for b in available if b.key in probed and b.device_address == INVERTER]
    inverter = candidate_blocks(model) + confirmed
    inv_fields = fields_for(model, available=confirmed)
    chosen: dict[tuple[int, Bank, int], Block] = {}
    chosen[DETECTION_BLOCK.key] = DETECTION_BLOCK
    for block in inverter:
        if block.key not in chosen and _used(block, inv_fields):
            chosen[block.key] = block
    for block in battery_blocks(batteries) + meter_blocks(meters, model.family):
        device_fields = fields_for(model, source=source_of(block.device_address))
        if block.key not in chosen and _used(block, device_fields):
            chosen[block.key] = block
    return ReadPlan(tuple(chosen.values()))
