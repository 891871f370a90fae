"""What the last scan of an inverter's meters or battery packs found, kept in the state directory.

Absent meters time out on some models (eight probes, 0.5 s each), so the meter scan runs once and
its result is kept in ``<state_dir>/<serial>.meters.json`` (written atomically); later starts use
it until it is :data:`RESCAN_AFTER` old, or until a scan is asked for (``read --scan-meters``).
The LV packs found (and the LV BCU page at 0x31) are kept the same way
(``<serial>.packs.json``): the daemon's first poll reads the remembered packs without probing
the six addresses first, and the packs are probed again right after it. A file comes from
disk: anything but a well-formed, recent result for the right addresses means "scan again".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

from givtcp_async.control.persist import read_json, state_file, write_json
from givtcp_async.registers.plan import LV_BCU, LV_PACKS, METERS

log = structlog.get_logger(__name__)

RESCAN_AFTER: Final = 86_400.0  # seconds: meters are scanned again daily
_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class Scan:
    found: tuple[int, ...]  # the addresses that answered
    at: float  # Unix time of the scan

    @property
    def due(self) -> float:
        """Unix time of the next scan."""
        return self.at + RESCAN_AFTER


# The pack scan keeps the LV BCU page (0x31) it found beside the packs.
KINDS: Final = {"meters": METERS, "packs": (*LV_PACKS, LV_BCU)}


def memory_file(state_dir: Path, serial: str, kind: str = "meters") -> Path:
    """Where the scan of ``kind`` ("meters" or "packs") of one inverter is kept."""
    if kind not in KINDS:
        raise ValueError(f"unknown scan kind {kind!r}")
    return state_file(state_dir, serial, kind)


def remembered(
    state_dir: Path, serial: str, kind: str, now: float, max_age: float = RESCAN_AFTER
) -> Scan | None:
    """The last scan of ``kind`` of inverter ``serial``, or None when it must be scanned again."""
    allowed = KINDS[kind]
    data = read_json(memory_file(state_dir, serial, kind))
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        return None
    at, found = data.get("scanned_at"), data.get("found")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        return None
    if not 0 <= now - at <= max_age:  # too old, or from the future (the clock moved back)
        return None
    if not isinstance(found, list) or len(found) > len(allowed):
        return None
    if any(isinstance(a, bool) or not isinstance(a, int) or a not in allowed for a in found):
        return None
    return Scan(tuple(sorted(set(found))), float(at))


def remember(state_dir: Path, serial: str, kind: str, found: Sequence[int], now: float) -> None:
    """Keep a scan's result; a state directory that cannot be written only costs a rescan."""
    path = memory_file(state_dir, serial, kind)
    try:
        write_json(path, {"version": _VERSION, "scanned_at": now, "found": sorted(found)})
    except OSError as err:
        log.warning("cannot remember a scan", path=str(path), error=str(err))
