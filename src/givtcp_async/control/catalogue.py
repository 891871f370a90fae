"""The one catalogue of control functions served by the CLI, REST and MQTT.

Each :class:`ControlFunction` is declared once: its name and GivTCP aliases, its payload model,
a pure planner that turns a validated payload into register writes (SPEC §5.1), the models it is
available on, an example payload, and the Home Assistant metadata discovery will need. Nothing
here does I/O; :mod:`givtcp_async.control.executor` carries plans out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from givtcp_async.control import payloads as p
from givtcp_async.control.layout import CLOCK, REBOOT_VALUE, Layout, LayoutKind, RateUnit
from givtcp_async.errors import ControlError, UnknownFunction, ValidationFailed
from givtcp_async.registers.models import Model
from givtcp_async.registers.schema import Family

DEFAULT_RESERVE: Final = p.RESERVE_MIN
FULL_C100: Final = 50  # HR111/112 value for "full rate" (0.5 C)
OVERRIDE_OPTIONS: Final = ("Normal", "Cancel", "5", "10", "15", "30", "45", "60", "90", "120",
                           "150", "180", "240")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Write:
    """One single-register write of a plan.

    ``always``: write even if the register already holds the value (reboot).
    ``expect``: write only while the register still holds this value (restores of timed
    overrides leave alone a register someone else changed meanwhile).
    ``restore``: the value was read from the inverter and is written back as it was, so the
    allow-list checks the register but not the value rule (a slot may hold the 60 "unset"
    sentinel, SPEC §4.1).
    """

    register: int
    value: int
    always: bool = False
    expect: int | None = None
    restore: bool = False
    note: str = ""  # how the value was made from the request (rounding), for the result


class Verify(StrEnum):
    EXACT = "exact"  # read back and compare every register
    CLOCK = "clock"  # the six clock registers, within the seconds that passed
    NONE = "none"  # not verifiable (the inverter restarts)


class Platform(StrEnum):
    NUMBER = "number"
    SELECT = "select"
    SWITCH = "switch"
    BUTTON = "button"
    TIME = "time"


# The value of a snapshot field by name (None when unknown): what a model-and-plant dependent
# piece of metadata may look at.
Lookup = Callable[[str], Any]


@dataclass(frozen=True, slots=True)
class HaMeta:
    """How Home Assistant discovery should present a function's entity.

    ``main``: one of the controls a user drives daily (Home Assistant's main category, shown on
    its default dashboard); the rest are "config" entities. ``fine``: a time slot Predbat sets
    (charge/discharge slot 1, the pause slot), offered at a finer step than the others.
    ``real_step``: the step the inverter really stores, from the model and the plant's values
    (a rate in watts stored in C/100 steps); None where unknown, then ``step`` applies.
    """

    platform: Platform
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | Callable[[Model], float] | None = None
    step: float | None = None
    unit: str | None = None
    main: bool = False
    fine: bool = False
    real_step: Callable[[Model, Lookup], float | None] | None = None

    def resolve(self, model: Model | None, lookup: Lookup | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"platform": self.platform.value}
        if self.options:
            out["options"] = list(self.options)
        if self.minimum is not None:
            out["min"] = self.minimum
        maximum = self.maximum(model) if callable(self.maximum) and model else self.maximum
        if maximum is not None and not callable(maximum):
            out["max"] = maximum
        step = self.step
        if self.real_step is not None and model is not None and lookup is not None:
            step = self.real_step(model, lookup) or step
        if step is not None:
            out["step"] = step
        if self.unit is not None:
            out["unit"] = self.unit
        if self.platform is Platform.SWITCH:
            out["payload_on"], out["payload_off"] = "enable", "disable"
        return out


@dataclass(frozen=True, slots=True)
class PlanContext:
    """What a planner may know besides the payload; built by the executor."""

    model: Model
    now: datetime  # inverter-local, timezone-aware
    registers: Mapping[int, int] = field(default_factory=dict)  # fresh values of ``needs``
    saved_reserve: int = DEFAULT_RESERVE  # last reserve < 100 seen (Eco restores it)
    window: tuple[datetime, datetime] | None = None  # timed overrides: start, end (local)

    @property
    def layout(self) -> Layout:
        return Layout(self.model)


class PlanError(ControlError):
    """The device's current state does not allow planning the command (e.g. HR55 reads 0)."""


class FunctionUnavailable(ValidationFailed):
    """The function exists but not on this model."""


Planner = Callable[[Any, PlanContext], list[Write]]
Requirement = Callable[[Layout], str | None]


@dataclass(frozen=True, slots=True)
class ControlFunction:
    """One control function."""

    name: str
    summary: str
    payload: type[p.Payload]
    planner: Planner
    requires: Requirement
    writes: str  # the registers it writes, for people (controls reference, OpenAPI description)
    group: str
    aliases: tuple[str, ...] = ()
    needs: Callable[[Layout], tuple[int, ...]] = lambda _layout: ()
    example: str | Mapping[str, Any] | None = None
    ha: HaMeta | None = None
    mirrors: str | None = None  # the runAll field showing the setting, e.g. Control/Target_SOC
    override: bool = False  # a timed override (forceCharge ...): see overrides.py
    verify: Verify = Verify.EXACT
    local: bool = False  # carried out by the daemon itself (no register written): service.py

    def unavailable_reason(self, model: Model) -> str | None:
        """None when the function works on ``model``, else why not."""
        return self.requires(Layout(model))

    def available(self, model: Model) -> bool:
        return self.unavailable_reason(model) is None

    def parse(self, raw: p.RawPayload, model: Model | None = None) -> p.Payload:
        """Validate a payload in any GivTCP form; raises ValidationFailed."""
        if model is not None:
            reason = self.unavailable_reason(model)
            if reason is not None:
                raise FunctionUnavailable(
                    f"{self.name} is not available on the {model.name} ({model.dtc}): {reason}",
                    [{"field": "function", "value": self.name, "allowed": reason}],
                )
        return p.parse_payload(self.payload, raw, model, function=self.name)

    def plan(self, payload: p.Payload, ctx: PlanContext) -> list[Write]:
        """The register writes, in order. Pure; raises PlanError when it cannot be planned."""
        return self.planner(payload, ctx)

    def json_schema(self) -> dict[str, Any]:
        schema = self.payload.model_json_schema(by_alias=True)
        schema["title"] = self.name
        schema["description"] = f"{self.summary} Writes: {self.writes}."
        return schema

    def describe(self, model: Model | None = None) -> dict[str, Any]:
        """Everything a transport or discovery needs to know, as plain data."""
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "summary": self.summary,
            "writes": self.writes,
            "group": self.group,
            "example": self.example,
            "mirrors": self.mirrors,
            "override": self.override,
            "local": self.local,
            "scalar_field": self.payload.scalar_field,
            "ha": self.ha.resolve(model) if self.ha else None,
            "available": self.available(model) if model else None,
            "schema": self.json_schema(),
        }


@dataclass(frozen=True, slots=True)
class Router:
    """A REST form that names its slot in the payload: ``setChargeSlot {"slot": "3", ...}``."""

    name: str
    target: str  # function name prefix; the slot number is appended
    count: Callable[[Layout], int]


# --- requirements ----------------------------------------------------------------------------


def _need(what: str, getter: Callable[[Layout], object]) -> Requirement:
    def check(layout: Layout) -> str | None:
        return None if getter(layout) is not None else f"the model has no {what}"

    return check


