"""The declarative register map: fields, derived values, decoding and the read plan.

One entry per value (``schema.Field``), grouped per family file; ``catalog`` says which apply to
a model and which blocks to read (``plan`` is block geometry only); ``models`` detects the
model from HR0-59. Data and pure functions, no I/O.

May import: errors only (and pymodbus's decoders).
"""

from givtcp_async.registers.battery import BATTERY_FIELDS, LV_BCU_FIELDS
from givtcp_async.registers.catalog import (
    ALL_FIELDS,
    ALL_INVERTER_FIELDS,
    blocks_for,
    derived_for,
    fields_for,
    read_plan,
)
from givtcp_async.registers.decode import decode_field
from givtcp_async.registers.derived import DERIVED
from givtcp_async.registers.ems import EMS_FIELDS
from givtcp_async.registers.evc import EVC_FIELDS
from givtcp_async.registers.gateway import GATEWAY_FIELDS
from givtcp_async.registers.hv import BAMS_FIELDS, BCU_FIELDS, BMU_FIELDS, HV_FIELDS
from givtcp_async.registers.inverter import INVERTER_FIELDS
from givtcp_async.registers.meter import METER_FIELDS
from givtcp_async.registers.plan import (
    Block,
    Cadence,
    ReadPlan,
    battery_blocks,
    candidate_blocks,
    meter_blocks,
    probe_blocks,
)
from givtcp_async.registers.three_phase import THREE_PHASE_FIELDS

__all__ = [
    "ALL_FIELDS",
    "ALL_INVERTER_FIELDS",
    "BAMS_FIELDS",
    "BATTERY_FIELDS",
    "BCU_FIELDS",
    "BMU_FIELDS",
    "DERIVED",
    "EMS_FIELDS",
    "EVC_FIELDS",
    "GATEWAY_FIELDS",
    "HV_FIELDS",
    "INVERTER_FIELDS",
    "LV_BCU_FIELDS",
    "METER_FIELDS",
    "THREE_PHASE_FIELDS",
    "Block",
    "Cadence",
    "ReadPlan",
    "battery_blocks",
    "blocks_for",
    "candidate_blocks",
    "decode_field",
    "derived_for",
    "fields_for",
    "meter_blocks",
    "probe_blocks",
    "read_plan",
]
