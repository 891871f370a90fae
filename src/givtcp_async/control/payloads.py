"""Payload models of the control functions: GivTCP's forms in, typed and range-checked values out.

Payloads arrive as a JSON object (numbers as strings or numbers), as a plain scalar (``80``,
``enable``, ``01:30``) or as nothing. :func:`parse_payload` turns any of those into a frozen
pydantic model, or raises :class:`~givtcp_async.errors.ValidationFailed` whose ``errors`` name
the field, the value received and what is allowed. Validation gets the detected
:class:`~givtcp_async.registers.models.Model` through the pydantic validation context, so limits
that depend on the hardware (battery power) are checked against it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Final, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from givtcp_async.errors import ValidationFailed
from givtcp_async.registers.models import Model

# Used when the model table names no battery power limit (EMS, Gateway, three-phase, unknown
# codes): the inverter's rated power, else this.
FALLBACK_BATTERY_POWER: Final = 6000
MAX_OVERRIDE_MINUTES: Final = 1439  # a slot window must not wrap onto itself
RESERVE_MIN: Final = 4  # both libraries refuse SOC floors below 4 %
# GivTCP's payloads are flat objects; anything nested deeper is refused before validation (the
# JSON decoder, pydantic and the result's JSON encoder each give up at some depth).
MAX_NESTING: Final = 32

# Numbers are ASCII digits with an optional decimal part ("80", and "1500.0" as Home Assistant
# sends numbers): no sign, exponent, fullwidth or other scripts' digits, which int() would take.
_INT_RE: Final = re.compile(r"^[0-9]+$")
_INT_FLOAT_RE: Final = re.compile(r"^[0-9]+\.0+$")
_JSON_FLOAT_RE: Final = re.compile(r"^-?[0-9]+\.[0-9]+$")
_HHMM_RE: Final = re.compile(r"^([0-9]{1,2})([0-9]{2})$")
_HH_MM_RE: Final = re.compile(r"^([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?$")
_JSON_ALLOWED: Final = "a JSON object (each key once, numbers as plain decimals) or a plain value"
_ON: Final = frozenset({"enable", "enabled", "on", "true", "1", "yes"})
_OFF: Final = frozenset({"disable", "disabled", "off", "false", "0", "no"})
_CANCEL: Final = frozenset({"cancel", "normal", "0", "off", "stop"})


def battery_power_limit(model: Model | None) -> int:
    """Watts a charge/discharge rate may ask for on ``model``."""
    if model is None:
        return FALLBACK_BATTERY_POWER
    return model.battery_max_power or model.rated_power or FALLBACK_BATTERY_POWER


def _error(kind: str, message: str, allowed: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message + " (allowed: {allowed})", {"allowed": allowed})


def _model_of(info: ValidationInfo) -> Model | None:
    ctx = info.context
    if isinstance(ctx, Mapping):
        model = ctx.get("model")
        if isinstance(model, Model):
            return model
    return None


# --- scalar parsers ----------------------------------------------------------------------------


def whole_number(value: object, allowed: str = "a whole number") -> int:
    """A number given as int, integral float or digit string; bools and the rest are refused."""
    if isinstance(value, bool):
        raise _error("int_type", "expected a number, not true/false", allowed)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.match(text):
            return int(text)
        if _INT_FLOAT_RE.match(text):
            return int(text.partition(".")[0])  # exact: float("9" * 400) is inf
    raise _error(
        "int_type", "expected a whole number (ASCII digits, as a number or string)", allowed
    )


def parse_time(value: object) -> int:
    """``hhmm`` / ``HH:MM`` / ``HH:MM:SS`` (or an HHMM integer) as the register's HHMM integer."""
    allowed = "a time of day 00:00-23:59 as hhmm, HH:MM or HH:MM:SS"
    if isinstance(value, bool):
        raise _error("time_type", "expected a time, not true/false", allowed)
    if isinstance(value, int):
        hour, minute, second = divmod(value, 100)[0], value % 100, 0
        if value < 0:
            raise _error("time_value", "not a time of day", allowed)
    elif isinstance(value, str):
        text = value.strip()
        m = _HH_MM_RE.match(text)
        if m:
            hour, minute, second = int(m[1]), int(m[2]), int(m[3] or 0)
        elif (m2 := _HHMM_RE.match(text)) is not None and len(text) in (3, 4):
            hour, minute, second = int(m2[1]), int(m2[2]), 0
        else:
            raise _error("time_format", "not a time in hhmm, HH:MM or HH:MM:SS form", allowed)
    else:
        raise _error("time_type", "expected a time as a string", allowed)
    if not (0 <= hour < 24 and 0 <= minute < 60 and 0 <= second < 60):
        raise _error("time_value", "not a time of day", allowed)
    return hour * 100 + minute