def _battery(layout: Layout) -> str | None:
    return None if layout.battery else "not a battery inverter"


def _single(layout: Layout) -> str | None:
    return None if layout.single else "single-phase inverters only"


def _any(layout: Layout) -> str | None:
    return None


def _all(*reqs: Requirement) -> Requirement:
    def check(layout: Layout) -> str | None:
        return next((r for req in reqs if (r := req(layout)) is not None), None)

    return check


# --- plan helpers ----------------------------------------------------------------------------


def _reg(value: int | None) -> int:
    if value is None:  # requirements keep planners from being asked; this is a bug guard
        raise PlanError("this model has no register for that setting")
    return value


def _hhmm(moment: datetime) -> int:
    return moment.hour * 100 + moment.minute


def override_window(ctx: PlanContext, minutes: int) -> tuple[int, int]:
    start, end = ctx.window or (ctx.now, ctx.now + timedelta(minutes=minutes))
    return _hhmm(start), _hhmm(end)


def watts_per_step(unit: RateUnit, model: Model, capacity_ah: float | None) -> float | None:
    """Watts one step of a charge/discharge rate register stands for (None: capacity unknown).

    C/100 registers: 1 % of the battery's capacity in Wh per hour (HR55 Ah x nominal volts /
    100); percent registers: 1 % of the battery's power limit.
    """
    if unit is RateUnit.PERCENT:
        return p.battery_power_limit(model) / 100
    if not capacity_ah:
        return None
    return capacity_ah * model.nominal_battery_voltage / 100


def watts_to_register(watts: int, unit: RateUnit, model: Model, capacity_ah: int | None) -> int:
    """A charge/discharge rate in W as the register value (SPEC §5.1, §7 #7).

    C/100 registers: 50 (full) at or above the battery's power limit, else the nearest whole
    step (``round(W / (capacity_Wh / 100))``) capped at 50. Percent registers: W as % of the
    limit. Rounded to the nearest step rather than down (GivTCP floors): a value Home Assistant
    offers on the register's own steps comes back as itself, not one step lower.
    """
    limit = p.battery_power_limit(model)
    if unit is RateUnit.PERCENT:
        return max(0, min(100, round(watts * 100 / limit)))
    if watts >= limit:
        return FULL_C100
    step = watts_per_step(unit, model, capacity_ah)
    if step is None:
        raise PlanError("battery capacity (HR55) reads 0 Ah: cannot convert watts to a rate")
    return min(FULL_C100, round(watts / step))


def stored_watts(value: int, unit: RateUnit, model: Model, capacity_ah: int | None) -> int | None:
    """The watts a rate register value stands for, as the runAll read-back shows them."""
    step = watts_per_step(unit, model, capacity_ah)
    if step is None:
        return None
    return round(min(value * step, p.battery_power_limit(model)))


def rate_step(kind: str) -> Callable[[Model, Lookup], float | None]:
    """The watts per register step of the charge or discharge rate, for Home Assistant."""

    def step(model: Model, lookup: Lookup) -> float | None:
        lay = Layout(model)
        reg_unit = lay.charge_rate() if kind == "charge" else lay.discharge_rate()
        if reg_unit is None:
            return None
        watts = watts_per_step(reg_unit[1], model, lookup("Battery_Nominal_Capacity"))
        return round(watts, 3) if watts else None

    return step


def _full_rate(unit: RateUnit) -> int:
    return FULL_C100 if unit is RateUnit.C100 else 100


# --- the catalogue ---------------------------------------------------------------------------

_T = "Timeslots"
_C = "Control"


def _pct(maximum: float = 100, minimum: float = 4, *, main: bool = False) -> HaMeta:
    return HaMeta(Platform.NUMBER, minimum=minimum, maximum=maximum, step=1, unit="%", main=main)


_SWITCH: Final = HaMeta(Platform.SWITCH)
_MAIN_SWITCH: Final = HaMeta(Platform.SWITCH, main=True)
_TIME: Final = HaMeta(Platform.TIME)
_PREDBAT_TIME: Final = HaMeta(Platform.TIME, fine=True)  # a slot Predbat sets
_SLOT1_TIME: Final = HaMeta(Platform.TIME, main=True, fine=True)
_BUTTON: Final = HaMeta(Platform.BUTTON)


def _switch_plan(getter: Callable[[Layout], int | None]) -> Planner:
    def plan(payload: p.SwitchPayload, ctx: PlanContext) -> list[Write]:
        return [Write(_reg(getter(ctx.layout)), int(payload.state))]

    return plan


def _fixed_plan(getter: Callable[[Layout], int | None], value: int) -> Planner:
    def plan(_payload: p.NoPayload, ctx: PlanContext) -> list[Write]:
        return [Write(_reg(getter(ctx.layout)), value)]

    return plan


