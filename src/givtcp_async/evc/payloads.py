"""Payload models of the charger's controls, in GivTCP's forms (REST bodies and MQTT payloads).

They use the inverter controls' machinery (:func:`~givtcp_async.control.payloads.parse_payload`):
a JSON object, a plain value filling the one field, or nothing; unknown fields refused; every
error names the field, the value received and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, ClassVar, Final

from pydantic import AliasChoices, BeforeValidator, WithJsonSchema

from givtcp_async.control.payloads import (
    InverterTime,
    OnOff,
    Payload,
    _error,
    _field,
    _int_schema,
    whole_number,
)
from givtcp_async.evc.state import MAX_IMPORT_CAP, MAX_SESSION_ENERGY
from givtcp_async.registers.evc import CONTROL_CHOICES, MODES

MAX_AMPS: Final = 80  # no single-phase or three-phase GivEVC takes more


def _whole_range(lo: int, hi: int, unit: str) -> Callable[[object], int]:
    allowed = f"{lo}-{hi} {unit}"

    def check(value: object) -> int:
        number = whole_number(value, allowed)
        if not lo <= number <= hi:
            raise _error("range", "out of range", allowed)
        return number

    return check


def _energy(value: object) -> float:
    allowed = f"0-{MAX_SESSION_ENERGY:g} kWh (0 = no limit)"
    if isinstance(value, bool):
        raise _error("number_type", "expected a number, not true/false", allowed)
    number: float
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _error("number_type", "expected a number", allowed) from None
    else:
        raise _error("number_type", "expected a number", allowed)
    if not math.isfinite(number) or not 0 <= number <= MAX_SESSION_ENERGY:
        raise _error("range", "out of range", allowed)
    return round(number, 1)


def _choice(names: tuple[str, ...]) -> Callable[[object], str]:
    allowed = ", ".join(names)
    by_key = {n.lower(): n for n in names}

    def parse(value: object) -> str:
        if isinstance(value, str) and value.strip().lower() in by_key:
            return by_key[value.strip().lower()]
        raise _error("choice", "not one of the allowed values", allowed)

    return parse


def _whole_amps(value: object) -> int:
    # The range is the charger's own (its EVSE minimum and maximum): the planner checks it.
    return whole_number(value, "a whole number of amps within the charger's range (6-32 A)")


Amps = Annotated[int, BeforeValidator(_whole_amps), WithJsonSchema(_int_schema(6, 32, "A"))]
CapAmps = Annotated[
    int,
    BeforeValidator(_whole_range(0, MAX_IMPORT_CAP, "A (0 = off)")),
    WithJsonSchema(_int_schema(0, MAX_IMPORT_CAP, "A")),
]
Kwh = Annotated[
    float,
    BeforeValidator(_energy),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0, "maximum": MAX_SESSION_ENERGY},
                              {"type": "string"}], "description": " (kWh)"}),
]  # fmt: skip
Mode = Annotated[str, BeforeValidator(_choice(MODES)), WithJsonSchema({"enum": list(MODES)})]
Control = Annotated[
    str,
    BeforeValidator(_choice(CONTROL_CHOICES)),
    WithJsonSchema({"enum": list(CONTROL_CHOICES)}),
]


class CurrentLimitPayload(Payload):
    scalar_field: ClassVar[str | None] = "current"
    current: Amps = _field(
        "amps", "the charger's EVSE minimum to maximum (6-32 A)", "charge current limit in A"
    )


class ImportCapPayload(Payload):
    scalar_field: ClassVar[str | None] = "current"
    current: CapAmps = _field(
        "amps", f"0-{MAX_IMPORT_CAP} A (0 = off)", "grid import cap in A; 0 turns it off"
    )


class SessionEnergyPayload(Payload):
    scalar_field: ClassVar[str | None] = "energy"
    energy: Kwh = _field(
        "kwh", f"0-{MAX_SESSION_ENERGY:g} kWh (0 = no limit)", "session energy limit in kWh"
    )


class ChargingModePayload(Payload):
    scalar_field: ClassVar[str | None] = "state"
    state: Mode = _field(
        "choice", ", ".join(MODES), "charging mode",
        validation_alias=AliasChoices("state", "mode"),
    )  # fmt: skip


class ChargeControlPayload(Payload):
    scalar_field: ClassVar[str | None] = "mode"
    mode: Control = _field(
        "choice", ", ".join(CONTROL_CHOICES), "start or stop charging",
        validation_alias=AliasChoices("mode", "state"),
    )  # fmt: skip


class PlugAndGoPayload(Payload):
    scalar_field: ClassVar[str | None] = "state"
    state: OnOff = _field("switch", "enable or disable", "Plug and Go: enable or disable")


class SystemTimePayload(Payload):
    scalar_field: ClassVar[str | None] = "dateTime"
    dateTime: InverterTime = _field(
        "datetime", "dd/mm/yyyy hh:mm:ss, a real date 2000-2099", "the charger's local time"
    )