def parse_on_off(value: object) -> bool:
    allowed = "enable or disable"
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _ON:
            return True
        if text in _OFF:
            return False
    raise _error("switch_value", "expected enable or disable", allowed)


def parse_duration(value: object) -> int:
    """Minutes 1..1439, or 0 for ``Cancel`` / ``Normal`` / ``0``."""
    allowed = f"minutes 1-{MAX_OVERRIDE_MINUTES}, or Cancel"
    if isinstance(value, str) and value.strip().lower() in _CANCEL:
        return 0
    minutes = whole_number(value, allowed)
    if not 0 <= minutes <= MAX_OVERRIDE_MINUTES:
        raise _error("range", "duration out of range", allowed)
    return minutes


def parse_datetime(value: object) -> datetime:
    """``dd/mm/yyyy hh:mm[:ss]`` (GivTCP) or ISO 8601, as a naive inverter-local datetime."""
    allowed = "a real date and time as dd/mm/yyyy hh:mm:ss, years 2000-2099"
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        parsed_or_none: datetime | None = None
        for fmt in ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M"):
            try:
                parsed_or_none = datetime.strptime(text, fmt)  # noqa: DTZ007 - inverter-local
                break
            except ValueError:
                continue
        if parsed_or_none is None:
            try:
                parsed_or_none = datetime.fromisoformat(text)
            except ValueError:
                raise _error("datetime", "not a real date and time", allowed) from None
        parsed = parsed_or_none
    else:
        raise _error("datetime_type", "expected a date and time as a string", allowed)
    if not 2000 <= parsed.year <= 2099:
        raise _error("datetime", "year out of range", allowed)
    return parsed.replace(tzinfo=None, microsecond=0)


def _range(lo: int, hi: int) -> Callable[[object], int]:
    allowed = f"{lo}-{hi}"

    def check(value: object) -> int:
        number = whole_number(value, allowed)
        if not lo <= number <= hi:
            raise _error("range", "out of range", allowed)
        return number

    return check


def _watts(value: int, info: ValidationInfo) -> int:
    limit = battery_power_limit(_model_of(info))
    if not 0 <= value <= limit:
        raise _error("range", "rate out of range for this battery", f"0-{limit} W")
    return value


def _int_schema(lo: int | None, hi: int | None, unit: str = "") -> dict[str, Any]:
    number: dict[str, Any] = {"type": "integer"}
    if lo is not None:
        number["minimum"] = lo
    if hi is not None:
        number["maximum"] = hi
    described = f" ({unit})" if unit else ""
    return {"anyOf": [number, {"type": "string", "pattern": r"^\d+$"}], "description": described}


_TIME_SCHEMA: Final = {
    "anyOf": [
        {"type": "string", "pattern": r"^\d{3,4}$"},
        {"type": "string", "pattern": r"^\d{1,2}:\d{2}(:\d{2})?$"},
    ],
    "examples": ["0130", "01:30"],
}
_SWITCH_SCHEMA: Final = {"anyOf": [{"enum": ["enable", "disable"]}, {"type": "boolean"}]}