def _basic() -> list[ControlFunction]:
    charge_enable: Callable[[Layout], int | None] = lambda lay: lay.charge_enable  # noqa: E731
    discharge_enable: Callable[[Layout], int | None] = lambda lay: lay.discharge_enable  # noqa: E731

    def enable_target(payload: p.ChargeTargetEnablePayload, ctx: PlanContext) -> list[Write]:
        lay = ctx.layout
        if payload.state:
            return [Write(_reg(lay.charge_target_enable), 1)]
        return [Write(_reg(lay.charge_target_enable), 0), Write(_reg(lay.charge_target), 100)]

    def disable_target(_payload: p.NoPayload, ctx: PlanContext) -> list[Write]:
        lay = ctx.layout
        return [Write(_reg(lay.charge_target_enable), 0), Write(_reg(lay.charge_target), 100)]

    def charge_target(payload: p.ChargeTargetPayload, ctx: PlanContext) -> list[Write]:
        return [Write(_reg(ctx.layout.charge_target), payload.chargeToPercent)]

    def reserve(payload: p.ReservePayload, ctx: PlanContext) -> list[Write]:
        return [Write(_reg(ctx.layout.reserve), payload.reservePercent)]

    def cutoff(payload: p.CutoffPayload, ctx: PlanContext) -> list[Write]:
        return [Write(_reg(ctx.layout.cutoff), payload.dischargeToPercent)]

    target_enable_req = _need("charge target switch (HR20)", lambda lay: lay.charge_target_enable)
    return [
        ControlFunction(
            "enableChargeTarget",
            "Stop grid charging at the charge target (payload disable = disableChargeTarget).",
            p.ChargeTargetEnablePayload,
            enable_target,
            target_enable_req,
            "HR20 := 1; disable: HR20 := 0, HR116 := 100",
            "charge",
            example="enable",
            ha=_SWITCH,
            mirrors=f"{_C}/Enable_Charge_Target",
        ),
        ControlFunction(
            "disableChargeTarget",
            "Charge to 100 % in charge slots (the target is set to 100 and switched off).",
            p.NoPayload,
            disable_target,
            target_enable_req,
            "HR20 := 0, HR116 := 100",
            "charge",
        ),
        ControlFunction(
            "enableChargeSchedule",
            "Switch AC charging in the charge slots on or off.",
            p.SwitchPayload,
            _switch_plan(charge_enable),
            _need("charge schedule", charge_enable),
            "HR96 (3ph HR1112) := 1/0",
            "charge",
            example="enable",
            ha=_MAIN_SWITCH,
            mirrors=f"{_C}/Enable_Charge_Schedule",
        ),
        ControlFunction(
            "pauseChargeSchedule",
            "Switch AC charging in the charge slots off.",
            p.NoPayload,
            _fixed_plan(charge_enable, 0),
            _need("charge schedule", charge_enable),
            "HR96 (3ph HR1112) := 0",
            "charge",
        ),
        ControlFunction(
            "resumeChargeSchedule",
            "Switch AC charging in the charge slots on.",
            p.NoPayload,
            _fixed_plan(charge_enable, 1),
            _need("charge schedule", charge_enable),
            "HR96 (3ph HR1112) := 1",
            "charge",
        ),
        ControlFunction(
            "enableDischargeSchedule",
            "Switch timed discharge in the discharge slots on or off.",
            p.SwitchPayload,
            _switch_plan(discharge_enable),
            _need("discharge schedule", discharge_enable),
            "HR59 (3ph HR1122) := 1/0",
            "discharge",
            aliases=("enableDishargeSchedule",),
            example="enable",
            ha=_MAIN_SWITCH,
            mirrors=f"{_C}/Enable_Discharge_Schedule",
        ),
        ControlFunction(
            "pauseDischargeSchedule",
            "Switch timed discharge off.",
            p.NoPayload,
            _fixed_plan(discharge_enable, 0),
            _need("discharge schedule", discharge_enable),
            "HR59 (3ph HR1122) := 0",
            "discharge",
        ),
        ControlFunction(
            "resumeDischargeSchedule",
            "Switch timed discharge on.",
            p.NoPayload,
            _fixed_plan(discharge_enable, 1),
            _need("discharge schedule", discharge_enable),
            "HR59 (3ph HR1122) := 1",
            "discharge",
        ),
        ControlFunction(
            "setChargeTarget",
            "Upper SOC for grid charging (effective while the charge target is enabled).",
            p.ChargeTargetPayload,
            charge_target,
            _need("charge target", lambda lay: lay.charge_target),
            "HR116 (3ph HR1111) := 4-100",
            "charge",
            example={"chargeToPercent": "50"},
            ha=_pct(main=True),
            mirrors=f"{_C}/Target_SOC",
        ),
        ControlFunction(
            "setBatteryReserve",
            "Battery reserve: the SOC discharge stops at (100 holds the battery).",
            p.ReservePayload,
            reserve,
            _need("battery reserve", lambda lay: lay.reserve),
            "HR110 (3ph HR1109) := 4-100",
            "battery",
            aliases=("setShallowCharge",),
            example={"dischargeToPercent": "5"},
            ha=_pct(main=True),
            mirrors=f"{_C}/Battery_Power_Reserve",
        ),
        ControlFunction(
            "setBatteryCutoff",
            "Battery discharge cut-off SOC.",
            p.CutoffPayload,
            cutoff,
            _need("discharge cut-off", lambda lay: lay.cutoff),
            "HR114 (3ph HR1078) := 4-100",
            "battery",
            example={"dischargeToPercent": "6"},
            ha=_pct(),
            mirrors=f"{_C}/Battery_Power_Cutoff",
        ),
    ]


def _slot_functions() -> list[ControlFunction]:
    out: list[ControlFunction] = []
    for n in range(1, 11):
        out.extend(_charge_slot(n))
    for n in range(1, 11):
        out.extend(_discharge_slot(n))
    for n in range(1, 4):
        out.extend(_export_slot(n))
    return out


def _slot_req(kind: str, n: int, getter: Callable[[Layout], object]) -> Requirement:
    def check(layout: Layout) -> str | None:
        if getter(layout) is not None:
            return None
        counts = {
            "charge": layout.charge_slots,
            "discharge": layout.discharge_slots,
            "export": layout.export_slots,
        }
        have = counts[kind]
        if n <= have:
            return f"{kind} slot {n} has no such register on this model"
        return f"{kind} slot {n} does not exist (the model has {have})"

    return check


def _charge_slot(n: int) -> list[ControlFunction]:
    def times(lay: Layout) -> tuple[int, int]:
        regs = lay.charge_slot(n)
        if regs is None:
            raise PlanError(f"no charge slot {n}")
        return regs

    def slot(payload: p.ChargeSlotPayload, ctx: PlanContext) -> list[Write]:
        start, end = times(ctx.layout)
        writes = [Write(start, payload.start), Write(end, payload.finish)]
        if payload.chargeToPercent is not None:
            target = ctx.layout.charge_target or ctx.layout.charge_slot_target(n)
            writes.append(Write(_reg(target), payload.chargeToPercent))
        return writes

    def start(payload: p.TimePayload, ctx: PlanContext) -> list[Write]:
        return [Write(times(ctx.layout)[0], payload.time)]

    def end(payload: p.TimePayload, ctx: PlanContext) -> list[Write]:
        return [Write(times(ctx.layout)[1], payload.time)]

    def target(payload: p.ChargeTargetPayload, ctx: PlanContext) -> list[Write]:
        return [Write(_reg(ctx.layout.charge_slot_target(n)), payload.chargeToPercent)]

    req = _slot_req("charge", n, lambda lay: lay.charge_slot(n))
    where = (
        "HR94/95"
        if n == 1
        else "HR243/244 (extended-slot firmware only; never HR31/32)"
        if n == 2
        else f"HR{246 + 3 * (n - 3)}/{247 + 3 * (n - 3)}"
    )
    three = {1: "; 3ph HR1113/1114", 2: "; 3ph HR1115/1116"}.get(n, "")
    ems = f"; EMS HR{2053 + 3 * (n - 1)}/{2054 + 3 * (n - 1)}" if n <= 3 else ""
    target_reg = f"HR{242 + 3 * (n - 1)}" + (f" (EMS HR{2055 + 3 * (n - 1)})" if n <= 3 else "")
    return [
        ControlFunction(
            f"setChargeSlot{n}",
            f"Start and end of charge slot {n}; optional chargeToPercent sets the charge target.",
            p.ChargeSlotPayload,
            slot,
            req,
            f"{where}{three}{ems}; chargeToPercent: HR116 (3ph HR1111, EMS slot target)",
            "slots",
            example={"start": "0100", "finish": "0400", "chargeToPercent": "55"},
        ),
        ControlFunction(
            f"setChargeStart{n}",
            f"Start of charge slot {n}.",
            p.TimePayload,
            start,
            req,
            f"start register of charge slot {n} ({where.split('/')[0]}...)",
            "slots",
            aliases=(f"setEMSChargeStart{n}",) if n <= 3 else (),
            example="01:30",
            ha=_SLOT1_TIME if n == 1 else _TIME,
            mirrors=f"{_T}/Charge_start_time_slot_{n}",
        ),
        ControlFunction(
            f"setChargeEnd{n}",
            f"End of charge slot {n}.",
            p.TimePayload,
            end,
            req,
            f"end register of charge slot {n}",
            "slots",
            aliases=(f"setEMSChargeEnd{n}",) if n <= 3 else (),
            example="04:30",
            ha=_SLOT1_TIME if n == 1 else _TIME,
            mirrors=f"{_T}/Charge_end_time_slot_{n}",
        ),
        ControlFunction(
            f"setChargeTarget{n}",
            f"Charge target SOC of charge slot {n} (extended-slot models, EMS).",
            p.ChargeTargetPayload,
            target,
            _slot_req("charge", n, lambda lay: lay.charge_slot_target(n)),
            f"{target_reg} := 4-100",
            "slots",
            aliases=(f"setEMSChargeTarget{n}",) if n <= 3 else (),
            example="80",
            ha=_pct(),
            mirrors=f"{_C}/Charge_Target_SOC_{n}",
        ),
    ]


