"""What the daemon keeps for one charger between polls and across restarts.

GivTCP kept the import cap, the charging mode and the session energy limit in its cache file;
here they live in ``<state_dir>/<charger serial>.evc.json`` (written atomically), with what the
charging policy remembers: the current the user asked for (so a cap that lowered the current can
give it back) and why the daemon stopped a session (so only a stop of its own is undone)::

    {"version": 1, "import_cap": 60, "charging_mode": "Grid", "max_session_energy": 20.5,
     "user_limit": 32, "stopped_by": "import_cap"}

A file that does not parse, or a value out of range, falls back to the default (logged): the
file is outside input like any other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

import structlog

from givtcp_async.control.persist import read_json, write_json
from givtcp_async.registers.evc import MODES

log = structlog.get_logger(__name__)

VERSION: Final = 1
MAX_IMPORT_CAP: Final = 100  # A
MAX_SESSION_ENERGY: Final = 100.0  # kWh
StopReason = Literal["import_cap", "session_energy", "solar"]
_STOP_REASONS: Final = ("import_cap", "session_energy", "solar")


@dataclass(frozen=True, slots=True)
class EvcState:
    import_cap: int = 0  # A; 0 = off
    charging_mode: str = "Grid"
    max_session_energy: float = 0.0  # kWh; 0 = no limit
    user_limit: int | None = None  # A: the limit last set by a person (or a mode), not the cap
    stopped_by: StopReason | None = None

    def held_values(self) -> dict[str, Any]:
        """The published values (GivTCP's names) of the settings held here."""
        return {
            "Import_Cap": self.import_cap,
            "Charging_Mode": self.charging_mode,
            "Max_Session_Energy": self.max_session_energy,
        }


def _checked(data: dict[str, Any]) -> EvcState:
    state = EvcState()
    cap = data.get("import_cap")
    if isinstance(cap, int) and not isinstance(cap, bool) and 0 <= cap <= MAX_IMPORT_CAP:
        state = replace(state, import_cap=cap)
    mode = data.get("charging_mode")
    if mode in MODES:
        state = replace(state, charging_mode=str(mode))
    energy = data.get("max_session_energy")
    if (
        isinstance(energy, int | float)
        and not isinstance(energy, bool)
        and 0 <= energy <= MAX_SESSION_ENERGY
    ):
        state = replace(state, max_session_energy=float(energy))
    limit = data.get("user_limit")
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit <= 80:
        state = replace(state, user_limit=limit)
    stopped = data.get("stopped_by")
    if stopped in _STOP_REASONS:
        state = replace(state, stopped_by=stopped)
    return state


class StateStore:
    """Loads and saves one charger's :class:`EvcState`."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.state = EvcState()
        data = read_json(path) if path is not None else None
        if isinstance(data, dict):
            self.state = _checked(data)
            kept = asdict(self.state)
            if any(kept.get(k) != v for k, v in data.items() if k != "version"):
                log.warning("charger state file had bad values; defaults used for them",
                            path=str(path))  # fmt: skip

    def update(self, **changes: Any) -> EvcState:
        """Apply ``changes``, persist (raises OSError when it cannot) and return the new state."""
        new = replace(self.state, **changes)
        if new != self.state and self.path is not None:
            write_json(self.path, {"version": VERSION, **asdict(new)})
        self.state = new
        return new