def _choice_schema(names: list[str]) -> dict[str, Any]:
    return {"enum": names}


Percent = Annotated[
    int, BeforeValidator(_range(RESERVE_MIN, 100)), WithJsonSchema(_int_schema(4, 100, "%"))
]
Percent0 = Annotated[int, BeforeValidator(_range(0, 100)), WithJsonSchema(_int_schema(0, 100, "%"))]
Percent1 = Annotated[int, BeforeValidator(_range(1, 100)), WithJsonSchema(_int_schema(1, 100, "%"))]
Watts = Annotated[
    int,
    BeforeValidator(whole_number),
    AfterValidator(_watts),
    WithJsonSchema(_int_schema(0, None, "W")),
]
ExportWatts = Annotated[
    int, BeforeValidator(_range(0, 65535)), WithJsonSchema(_int_schema(0, 65535, "W"))
]
Hhmm = Annotated[int, BeforeValidator(parse_time), WithJsonSchema(_TIME_SCHEMA)]
OnOff = Annotated[bool, BeforeValidator(parse_on_off), WithJsonSchema(_SWITCH_SCHEMA)]
_MINUTES_SCHEMA: Final = {
    "anyOf": [_int_schema(0, MAX_OVERRIDE_MINUTES, "min"), {"enum": ["Cancel", "Normal"]}]
}
Minutes = Annotated[int, BeforeValidator(parse_duration), WithJsonSchema(_MINUTES_SCHEMA)]
InverterTime = Annotated[
    datetime,
    BeforeValidator(parse_datetime),
    WithJsonSchema({"type": "string", "examples": ["22/07/2024 10:03:44"]}),
]


def _field(kind: str, allowed: str, description: str, default: Any = ..., **kwargs: Any) -> Any:
    """A payload field carrying what it accepts (for error messages) and its kind (for tests)."""
    extra: dict[str, JsonValue] = {"x-kind": kind, "x-allowed": allowed}
    return Field(default, description=description, json_schema_extra=extra, **kwargs)


# --- named choices -----------------------------------------------------------------------------


_E = TypeVar("_E", bound=StrEnum)


class BatteryMode(StrEnum):
    """setBatteryMode values: GivTCP's original numbers and its later names."""

    DYNAMIC = "1"
    STORAGE_DEFAULT_SLOT = "2"
    STORAGE_KEEP_SLOTS = "3"
    STORAGE_EXPORT = "4"
    ECO = "Eco"
    ECO_PAUSED = "Eco (Paused)"
    TIMED_DEMAND = "Timed Demand"
    TIMED_EXPORT = "Timed Export"


class PauseMode(StrEnum):
    DISABLED = "Disabled"
    PAUSE_CHARGE = "PauseCharge"
    PAUSE_DISCHARGE = "PauseDischarge"
    PAUSE_BOTH = "PauseBoth"


class Calibration(StrEnum):
    OFF = "Off"
    START = "Start"
    CHARGE_ONLY = "Charge Only"


class ExportPriority(StrEnum):
    LOAD = "Load"
    BATTERY = "Battery"
    GRID = "Grid"


class Rate(StrEnum):
    DAY = "Day"
    NIGHT = "Night"


class PVInputMode(StrEnum):
    INDEPENDENT = "Independent"
    ONE_BY_TWO = "1x2"


PAUSE_MODE_VALUE: Final = {PauseMode.DISABLED: 0, PauseMode.PAUSE_CHARGE: 1,
                           PauseMode.PAUSE_DISCHARGE: 2, PauseMode.PAUSE_BOTH: 3}  # fmt: skip
CALIBRATION_VALUE: Final = {Calibration.OFF: 0, Calibration.START: 1, Calibration.CHARGE_ONLY: 3}
EXPORT_PRIORITY_VALUE: Final = {ExportPriority.LOAD: 0, ExportPriority.BATTERY: 1,
                                ExportPriority.GRID: 2}  # fmt: skip