def _discharge_slot(n: int) -> list[ControlFunction]:
    def times(lay: Layout) -> tuple[int, int]:
        regs = lay.discharge_slot(n)
        if regs is None:
            raise PlanError(f"no discharge slot {n}")
        return regs

    def slot(payload: p.DischargeSlotPayload, ctx: PlanContext) -> list[Write]:
        start, end = times(ctx.layout)
        writes: list[Write] = []
        if payload.dischargeToPercent is not None:
            floor_reg = ctx.layout.reserve or ctx.layout.discharge_slot_target(n)
            writes.append(Write(_reg(floor_reg), payload.dischargeToPercent))
        writes += [Write(start, payload.start), Write(end, payload.finish)]
        return writes

    def start(payload: p.TimePayload, ctx: PlanContext) -> list[Write]:
        return [Write(times(ctx.layout)[0], payload.time)]

    def end(payload: p.TimePayload, ctx: PlanContext) -> list[Write]:
        return [Write(times(ctx.layout)[1], payload.time)]

    def target(payload: p.DischargeTargetPayload, ctx: PlanContext) -> list[Write]:
        return [Write(_reg(ctx.layout.discharge_slot_target(n)), payload.dischargeToPercent)]

    req = _slot_req("discharge", n, lambda lay: lay.discharge_slot(n))
    where = (
        "HR56/57"
        if n == 1
        else "HR44/45"
        if n == 2
        else f"HR{276 + 3 * (n - 3)}/{277 + 3 * (n - 3)}"
    )
    three = {1: "; 3ph HR1118/1119", 2: "; 3ph HR1120/1121"}.get(n, "")
    ems = f"; EMS HR{2044 + 3 * (n - 1)}/{2045 + 3 * (n - 1)}" if n <= 3 else ""
    target_reg = f"HR{272 + 3 * (n - 1)}" + (f" (EMS HR{2046 + 3 * (n - 1)})" if n <= 3 else "")
    return [
        ControlFunction(
            f"setDischargeSlot{n}",
            f"Start and end of discharge slot {n}; optional dischargeToPercent sets the battery "
            "reserve (as GivTCP does).",
            p.DischargeSlotPayload,
            slot,
            req,
            f"{where}{three}{ems}; dischargeToPercent first: HR110 (3ph HR1109, EMS slot target)",
            "slots",
            example={"start": "0100", "finish": "0400", "dischargeToPercent": "55"},
        ),
        ControlFunction(
            f"setDischargeStart{n}",
            f"Start of discharge slot {n}.",
            p.TimePayload,
            start,
            req,
            f"start register of discharge slot {n}",
            "slots",
            aliases=(f"setEMSDischargeStart{n}",) if n <= 3 else (),
            example="16:00",
            ha=_SLOT1_TIME if n == 1 else _TIME,
            mirrors=f"{_T}/Discharge_start_time_slot_{n}",
        ),
        ControlFunction(
            f"setDischargeEnd{n}",
            f"End of discharge slot {n}.",
            p.TimePayload,
            end,
            req,
            f"end register of discharge slot {n}",
            "slots",
            aliases=(f"setEMSDischargeEnd{n}",) if n <= 3 else (),
            example="19:00",
            ha=_SLOT1_TIME if n == 1 else _TIME,
            mirrors=f"{_T}/Discharge_end_time_slot_{n}",
        ),
        ControlFunction(
            f"setDischargeTarget{n}",
            f"Lower SOC of discharge slot {n} (extended-slot models, EMS).",
            p.DischargeTargetPayload,
            target,
            _slot_req("discharge", n, lambda lay: lay.discharge_slot_target(n)),
            f"{target_reg} := 4-100",
            "slots",
            aliases=(f"setEMSDischargeTarget{n}",) if n <= 3 else (),
            example="20",
            ha=_pct(),
            mirrors=f"{_C}/Discharge_Target_SOC_{n}",
        ),
    ]


def _export_slot(n: int) -> list[ControlFunction]:
    def times(lay: Layout) -> tuple[int, int]:
        regs = lay.export_slot(n)
        if regs is None:
            raise PlanError(f"no export slot {n}")
        return regs

    def slot(payload: p.WindowPayload, ctx: PlanContext) -> list[Write]:
        start, end = times(ctx.layout)
        return [Write(start, payload.start), Write(end, payload.finish)]

    def start(payload: p.TimePayload, ctx: PlanContext) -> list[Write]:
        return [Write(times(ctx.layout)[0], payload.time)]

    def end(payload: p.TimePayload, ctx: PlanContext) -> list[Write]:
        return [Write(times(ctx.layout)[1], payload.time)]

    def target(payload: p.ExportTargetPayload, ctx: PlanContext) -> list[Write]:
        return [Write(_reg(ctx.layout.export_slot_target(n)), payload.exportToPercent)]

    req = _slot_req("export", n, lambda lay: lay.export_slot(n))
    base = 2062 + 3 * (n - 1)
    return [
        ControlFunction(
            f"setExportSlot{n}",
            f"Start and end of EMS export slot {n}.",
            p.WindowPayload,
            slot,
            req,
            f"EMS HR{base}/{base + 1}",
            "ems",
            example={"start": "16:00", "finish": "19:00"},
        ),
        ControlFunction(
            f"setExportStart{n}",
            f"Start of EMS export slot {n}.",
            p.TimePayload,
            start,
            req,
            f"EMS HR{base}",
            "ems",
            example="16:30",
            ha=_TIME,
            mirrors=f"{_T}/Export_start_time_slot_{n}",
        ),
        ControlFunction(
            f"setExportEnd{n}",
            f"End of EMS export slot {n}.",
            p.TimePayload,
            end,
            req,
            f"EMS HR{base + 1}",
            "ems",
            example="18:30",
            ha=_TIME,
            mirrors=f"{_T}/Export_end_time_slot_{n}",
        ),
        ControlFunction(
            f"setExportTarget{n}",
            f"Lower SOC of EMS export slot {n}.",
            p.ExportTargetPayload,
            target,
            _slot_req("export", n, lambda lay: lay.export_slot_target(n)),
            f"EMS HR{base + 2} := 4-100",
            "ems",
            example="30",
            ha=_pct(),
            mirrors=f"{_C}/Export_Target_SOC_{n}",
        ),
    ]


