"""What the daemon does to a charging session on its own: GivTCP's modes, session energy limit and
grid import cap. Pure: :func:`decide` turns what the charger and the inverter report into at most
a few actions; the coordinator carries them out through the charger's controls.

In order, first match wins for stopping:

1. **Session energy** (``Max_Session_Energy`` > 0): a charging session that has delivered that
   much is stopped (and not restarted by the daemon).
2. **Mode** (needs the inverter's PV, load and grid voltage): ``Grid`` leaves the current as the
   user set it; ``Hybrid`` charges at the minimum current plus the PV surplus; ``Solar`` charges
   on the surplus alone, stops when it falls below the minimum current and starts again once it
   is back a little above it. The surplus counts the car's own draw as available (the house load
   the inverter sees includes the car).
3. **Import cap** (``Import_Cap`` > 0, on the inverter's grid import current): above 95 % of the
   cap while charging, the limit drops by the excess over 90 % of the cap (GivTCP's rule); a limit
   below the charger's minimum stops the session instead. Below 80 % the limit may rise again
   towards what the user (or the mode) asked, to at most 90 %; a session the cap stopped starts
   again once the minimum current fits under 80 %. Between 80 and 95 % nothing changes.
   Without a fresh grid reading the cap cannot be enforced: a charging session is held at the
   minimum current until the inverter answers again.

Never more than one change of the limit per decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from givtcp_async.evc.state import EvcState, StopReason

HIGH: Final = 0.95  # act above this share of the cap
TARGET: Final = 0.90  # aim for this share
LOW: Final = 0.80  # give current back only below this share
SOLAR_RESTART_MARGIN: Final = 1.0  # A above the minimum before Solar mode starts again


@dataclass(frozen=True, slots=True)
class ChargerView:
    """The charger as this poll read it (None: not read)."""

    charging: bool
    plugged: bool
    limit: float | None  # A, the limit in effect
    evse_min: float
    evse_max: float
    power: float  # W delivered to the car now
    session_energy: float | None  # kWh


@dataclass(frozen=True, slots=True)
class GridView:
    """The inverter as its latest fresh snapshot reports it (None fields: not known)."""

    import_current: float | None  # A drawn from the grid (0 while exporting)
    pv_power: float | None = None  # W
    load_power: float | None = None  # W, the house including the car
    voltage: float | None = None  # V


Kind = Literal["limit", "start", "stop"]


@dataclass(frozen=True, slots=True)
class Action:
    kind: Kind
    amps: int | None = None
    reason: str = ""
    safety: bool = False  # lowers or stops for the cap: never refused by the write budget


@dataclass(frozen=True, slots=True)
class Decision:
    """Actions in order, and what to remember afterwards."""

    actions: tuple[Action, ...] = ()
    stopped_by: StopReason | None = None  # the daemon's own stop in force after the actions
    user_limit: int | None = None  # a mode's figure to remember as the wish (None: unchanged)


def _clamp(amps: float, view: ChargerView) -> int:
    return int(max(view.evse_min, min(view.evse_max, math.floor(amps))))


def _surplus_amps(view: ChargerView, grid: GridView) -> float | None:
    if grid.pv_power is None or grid.load_power is None or not grid.voltage:
        return None
    spare = grid.pv_power - grid.load_power + view.power
    return spare / grid.voltage


def _wish(view: ChargerView, grid: GridView | None, state: EvcState) -> tuple[int | None, bool]:
    """The limit the mode asks for (None: no opinion) and whether Solar wants the car stopped."""
    if state.charging_mode == "Grid" or grid is None:
        return state.user_limit, False
    surplus = _surplus_amps(view, grid)
    if surplus is None:
        return state.user_limit, False
    if state.charging_mode == "Hybrid":
        return _clamp(view.evse_min + max(surplus, 0.0), view), False
    needed = view.evse_min + (SOLAR_RESTART_MARGIN if state.stopped_by == "solar" else 0.0)
    if surplus < needed:
        return None, True
    return _clamp(surplus, view), False


def _start(amps: int, reason: str) -> tuple[Action, ...]:
    # The limit first, so the car never starts above what is wanted.
    return (Action("limit", amps, reason=reason), Action("start", reason=reason))


def decide(view: ChargerView, grid: GridView | None, state: EvcState) -> Decision:
    """The actions to take now; see the module docstring."""
    if not view.plugged or view.limit is None:
        # Nothing to steer; a stop of the daemon's ends when the car leaves.
        return Decision(stopped_by=state.stopped_by if view.plugged else None)
    if state.stopped_by == "session_energy":
        return Decision(stopped_by="session_energy")
    if (
        state.max_session_energy > 0
        and view.charging
        and view.session_energy is not None
        and view.session_energy >= state.max_session_energy
    ):
        reason = f"session energy {view.session_energy:g} kWh reached the limit"
        return Decision((Action("stop", reason=reason),), stopped_by="session_energy")

    wish, solar_stop = _wish(view, grid, state)
    mode_limit = wish if state.charging_mode != "Grid" else None
    if solar_stop:
        if view.charging:
            stop = Action("stop", reason="PV surplus below the minimum current")
            return Decision((stop,), stopped_by="solar")
        return Decision(stopped_by="solar" if state.stopped_by == "solar" else state.stopped_by)
    if state.import_cap > 0:
        return _capped(view, grid, state, wish, mode_limit)
    if state.stopped_by == "solar" and not view.charging and wish is not None:
        return Decision(_start(wish, "PV surplus back"), user_limit=mode_limit)
    if state.stopped_by is not None and not view.charging:
        return Decision(stopped_by=state.stopped_by, user_limit=mode_limit)
    if mode_limit is not None and view.charging and mode_limit != round(view.limit):
        action = Action("limit", mode_limit, reason=f"{state.charging_mode} mode")
        return Decision((action,), user_limit=mode_limit)
    return Decision(user_limit=mode_limit)


def _capped(
    view: ChargerView,
    grid: GridView | None,
    state: EvcState,
    wish: int | None,
    mode_limit: int | None,
) -> Decision:
    cap = float(state.import_cap)
    limit = float(view.limit or 0)
    kept = state.stopped_by
    if grid is None or grid.import_current is None:
        if view.charging and limit > view.evse_min:
            action = Action("limit", int(view.evse_min), reason="grid current unknown: minimum",
                            safety=True)  # fmt: skip
            return Decision((action,), stopped_by=kept, user_limit=mode_limit)
        return Decision(stopped_by=kept, user_limit=mode_limit)
    grid_a = grid.import_current
    wanted = wish if wish is not None else _clamp(limit, view)
    # What to give back later: the mode's figure, else the user's, else the limit before the cap.
    remember = mode_limit if mode_limit is not None else state.user_limit or round(limit)
    if view.charging:
        if grid_a > HIGH * cap:
            new = math.floor(limit - (grid_a - TARGET * cap))
            why = f"grid import {grid_a:g} A above {HIGH:.0%} of the {cap:g} A cap"
            if new >= view.evse_min:
                action = Action("limit", new, reason=why, safety=True)
                return Decision((action,), user_limit=remember)
            stop = Action("stop", reason=f"{why}; the minimum current does not fit", safety=True)
            return Decision((stop,), stopped_by="import_cap", user_limit=remember)
        if mode_limit is not None and mode_limit < limit:  # the mode asks for less: always fine
            return Decision((Action("limit", mode_limit, reason=f"{state.charging_mode} mode"),),
                            user_limit=mode_limit)  # fmt: skip
        room = TARGET * cap - grid_a
        if (
            grid_a < LOW * cap
            and wanted > limit
            and (new := min(wanted, math.floor(limit + room))) > limit
        ):
            why = f"grid import {grid_a:g} A below {LOW:.0%} of the {cap:g} A cap"
            return Decision((Action("limit", new, reason=why),), user_limit=mode_limit)
        return Decision(user_limit=mode_limit)
    if kept in ("import_cap", "solar"):
        if grid_a + view.evse_min <= LOW * cap:
            new = max(int(view.evse_min), min(wanted, math.floor(TARGET * cap - grid_a)))
            why = f"grid import {grid_a:g} A leaves room under the {cap:g} A cap"
            return Decision(_start(new, why), user_limit=mode_limit)
        return Decision(stopped_by=kept, user_limit=mode_limit)
    return Decision(stopped_by=kept, user_limit=mode_limit)