def _squash(text: str) -> str:
    return re.sub(r"[\s_()-]+", "", text).lower()


def _enum_parser(enum: type[_E], numbers: Mapping[int, _E] | None = None) -> Callable[[object], _E]:
    by_name = {_squash(member.value): member for member in enum}
    allowed = ", ".join(m.value for m in enum)

    def parse(value: object) -> _E:
        if numbers is not None and not isinstance(value, bool):
            try:
                number = whole_number(value)
            except PydanticCustomError:
                pass
            else:
                if number in numbers:
                    return numbers[number]
                raise _error("choice", "not one of the allowed values", allowed)
        if isinstance(value, str) and _squash(value) in by_name:
            return by_name[_squash(value)]
        raise _error("choice", "not one of the allowed values", allowed)

    return parse


_BATTERY_MODE_NUMBERS: Final = {
    1: BatteryMode.DYNAMIC,
    2: BatteryMode.STORAGE_DEFAULT_SLOT,
    3: BatteryMode.STORAGE_KEEP_SLOTS,
    4: BatteryMode.STORAGE_EXPORT,
}
BatteryModeValue = Annotated[
    BatteryMode,
    BeforeValidator(_enum_parser(BatteryMode, _BATTERY_MODE_NUMBERS)),
    WithJsonSchema(_choice_schema([m.value for m in BatteryMode])),
]
PauseModeValue = Annotated[
    PauseMode,
    BeforeValidator(_enum_parser(PauseMode, {PAUSE_MODE_VALUE[m]: m for m in PauseMode})),
    WithJsonSchema(_choice_schema([m.value for m in PauseMode])),
]
CalibrationValue = Annotated[
    Calibration,
    BeforeValidator(_enum_parser(Calibration)),
    WithJsonSchema(_choice_schema([m.value for m in Calibration])),
]
RateValue = Annotated[
    Rate,
    BeforeValidator(_enum_parser(Rate)),
    WithJsonSchema(_choice_schema([m.value for m in Rate])),
]
PVInputModeValue = Annotated[
    PVInputMode,
    BeforeValidator(_enum_parser(PVInputMode)),
    WithJsonSchema(_choice_schema([m.value for m in PVInputMode])),
]
ExportPriorityValue = Annotated[
    ExportPriority,
    BeforeValidator(
        _enum_parser(ExportPriority, {EXPORT_PRIORITY_VALUE[m]: m for m in ExportPriority})
    ),
    WithJsonSchema(_choice_schema([m.value for m in ExportPriority])),
]


# --- payload models ----------------------------------------------------------------------------