def _modes() -> list[ControlFunction]:
    def battery_mode(payload: p.BatteryModePayload, ctx: PlanContext) -> list[Write]:
        lay = ctx.layout
        eco, sched, reserve = _reg(lay.eco), _reg(lay.discharge_enable), _reg(lay.reserve)
        m = p.BatteryMode
        match payload.mode:
            case m.DYNAMIC:
                return [Write(reserve, 4), Write(sched, 0), Write(eco, 1)]
            case m.STORAGE_DEFAULT_SLOT:
                slot1 = lay.discharge_slot(1)
                if slot1 is None:
                    raise PlanError("no discharge slot 1")
                s1 = slot1[0]
                return [
                    Write(reserve, 100),
                    Write(sched, 1),
                    Write(eco, 1),
                    Write(s1, 1600),
                    Write(s1 + 1, 700),
                ]
            case m.STORAGE_KEEP_SLOTS:
                return [Write(reserve, 100), Write(sched, 1), Write(eco, 1)]
            case m.STORAGE_EXPORT:
                return [Write(reserve, 4), Write(sched, 1), Write(eco, 0)]
            case m.ECO:
                return [Write(eco, 1), Write(sched, 0), Write(reserve, ctx.saved_reserve)]
            case m.ECO_PAUSED:
                return [Write(eco, 1), Write(sched, 0), Write(reserve, 100)]
            case m.TIMED_DEMAND:
                return [Write(eco, 1), Write(sched, 1)]
            case m.TIMED_EXPORT:
                return [Write(eco, 0), Write(sched, 1)]
        raise PlanError(f"unknown mode {payload.mode}")  # pragma: no cover

    def pause_mode(payload: p.PauseModePayload, ctx: PlanContext) -> list[Write]:
        return [Write(_reg(ctx.layout.pause_mode), p.PAUSE_MODE_VALUE[payload.state])]

    def pause_slot(payload: p.WindowPayload, ctx: PlanContext) -> list[Write]:
        start, end = _pause_regs(ctx.layout)
        return [Write(start, payload.start), Write(end, payload.finish)]

    def pause_start(payload: p.TimePayload, ctx: PlanContext) -> list[Write]:
        return [Write(_pause_regs(ctx.layout)[0], payload.time)]

    def pause_end(payload: p.TimePayload, ctx: PlanContext) -> list[Write]:
        return [Write(_pause_regs(ctx.layout)[1], payload.time)]

    def _pause_regs(lay: Layout) -> tuple[int, int]:
        regs = lay.pause_slot
        if regs is None:
            raise PlanError("no pause slot")
        return regs

    pause_req = _need(
        "battery pause mode (HR318-320; not on Gen1/Gen2)", lambda lay: lay.pause_mode
    )
    mode_req = _all(_single, _need("eco mode register", lambda lay: lay.eco))
    return [
        ControlFunction(
            "setBatteryMode",
            "Battery mode: 1-4 as the original GivTCP (dynamic, storage with default slot, "
            "storage keeping slots, storage export) or by name (Eco, Eco (Paused), Timed Demand, "
            "Timed Export).",
            p.BatteryModePayload,
            battery_mode,
            mode_req,
            "1: HR110 := 4, HR59 := 0, HR27 := 1; 2: HR110 := 100, HR59 := 1, HR27 := 1, "
            "HR56 := 1600, HR57 := 700; 3: HR110 := 100, HR59 := 1, HR27 := 1; 4: HR110 := 4, "
            "HR59 := 1, HR27 := 0; Eco: HR27 := 1, HR59 := 0, HR110 := remembered reserve (4); "
            "Eco (Paused): HR27 := 1, HR59 := 0, HR110 := 100; Timed Demand: HR27 := 1, "
            "HR59 := 1; Timed Export: HR27 := 0, HR59 := 1",
            "battery",
            needs=lambda lay: (_reg(lay.reserve),),
            example={"mode": "1"},
            ha=HaMeta(
                Platform.SELECT,
                options=("Eco", "Eco (Paused)", "Timed Demand", "Timed Export"),
                main=True,
            ),
            mirrors=f"{_C}/Mode",
        ),
        ControlFunction(
            "setEcoMode",
            "Eco: discharge only to match demand (disable: discharge at full power).",
            p.SwitchPayload,
            _switch_plan(lambda lay: lay.eco),
            mode_req,
            "HR27 := 1/0",
            "battery",
            aliases=("setBatteryPowerMode",),
            example="disable",
            ha=_SWITCH,
            mirrors=f"{_C}/Eco_Mode",
        ),
        ControlFunction(
            "setBatteryPauseMode",
            "Pause battery charge and/or discharge during the pause slot.",
            p.PauseModePayload,
            pause_mode,
            pause_req,
            "HR318 := 0 Disabled, 1 PauseCharge, 2 PauseDischarge, 3 PauseBoth",
            "battery",
            example="PauseCharge",
            ha=HaMeta(Platform.SELECT, options=tuple(m.value for m in p.PauseMode)),
            mirrors=f"{_C}/Battery_pause_mode",
        ),
        ControlFunction(
            "setPauseSlot",
            "Start and end of the battery pause slot.",
            p.WindowPayload,
            pause_slot,
            pause_req,
            "HR319/320",
            "battery",
            example={"start": "16:00", "finish": "19:00"},
        ),
        ControlFunction(
            "setPauseStart",
            "Start of the battery pause slot.",
            p.TimePayload,
            pause_start,
            pause_req,
            "HR319",
            "battery",
            example="16:00",
            ha=_PREDBAT_TIME,
            mirrors=f"{_T}/Battery_pause_start_time_slot",
        ),
        ControlFunction(
            "setPauseEnd",
            "End of the battery pause slot.",
            p.TimePayload,
            pause_end,
            pause_req,
            "HR320",
            "battery",
            example="19:00",
            ha=_PREDBAT_TIME,
            mirrors=f"{_T}/Battery_pause_end_time_slot",
        ),
    ]


