"""The write allow-list per model, with the values each register may take (SPEC §4.9).

This is checked again for every write of every plan, independently of the catalogue: a plan that
strays outside it is refused before anything is sent. Installer-tier and destructive registers
are never on it, nor HR31/32 (the disputed "charge slot 2", SPEC §7 #4), and HR163 only with 100.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from givtcp_async.control.layout import REBOOT, REBOOT_VALUE, Layout, LayoutKind
from givtcp_async.control.layout import has_pause_mode as _has_pause_mode
from givtcp_async.errors import WriteNotAllowed
from givtcp_async.registers.models import Model


@dataclass(frozen=True, slots=True)
class Rule:
    """What one register accepts: a check and its description."""

    allowed: str
    check: Callable[[int], bool]


def _span(lo: int, hi: int) -> Rule:
    return Rule(f"{lo}-{hi}", lambda v: lo <= v <= hi)


def _one_of(*values: int) -> Rule:
    return Rule(" or ".join(str(v) for v in values), lambda v: v in values)


def _is_hhmm(v: int) -> bool:
    return 0 <= v <= 2359 and v % 100 < 60


BOOL: Final = _one_of(0, 1)
PERCENT: Final = _span(4, 100)
PERCENT0: Final = _span(0, 100)
PERCENT1: Final = _span(1, 100)
HHMM: Final = Rule("HHMM 0000-2359 with minutes < 60", _is_hhmm)
U16: Final = _span(0, 0xFFFF)

_CLOCK_RULES: Final = {
    35: _span(0, 99),
    36: _span(1, 12),
    37: _span(1, 31),
    38: _span(0, 23),
    39: _span(0, 59),
    40: _span(0, 59),
}

# DW's standard single-phase tier (Gate 1) without HR31/32.
_SINGLE_STANDARD: Final[dict[int, Rule]] = {
    20: BOOL,
    27: BOOL,
    29: _one_of(0, 1, 3),
    **_CLOCK_RULES,
    44: HHMM,
    45: HHMM,
    50: PERCENT0,
    56: HHMM,
    57: HHMM,
    59: BOOL,
    94: HHMM,
    95: HHMM,
    96: BOOL,
    110: PERCENT,
    111: PERCENT0,
    112: PERCENT0,
    114: PERCENT,
    116: PERCENT,
    REBOOT: _one_of(REBOOT_VALUE),
    166: BOOL,
}


def _slot_registers(first_slot: int) -> dict[int, Rule]:
    """Slots first_slot..10 of the HR240 page: start/end times and (GivTCP) targets."""
    rules: dict[int, Rule] = {}
    for n in range(first_slot, 11):
        charge = 242 + 3 * (n - 1)  # target; start/end sit just before it from slot 3 on
        discharge = 272 + 3 * (n - 1)
        rules[charge] = PERCENT
        rules[discharge] = PERCENT
        if n == 2:
            rules[243], rules[244] = HHMM, HHMM  # charge slot 2 (vendor doc, GivTCP)
        if n >= 3:
            rules[charge - 2], rules[charge - 1] = HHMM, HHMM
            rules[discharge - 2], rules[discharge - 1] = HHMM, HHMM
    return rules


_HR300: Final = {311: _one_of(0, 1, 2), 313: PERCENT1, 314: PERCENT1, 317: BOOL}
_PAUSE: Final = {318: _span(0, 3), 319: HHMM, 320: HHMM}

_THREE_PHASE: Final[dict[int, Rule]] = {
    **_CLOCK_RULES,
    1005: BOOL,
    1078: PERCENT,
    1108: PERCENT0,
    1109: PERCENT,
    1110: PERCENT0,
    1111: PERCENT,
    1112: BOOL,
    1113: HHMM,
    1114: HHMM,
    1115: HHMM,
    1116: HHMM,
    1118: HHMM,
    1119: HHMM,
    1120: HHMM,
    1121: HHMM,
    1122: BOOL,
    1123: BOOL,
}


def _ems() -> dict[int, Rule]:
    rules: dict[int, Rule] = {**_CLOCK_RULES, 2040: BOOL, 2071: U16}
    for base in (2044, 2053, 2062):  # discharge, charge, export slot triples
        for n in range(3):
            start = base + 3 * n
            rules[start], rules[start + 1], rules[start + 2] = HHMM, HHMM, PERCENT
    return rules


_EMS: Final = _ems()


def allowed_registers(model: Model) -> dict[int, Rule]:
    """Every register ``model`` may be written at, with its value rule."""
    kind = Layout(model).kind
    if kind is LayoutKind.EMS:
        return dict(_EMS)
    if kind is LayoutKind.PV_ONLY:
        return {**_CLOCK_RULES, REBOOT: _one_of(REBOOT_VALUE)}
    if kind is LayoutKind.THREE_PHASE:
        rules = dict(_THREE_PHASE)
        if model.extended_slots:
            rules.update(_slot_registers(3))
        return rules
    rules = dict(_SINGLE_STANDARD)
    if model.extended_slots:
        rules.update(_slot_registers(1))
    if model.has_hr300:
        rules.update(_HR300)
    if _has_pause_mode(model):
        rules.update(_PAUSE)
    return rules


def refusal(
    model: Model, register: int, value: int, *, restore: bool = False
) -> dict[str, object] | None:
    """Why writing ``value`` to ``register`` is refused on ``model`` (None when allowed).

    ``restore``: ``value`` was read from this register earlier and is being put back; any u16
    passes the value rule then, except on HR163 (a command, never restored).
    """
    rules = allowed_registers(model)
    rule = rules.get(register)
    if rule is None:
        return {
            "field": f"HR{register}",
            "value": value,
            "allowed": f"not on the write allow-list of the {model.name} ({model.dtc})",
        }
    if restore and register != REBOOT:
        rule = U16
    if not rule.check(value):
        return {"field": f"HR{register}", "value": value, "allowed": rule.allowed}
    return None


def check_writes(model: Model, writes: Iterable[tuple[int, int] | tuple[int, int, bool]]) -> None:
    """Raise :class:`WriteNotAllowed` naming every write the allow-list refuses.

    Each write is (register, value) or (register, value, restore).
    """
    problems = []
    for write in writes:
        reg, value = write[0], write[1]
        restore = bool(write[2]) if len(write) > 2 else False
        if (p := refusal(model, reg, value, restore=restore)) is not None:
            problems.append(p)
    if problems:
        detail = "; ".join(
            f"{p['field']} := {p['value']} (allowed: {p['allowed']})" for p in problems
        )
        raise AllowListRefusal(f"refused by the write allow-list: {detail}", problems)


class AllowListRefusal(WriteNotAllowed):
    """:class:`WriteNotAllowed` with one ``{field, value, allowed}`` dict per refused write."""

    def __init__(self, message: str, problems: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.problems = problems