class Payload(BaseModel):
    """Base of every payload: unknown fields are refused, values are immutable.

    ``scalar_field`` names the field a plain (non-JSON-object) payload fills; with None a plain
    payload is accepted and ignored (buttons such as rebootInverter send ``restart``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    scalar_field: ClassVar[str | None] = None
    ignored_fields: ClassVar[frozenset[str]] = frozenset()


class NoPayload(Payload):
    """No fields."""


class SwitchPayload(Payload):
    scalar_field: ClassVar[str | None] = "state"
    state: OnOff = _field("switch", "enable or disable", "enable or disable")


class ChargeTargetEnablePayload(Payload):
    """The original enableChargeTarget took no payload and meant "enable"."""

    scalar_field: ClassVar[str | None] = "state"
    state: OnOff = _field("switch", "enable or disable", "enable (default) or disable", True)


class ChargeTargetPayload(Payload):
    scalar_field: ClassVar[str | None] = "chargeToPercent"
    chargeToPercent: Percent = _field("percent", "4-100", "target SOC in %")


class ReservePayload(Payload):
    scalar_field: ClassVar[str | None] = "reservePercent"
    reservePercent: Percent = _field(
        "percent",
        "4-100",
        "battery reserve in % (GivTCP 1.x called it dischargeToPercent)",
        validation_alias=AliasChoices("reservePercent", "dischargeToPercent"),
    )


class CutoffPayload(Payload):
    scalar_field: ClassVar[str | None] = "dischargeToPercent"
    dischargeToPercent: Percent = _field("percent", "4-100", "discharge cut-off SOC in %")


class DischargeTargetPayload(Payload):
    scalar_field: ClassVar[str | None] = "dischargeToPercent"
    dischargeToPercent: Percent = _field("percent", "4-100", "slot's lower SOC in %")


class ExportTargetPayload(Payload):
    scalar_field: ClassVar[str | None] = "exportToPercent"
    exportToPercent: Percent = _field("percent", "4-100", "export slot's lower SOC in %")


class ChargeSlotPayload(Payload):
    """start/finish of a charge slot; chargeToPercent optional; GivTCP's ``enable`` is ignored."""

    ignored_fields: ClassVar[frozenset[str]] = frozenset({"enable"})
    start: Hhmm = _field("time", "00:00-23:59", "slot start (hhmm or HH:MM)")
    finish: Hhmm = _field("time", "00:00-23:59", "slot end (hhmm or HH:MM)")
    chargeToPercent: Percent | None = _field("percent", "4-100", "charge target in %", None)
    enable: Any = Field(None, exclude=True, description="accepted and ignored")


class DischargeSlotPayload(Payload):
    ignored_fields: ClassVar[frozenset[str]] = frozenset({"enable"})
    start: Hhmm = _field("time", "00:00-23:59", "slot start (hhmm or HH:MM)")
    finish: Hhmm = _field("time", "00:00-23:59", "slot end (hhmm or HH:MM)")
    dischargeToPercent: Percent | None = _field(
        "percent", "4-100", "battery reserve in % (written to the reserve register)", None
    )
    enable: Any = Field(None, exclude=True, description="accepted and ignored")


class WindowPayload(Payload):
    """A window without a target: pause slot, export slot."""

    start: Hhmm = _field("time", "00:00-23:59", "start (hhmm or HH:MM)")
    finish: Hhmm = _field("time", "00:00-23:59", "end (hhmm or HH:MM)")


class TimePayload(Payload):
    scalar_field: ClassVar[str | None] = "time"
    time: Hhmm = _field("time", "00:00-23:59", "time of day (hhmm or HH:MM)")


class BatteryModePayload(Payload):
    scalar_field: ClassVar[str | None] = "mode"
    mode: BatteryModeValue = _field(
        "choice", "1-4, Eco, Eco (Paused), Timed Demand, Timed Export", "battery mode"
    )


class PauseModePayload(Payload):
    scalar_field: ClassVar[str | None] = "state"
    state: PauseModeValue = _field(
        "choice", "Disabled, PauseCharge, PauseDischarge, PauseBoth", "pause mode"
    )


class CalibrationPayload(Payload):
    scalar_field: ClassVar[str | None] = "state"
    state: CalibrationValue = _field("choice", "Off, Start, Charge Only", "calibration")


class ExportPriorityPayload(Payload):
    scalar_field: ClassVar[str | None] = "state"
    state: ExportPriorityValue = _field("choice", "Load, Battery, Grid", "export priority")


class RatePayload(Payload):
    """switchRate: which tariff rate applies from now (GivTCP's dynamic tariff)."""

    scalar_field: ClassVar[str | None] = "rate"
    rate: RateValue = _field("choice", "Day, Night (any case)", "tariff rate")


class PVInputModePayload(Payload):
    scalar_field: ClassVar[str | None] = "state"
    state: PVInputModeValue = _field("choice", "Independent, 1x2", "PV input mode")


class ChargeRatePayload(Payload):
    scalar_field: ClassVar[str | None] = "chargeRate"
    chargeRate: Watts = _field("watts", "0 to the battery's power limit (W)", "watts")