def _rates() -> list[ControlFunction]:
    def rate(kind: str) -> Planner:
        def plan(
            payload: p.ChargeRatePayload | p.DischargeRatePayload, ctx: PlanContext
        ) -> list[Write]:
            lay = ctx.layout
            reg_unit = lay.charge_rate() if kind == "charge" else lay.discharge_rate()
            if reg_unit is None:
                raise PlanError(f"no {kind} rate register")
            reg, unit = reg_unit
            watts = (
                payload.chargeRate
                if isinstance(payload, p.ChargeRatePayload)
                else payload.dischargeRate
            )
            capacity = ctx.registers.get(lay.battery_capacity)
            value = watts_to_register(watts, unit, ctx.model, capacity)
            stored = stored_watts(value, unit, ctx.model, capacity)
            note = ""
            if stored is not None and stored != watts:
                note = f"{watts} W stored as {value} register steps = {stored} W"
            return [Write(reg, value, note=note)]

        return plan

    def ac_rate(kind: str) -> Planner:
        def plan(
            payload: p.ChargeRateACPayload | p.DischargeRateACPayload, ctx: PlanContext
        ) -> list[Write]:
            lay = ctx.layout
            reg = lay.ac_charge_rate if kind == "charge" else lay.ac_discharge_rate
            value = (
                payload.chargeRate
                if isinstance(payload, p.ChargeRateACPayload)
                else payload.dischargeRate
            )
            return [Write(_reg(reg), value)]

        return plan

    def active(payload: p.ActivePowerRatePayload, ctx: PlanContext) -> list[Write]:
        return [Write(_reg(ctx.layout.active_power_rate), payload.activePowerRate)]

    def needs_capacity(lay: Layout) -> tuple[int, ...]:
        return (
            (lay.battery_capacity,) if lay.single and lay.model.family is not Family.GATEWAY else ()
        )

    def watts_meta(kind: str) -> HaMeta:
        return HaMeta(Platform.NUMBER, minimum=0, maximum=lambda m: p.battery_power_limit(m),
                      step=1, unit="W", main=True, real_step=rate_step(kind))  # fmt: skip

    rate_doc = (
        "HR{c} := min(50, round(W / (HR55 Ah x nominal V / 100))), 50 at or above the battery "
        "power limit; 3ph HR{t} / Gateway HR{g} := W as % of the limit"
    )
    return [
        ControlFunction(
            "setChargeRate",
            "Battery charge power limit in watts.",
            p.ChargeRatePayload,
            rate("charge"),
            _need("charge rate register", lambda lay: lay.charge_rate()),
            rate_doc.format(c=111, t=1110, g=313),
            "rates",
            needs=needs_capacity,
            example={"chargeRate": "1000"},
            ha=watts_meta("charge"),
            mirrors=f"{_C}/Battery_Charge_Rate",
        ),
        ControlFunction(
            "setDischargeRate",
            "Battery discharge power limit in watts.",
            p.DischargeRatePayload,
            rate("discharge"),
            _need("discharge rate register", lambda lay: lay.discharge_rate()),
            rate_doc.format(c=112, t=1108, g=314),
            "rates",
            needs=needs_capacity,
            example={"dischargeRate": "1000"},
            ha=watts_meta("discharge"),
            mirrors=f"{_C}/Battery_Discharge_Rate",
        ),
        ControlFunction(
            "setChargeRateAC",
            "Inverter AC charge power in % of its rating (AC-coupled, All-in-One, three-phase).",
            p.ChargeRateACPayload,
            ac_rate("charge"),
            _need("AC charge power register (HR313)", lambda lay: lay.ac_charge_rate),
            "HR313 (3ph HR1110) := 1-100",
            "rates",
            example={"chargeRate": "75"},
            ha=_pct(minimum=1),
            mirrors=f"{_C}/Battery_Charge_Rate_AC",
        ),
        ControlFunction(
            "setDischargeRateAC",
            "Inverter AC discharge power in % of its rating.",
            p.DischargeRateACPayload,
            ac_rate("discharge"),
            _need("AC discharge power register (HR314)", lambda lay: lay.ac_discharge_rate),
            "HR314 (3ph HR1108) := 1-100",
            "rates",
            example={"dischargeRate": "75"},
            ha=_pct(minimum=1),
            mirrors=f"{_C}/Battery_Discharge_Rate_AC",
        ),
        ControlFunction(
            "setActivePowerRate",
            "Inverter active power output limit in %.",
            p.ActivePowerRatePayload,
            active,
            _need("active power rate register", lambda lay: lay.active_power_rate),
            "HR50 := 0-100",
            "rates",
            example="90",
            ha=_pct(minimum=0),
            mirrors=f"{_C}/Active_Power_Rate",
        ),
    ]


def _system() -> list[ControlFunction]:
    def calibration(payload: p.CalibrationPayload, ctx: PlanContext) -> list[Write]:
        return [Write(_reg(ctx.layout.calibration), p.CALIBRATION_VALUE[payload.state])]

    def reboot(_payload: p.NoPayload, ctx: PlanContext) -> list[Write]:
        return [Write(_reg(ctx.layout.reboot), REBOOT_VALUE, always=True)]

    def clock_writes(moment: datetime) -> list[Write]:
        values = (moment.year - 2000, moment.month, moment.day, moment.hour, moment.minute,
                  moment.second)  # fmt: skip
        return [Write(reg, value) for reg, value in zip(CLOCK, values, strict=True)]

    def set_datetime(payload: p.DateTimePayload, _ctx: PlanContext) -> list[Write]:
        return clock_writes(payload.dateTime)

    def sync_datetime(_payload: p.NoPayload, ctx: PlanContext) -> list[Write]:
        return clock_writes(ctx.now)

    def export_priority(payload: p.ExportPriorityPayload, ctx: PlanContext) -> list[Write]:
        return [Write(_reg(ctx.layout.export_priority), p.EXPORT_PRIORITY_VALUE[payload.state])]

    def export_limit(payload: p.ExportLimitPayload, ctx: PlanContext) -> list[Write]:
        return [Write(_reg(ctx.layout.ems_export_limit), payload.exportLimit)]

    return [
        ControlFunction(
            "setBatteryCalibration",
            "Battery SOC calibration: Off, Start, Charge Only.",
            p.CalibrationPayload,
            calibration,
            _need("calibration register", lambda lay: lay.calibration),
            "HR29 := 0 Off, 1 Start, 3 Charge Only",
            "system",
            example="Start",
            ha=HaMeta(Platform.SELECT, options=tuple(m.value for m in p.Calibration)),
            mirrors=f"{_C}/Battery_Calibration",
        ),
        ControlFunction(
            "enableRTC",
            "Real-time control (settings written to RAM rather than EEPROM, per GivTCP).",
            p.SwitchPayload,
            _switch_plan(lambda lay: lay.rtc),
            _need("real-time control register", lambda lay: lay.rtc),
            "HR166 (3ph HR1005) := 1/0",
            "system",
            example="enable",
            ha=_SWITCH,
            mirrors=f"{_C}/Real_Time_Control",
        ),
        ControlFunction(
            "rebootInverter",
            "Restart the inverter (any payload).",
            p.NoPayload,
            reboot,
            _need("restart register", lambda lay: lay.reboot),
            "HR163 := 100 (never any other value); not read back",
            "system",
            aliases=("reboot", "rebootInvertor"),
            example="restart",
            ha=_BUTTON,
            mirrors=f"{_C}/Reboot_Invertor",
            verify=Verify.NONE,
        ),
        ControlFunction(
            "setDateTime",
            "Set the inverter clock.",
            p.DateTimePayload,
            set_datetime,
            _any,
            "HR35..40 := year-2000, month, day, hour, minute, second",
            "system",
            example={"dateTime": "22/07/2024 10:03:44"},
            verify=Verify.CLOCK,
        ),
        ControlFunction(
            "syncDateTime",
            "Set the inverter clock to the daemon's clock in its configured timezone.",
            p.NoPayload,
            sync_datetime,
            _any,
            "HR35..40 := now",
            "system",
            example="sync",
            ha=_BUTTON,
            mirrors=f"{_C}/Sync_Time",
            verify=Verify.CLOCK,
        ),
        ControlFunction(
            "setExportPriority",
            "What surplus power serves first: Load, Battery or Grid (AC-coupled, All-in-One).",
            p.ExportPriorityPayload,
            export_priority,
            _need("export priority register (HR311)", lambda lay: lay.export_priority),
            "HR311 := 0 Load, 1 Battery, 2 Grid",
            "system",
            aliases=("setLocalControlMode",),
            example="Battery",
            ha=HaMeta(Platform.SELECT, options=tuple(m.value for m in p.ExportPriority)),
            mirrors=f"{_C}/Export_Priority",
        ),
        ControlFunction(
            "enableEPS",
            "Emergency power supply output on or off (AC-coupled, All-in-One).",
            p.SwitchPayload,
            _switch_plan(lambda lay: lay.eps),
            _need("EPS register (HR317)", lambda lay: lay.eps),
            "HR317 := 1/0",
            "system",
            aliases=("setEPS", "setEpsEnable"),
            example="enable",
            ha=_SWITCH,
            mirrors=f"{_C}/EPS_Enable",
        ),
        ControlFunction(
            "setForceCharge",
            "Three-phase force-charge flag.",
            p.SwitchPayload,
            _switch_plan(lambda lay: lay.force_charge_flag),
            _need("force charge flag (three-phase)", lambda lay: lay.force_charge_flag),
            "3ph HR1123 := 1/0",
            "three_phase",
            example="enable",
            ha=_SWITCH,
            mirrors=f"{_C}/Force_Charge_Enable",
        ),
        ControlFunction(
            "setForceDischarge",
            "Three-phase force-discharge flag.",
            p.SwitchPayload,
            _switch_plan(lambda lay: lay.force_discharge_flag),
            _need("force discharge flag (three-phase)", lambda lay: lay.force_discharge_flag),
            "3ph HR1122 := 1/0",
            "three_phase",
            example="enable",
            ha=_SWITCH,
            mirrors=f"{_C}/Force_Discharge_Enable",
        ),
        ControlFunction(
            "setACCharge",
            "Three-phase AC charge flag.",
            p.SwitchPayload,
            _switch_plan(lambda lay: lay.ac_charge_flag),
            _need("AC charge flag (three-phase)", lambda lay: lay.ac_charge_flag),
            "3ph HR1112 := 1/0",
            "three_phase",
            example="enable",
            ha=_SWITCH,
            mirrors=f"{_C}/Force_AC_Charge_Enable",
        ),
        ControlFunction(
            "setEmsPlant",
            "EMS plant control on or off.",
            p.SwitchPayload,
            _switch_plan(lambda lay: lay.ems_plant),
            _need("EMS plant register", lambda lay: lay.ems_plant),
            "EMS HR2040 := 1/0",
            "ems",
            example="disable",
            ha=_SWITCH,
            mirrors=f"{_C}/EMS_Plant_Enable",
        ),
        ControlFunction(
            "setExportLimit",
            "EMS export power limit in watts.",
            p.ExportLimitPayload,
            export_limit,
            _need("EMS export limit register", lambda lay: lay.ems_export_limit),
            "EMS HR2071 := 0-65535",
            "ems",
            example="5000",
            ha=HaMeta(Platform.NUMBER, minimum=0, maximum=65535, step=100, unit="W"),
            mirrors=f"{_C}/Export_Limit",
        ),
    ]