class DischargeRatePayload(Payload):
    scalar_field: ClassVar[str | None] = "dischargeRate"
    dischargeRate: Watts = _field("watts", "0 to the battery's power limit (W)", "watts")


class ChargeRateACPayload(Payload):
    scalar_field: ClassVar[str | None] = "chargeRate"
    chargeRate: Percent1 = _field("percent1", "1-100", "AC charge power in %")


class DischargeRateACPayload(Payload):
    scalar_field: ClassVar[str | None] = "dischargeRate"
    dischargeRate: Percent1 = _field("percent1", "1-100", "AC discharge power in %")


class ActivePowerRatePayload(Payload):
    scalar_field: ClassVar[str | None] = "activePowerRate"
    activePowerRate: Percent0 = _field("percent0", "0-100", "active power limit in %")


class ExportLimitPayload(Payload):
    scalar_field: ClassVar[str | None] = "exportLimit"
    exportLimit: ExportWatts = _field("watts16", "0-65535", "export power limit in W")


class DateTimePayload(Payload):
    scalar_field: ClassVar[str | None] = "dateTime"
    dateTime: InverterTime = _field(
        "datetime", "dd/mm/yyyy hh:mm:ss, a real date 2000-2099", "inverter local time"
    )


class DurationPayload(Payload):
    """Timed overrides: minutes, or Cancel / Normal / 0 to end one now."""

    scalar_field: ClassVar[str | None] = "duration"
    duration: Minutes = _field(
        "minutes", f"1-{MAX_OVERRIDE_MINUTES} minutes, or Cancel", "minutes or Cancel"
    )

    @property
    def cancel(self) -> bool:
        return self.duration == 0


_P = TypeVar("_P", bound="Payload")


# --- parsing -----------------------------------------------------------------------------------


RawPayload = str | bytes | int | float | Mapping[str, Any] | None