def _no_writes(_payload: p.Payload, _ctx: PlanContext) -> list[Write]:
    return []


def _pv_input_mode(_payload: p.PVInputModePayload, _ctx: PlanContext) -> list[Write]:
    raise PlanError("the PV input mode (HR1077) is never written")  # requirement keeps it out


def _installer_only(_layout: Layout) -> str | None:
    return (
        "the PV input mode (three-phase HR1077) is an installer setting, on no write allow-list; "
        "GivTCP 3.5 reads it but does not write it either"
    )


def _more() -> list[ControlFunction]:
    """GivTCP's remaining functions: the discharge switch, the PV input mode, and two the daemon
    carries out itself (the tariff rate, a restart)."""

    def enable_discharge(payload: p.SwitchPayload, ctx: PlanContext) -> list[Write]:
        reserve = _reg(ctx.layout.reserve)
        return [Write(reserve, ctx.saved_reserve if payload.state else 100)]

    return [
        ControlFunction(
            "enableDischarge",
            "Let the battery discharge (enable: the remembered reserve below 100 %) or hold it "
            "(disable: reserve 100 %), as GivTCP's enableDischarge.",
            p.SwitchPayload,
            enable_discharge,
            _need("battery reserve", lambda lay: lay.reserve),
            "HR110 (3ph HR1109) := remembered reserve (4 until one is seen) / 100",
            "battery",
            needs=lambda lay: (_reg(lay.reserve),),
            example="enable",
        ),
        ControlFunction(
            "setPVInputMode",
            "PV input mode of a three-phase inverter: Independent or 1x2 (not written: see "
            "the reason).",
            p.PVInputModePayload,
            _pv_input_mode,
            _installer_only,
            "nothing (HR1077 is an installer setting)",
            "three_phase",
            example="Independent",
        ),
        ControlFunction(
            "switchRate",
            "The tariff rate that applies from now (GivTCP's dynamic tariff): Day or Night.",
            p.RatePayload,
            _no_writes,
            _any,
            "nothing on the inverter: the daemon's tariff tracker (Energy/Rates)",
            "tariffs",
            example={"rate": "day"},
            ha=HaMeta(Platform.SELECT, options=tuple(m.value for m in p.Rate)),
            mirrors="Energy/Rates/Current_Rate_Type",
            verify=Verify.NONE,
            local=True,
        ),
        ControlFunction(
            "rebootAddon",
            "Restart the daemon: it stops cleanly (running timed overrides stay pending) and "
            "starts again with the same command line (GivTCP restarted its add-on).",
            p.NoPayload,
            _no_writes,
            _any,
            "nothing on the inverter",
            "system",
            aliases=("restart", "restartAddon"),
            example="restart",
            ha=_BUTTON,
            mirrors=f"{_C}/Reboot_Addon",
            verify=Verify.NONE,
            local=True,
        ),
    ]


def _overrides() -> list[ControlFunction]:
    def force_charge(payload: p.DurationPayload, ctx: PlanContext) -> list[Write]:
        lay = ctx.layout
        start, end = override_window(ctx, payload.duration)
        slot = lay.charge_slot(1)
        rate = lay.charge_rate()
        if slot is None or rate is None:
            raise PlanError("no charge slot 1 or charge rate register")
        writes = [Write(_reg(lay.charge_target), 100)]
        if (slot_target := lay.charge_slot_target(1)) is not None:
            writes.append(Write(slot_target, 100))
        writes += [Write(slot[0], start), Write(slot[1], end), Write(_reg(lay.charge_enable), 1)]
        writes.append(Write(rate[0], _full_rate(rate[1])))
        if lay.force_charge_flag is not None:
            writes.append(Write(lay.force_charge_flag, 1))
        if lay.pause_mode is not None:
            writes.append(Write(lay.pause_mode, 0))
        return writes

    def force_export(payload: p.DurationPayload, ctx: PlanContext) -> list[Write]:
        lay = ctx.layout
        start, end = override_window(ctx, payload.duration)
        slot = lay.discharge_slot(1)
        rate = lay.discharge_rate()
        if slot is None or rate is None:
            raise PlanError("no discharge slot 1 or discharge rate register")
        writes = [Write(_reg(lay.reserve), DEFAULT_RESERVE)]
        if (slot_target := lay.discharge_slot_target(1)) is not None:
            writes.append(Write(slot_target, DEFAULT_RESERVE))
        writes.append(Write(rate[0], _full_rate(rate[1])))
        if lay.eco is not None:
            writes.append(Write(lay.eco, 0))
        writes.append(Write(_reg(lay.discharge_enable), 1))
        if lay.force_charge_flag is not None:
            writes.append(Write(lay.force_charge_flag, 0))
        writes += [Write(slot[0], start), Write(slot[1], end)]
        if lay.pause_mode is not None:
            writes.append(Write(lay.pause_mode, 0))
        return writes

    def pause(kind: str) -> Planner:
        def plan(_payload: p.DurationPayload, ctx: PlanContext) -> list[Write]:
            rate = ctx.layout.charge_rate() if kind == "charge" else ctx.layout.discharge_rate()
            if rate is None:
                raise PlanError(f"no {kind} rate register")
            return [Write(rate[0], 0)]

        return plan

    def pausable(kind: str) -> Requirement:
        def check(lay: Layout) -> str | None:
            rate = lay.charge_rate() if kind == "charge" else lay.discharge_rate()
            if rate is None:
                return f"the model has no {kind} rate register"
            if rate[0] in (313, 314):
                return f"HR{rate[0]} refuses 0 on AC hardware: no pause via the rate"
            return None

        return check

    select = HaMeta(Platform.SELECT, options=OVERRIDE_OPTIONS)
    main_select = HaMeta(Platform.SELECT, options=OVERRIDE_OPTIONS, main=True)
    minutes = "minutes (1-1439) or Cancel; re-issuing extends and keeps the first saved state"
    return [
        ControlFunction(
            "forceCharge",
            f"Charge from the grid at full rate to 100 % now for N {minutes}.",
            p.DurationPayload,
            force_charge,
            _all(_battery, _need("charge slot", lambda lay: lay.charge_slot(1))),
            "HR116 := 100, [HR242 := 100 on extended-slot models], HR94/95 := now..now+N, "
            "HR96 := 1, HR111 := 50 (Gateway HR313 := 100), [HR318 := 0 where pause mode "
            "exists]; 3ph: HR1111 := 100, "
            "HR1113/1114 window, HR1112 := 1, HR1110 := 100, HR1123 := 1. All restored at the end",
            "overrides",
            example="30",
            ha=main_select,
            mirrors=f"{_C}/Force_Charge",
            override=True,
        ),
        ControlFunction(
            "forceExport",
            f"Discharge at full power to the grid now for N {minutes}.",
            p.DurationPayload,
            force_export,
            _all(_battery, _need("discharge slot", lambda lay: lay.discharge_slot(1))),
            "HR110 := 4, [HR272 := 4 on extended-slot models], HR112 := 50 (Gateway "
            "HR314 := 100), HR27 := 0, "
            "HR59 := 1, HR56/57 := now..now+N, [HR318 := 0]; 3ph: HR1109 := 4, HR1108 := 100, "
            "HR1122 := 1, HR1123 := 0, HR1118/1119 window. All restored at the end",
            "overrides",
            example="30",
            ha=main_select,
            mirrors=f"{_C}/Force_Export",
            override=True,
        ),
        ControlFunction(
            "tempPauseCharge",
            f"Stop battery charging for N {minutes}.",
            p.DurationPayload,
            pause("charge"),
            _all(_battery, pausable("charge")),
            "HR111 (3ph HR1110) := 0, restored at the end",
            "overrides",
            example="30",
            ha=select,
            mirrors=f"{_C}/Temp_Pause_Charge",
            override=True,
        ),
        ControlFunction(
            "tempPauseDischarge",
            f"Stop battery discharging for N {minutes}.",
            p.DurationPayload,
            pause("discharge"),
            _all(_battery, pausable("discharge")),
            "HR112 (3ph HR1108) := 0, restored at the end",
            "overrides",
            example="30",
            ha=select,
            mirrors=f"{_C}/Temp_Pause_Discharge",
            override=True,
        ),
    ]


ROUTERS: Final = (
    Router("setChargeSlot", "setChargeSlot", lambda lay: lay.charge_slots),
    Router("setDischargeSlot", "setDischargeSlot", lambda lay: lay.discharge_slots),
    Router("setDischargeTarget", "setDischargeTarget", lambda lay: lay.discharge_slots),
    Router("setExportSlot", "setExportSlot", lambda lay: lay.export_slots),
    Router("setExportTarget", "setExportTarget", lambda lay: lay.export_slots),
)


class Catalogue:
    """Every control function by name, with aliases and slot routers."""

    def __init__(
        self, functions: Sequence[ControlFunction], routers: Sequence[Router] = ()
    ) -> None:
        self._functions: dict[str, ControlFunction] = {}
        self._aliases: dict[str, str] = {}
        for fn in functions:
            if fn.name in self._functions or fn.name in self._aliases:
                raise ValueError(f"duplicate control function {fn.name}")
            self._functions[fn.name] = fn
        for fn in functions:
            for alias in fn.aliases:
                if alias in self._functions or alias in self._aliases:
                    raise ValueError(f"alias {alias} is already taken")
                self._aliases[alias] = fn.name
        self._routers = {r.name: r for r in routers}
        self._folded = {n.lower(): n for n in [*self._functions, *self._aliases, *self._routers]}

    def __iter__(self) -> Iterator[ControlFunction]:
        return iter(self._functions.values())

    def __len__(self) -> int:
        return len(self._functions)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._canonical(name) is not None

    @property
    def aliases(self) -> Mapping[str, str]:
        return dict(self._aliases)

    @property
    def routers(self) -> Mapping[str, Router]:
        return dict(self._routers)

    def names(self) -> list[str]:
        """Every name accepted: functions, aliases and routers."""
        return [*self._functions, *self._aliases, *self._routers]

    def _canonical(self, name: str) -> str | None:
        name = name.strip().strip("/")
        name = self._folded.get(name.lower(), name)
        if name in self._functions:
            return name
        if name in self._aliases:
            return self._aliases[name]
        if name in self._routers:
            return name
        return None

    def get(self, name: str) -> ControlFunction:
        """The function called ``name`` (or an alias of it); raises UnknownFunction."""
        canonical = self._canonical(name)
        if canonical is None or canonical in self._routers:
            raise UnknownFunction(f"unknown control function {name!r}")
        return self._functions[canonical]

    def available(self, model: Model) -> list[ControlFunction]:
        return [fn for fn in self if fn.available(model)]

    def resolve(
        self,
        name: str,
        raw: p.RawPayload,
        model: Model | None = None,
    ) -> tuple[ControlFunction, p.Payload]:
        """Function and validated payload for a request; routers pick the slot's function.

        Raises UnknownFunction, FunctionUnavailable or ValidationFailed; nothing is written.
        """
        canonical = self._canonical(name)
        if canonical is None:
            raise UnknownFunction(f"unknown control function {name!r}")
        router = self._routers.get(canonical)
        if router is None:
            fn = self._functions[canonical]
            return fn, fn.parse(raw, model)
        data = p.raw_to_dict(raw, None)
        count = router.count(Layout(model)) if model is not None else 10
        allowed = f"1-{count}" if count else "none on this model"
        if "slot" not in data:
            raise ValidationFailed(
                f"{router.name}: slot: field required",
                [{"field": "slot", "value": None, "allowed": allowed, "message": "field required"}],
            )
        slot_raw = data.pop("slot")
        try:
            slot = p.whole_number(slot_raw)
        except Exception:  # noqa: BLE001 - any parse failure is the same rejection
            slot = -1
        if not 1 <= slot <= max(count, 0):
            raise ValidationFailed(
                f"{router.name}: slot {slot_raw!r} is not a slot of this model",
                [
                    {
                        "field": "slot",
                        "value": slot_raw,
                        "allowed": allowed,
                        "message": "no such slot",
                    }
                ],
            )
        fn = self._functions[f"{router.target}{slot}"]
        return fn, fn.parse(data, model)


def build_catalogue() -> Catalogue:
    functions = [*_basic(), *_slot_functions(), *_modes(), *_rates(), *_system(), *_more(),
                 *_overrides()]  # fmt: skip
    return Catalogue(functions, ROUTERS)


CATALOGUE: Final = build_catalogue()


def layout_kind_name(model: Model) -> str:
    return {
        LayoutKind.SINGLE_PHASE: "single-phase",
        LayoutKind.THREE_PHASE: "three-phase",
        LayoutKind.EMS: "EMS",
        LayoutKind.PV_ONLY: "PV inverter",
    }[Layout(model).kind]