class _Refused(ValueError):
    """A JSON document that parses but is not accepted (duplicate key, odd number form)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:  # json.loads would keep the last one silently
            raise _Refused(f"has the key {key!r} twice")
        out[key] = value
    return out


def _plain_float(text: str) -> float:
    if not _JSON_FLOAT_RE.match(text):
        raise _Refused(f"has the number {text[:40]} (no exponents: plain decimals only)")
    return float(text)


def _no_constant(text: str) -> float:
    raise _Refused(f"has {text} (not a number)")


def decode_json(text: str) -> Any:
    """A JSON payload, strictly: each key once, numbers as plain decimals (no exponent, NaN or
    Infinity), nested at most :data:`MAX_NESTING` levels; else :class:`ValidationFailed`."""
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_float=_plain_float,
            parse_constant=_no_constant,
        )
    except RecursionError:
        raise _too_deep(text[:80]) from None
    except _Refused as err:
        raise ValidationFailed(
            f"payload {err}", [{"field": "payload", "value": text[:80], "allowed": _JSON_ALLOWED}]
        ) from None
    except ValueError as err:  # not JSON, or a number Python will not convert (> 4300 digits)
        message = "payload is not valid JSON"
        if not isinstance(err, json.JSONDecodeError):
            message = f"payload is not a usable JSON value ({str(err)[:60]})"
        raise ValidationFailed(
            message, [{"field": "payload", "value": text[:80], "allowed": _JSON_ALLOWED}]
        ) from None
    if _nested_deeper(value, MAX_NESTING):
        raise _too_deep(text[:80])
    return value


def raw_to_dict(raw: RawPayload, scalar_field: str | None) -> dict[str, Any]:
    """GivTCP's payload forms as a dict of fields (before validation).

    A mapping is the fields; text is a JSON object, a JSON scalar or a plain value; a bare
    number (or bool) is a plain value. Plain values fill ``scalar_field``.
    """
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        if _nested_deeper(raw, MAX_NESTING):
            raise _too_deep(f"an object nested more than {MAX_NESTING} levels deep")
        return dict(raw)
    if isinstance(raw, int | float):
        return {} if scalar_field is None else {scalar_field: raw}
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed(
                "payload is not UTF-8 text",
                [{"field": "payload", "value": repr(raw[:40]), "allowed": "UTF-8 text"}],
            ) from None
    text = raw.strip()
    if not text:
        return {}
    value: Any = text
    if text[0] in '{["':
        value = decode_json(text)
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        raise ValidationFailed(
            "payload must be a JSON object or a plain value",
            [
                {
                    "field": "payload",
                    "value": value if len(text) <= 200 else text[:80],
                    "allowed": "a JSON object or a plain value",
                }
            ],
        )
    if scalar_field is None:
        return {}  # a button's press payload carries no information
    return {scalar_field: value}


def _nested_deeper(value: object, limit: int) -> bool:
    """Whether objects and arrays in ``value`` nest more than ``limit`` levels (no recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _too_deep(value: str) -> ValidationFailed:
    return ValidationFailed(
        "payload is nested too deeply",
        [
            {
                "field": "payload",
                "value": value,
                "allowed": f"a JSON object or a plain value, nested at most {MAX_NESTING} levels",
            }
        ],
    )


def parse_payload(
    payload_type: type[_P],
    raw: RawPayload,
    model: Model | None = None,
    *,
    function: str = "",
) -> _P:
    """Validate ``raw`` as ``payload_type`` for ``model``; raises ValidationFailed."""
    data = raw_to_dict(raw, payload_type.scalar_field)
    try:
        return payload_type.model_validate(data, context={"model": model})
    except ValidationError as err:
        errors = describe_errors(err, payload_type)
        what = f"{function}: " if function else ""
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ValidationFailed(f"{what}{summary}", errors) from None


def _field_for(payload_type: type[Payload], key: str) -> tuple[str, Any] | None:
    for name, info in payload_type.model_fields.items():
        if name == key or info.alias == key:
            return name, info
        alias = info.validation_alias
        if isinstance(alias, AliasChoices) and key in alias.choices:
            return name, info
    return None


def _allowed_of(info: Any) -> str:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return str(extra.get("x-allowed", ""))


MAX_ECHO: Final = 100  # characters of a refused value echoed back in its error


def _jsonable(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_ECHO:
        return value[:MAX_ECHO] + "..."  # a 60 KB value must not come back 60 KB large
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def describe_errors(err: ValidationError, payload_type: type[Payload]) -> list[dict[str, Any]]:
    """pydantic errors as ``{field, value, allowed, message}`` dicts."""
    accepted = [
        (info.alias or name)
        if not isinstance(info.validation_alias, AliasChoices)
        else str(info.validation_alias.choices[0])
        for name, info in payload_type.model_fields.items()
        if name not in payload_type.ignored_fields
    ]
    out: list[dict[str, Any]] = []
    for e in err.errors(include_url=False):
        loc = e.get("loc", ())
        key = str(loc[0]) if loc else "payload"
        ctx = e.get("ctx") or {}
        kind = e.get("type", "")
        found = _field_for(payload_type, key)
        if kind == "extra_forbidden":
            allowed = "fields: " + ", ".join(accepted) if accepted else "no fields"
            message = "unknown field"
        elif kind == "missing":
            allowed = _allowed_of(found[1]) if found else ""
            message = "field required"
        else:
            allowed = str(ctx.get("allowed") or (_allowed_of(found[1]) if found else ""))
            message = str(e.get("msg", "invalid"))
            message = re.sub(r"^Value error, ", "", message)
            message = re.sub(r" \(allowed: .*\)$", "", message)
        if kind == "model_type":
            key, allowed = "payload", "a JSON object"
        out.append(
            {
                "field": key,
                "value": None if kind == "missing" else _jsonable(e.get("input")),
                "allowed": allowed,
                "message": message,
            }
        )
    return out
