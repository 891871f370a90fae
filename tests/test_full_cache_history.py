"""/fullCache's history (issue #16): what it shows is each kept snapshot's flat form, and what it
keeps per inverter is that form compactly, not the snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from givtcp_async.quality.gates import Reading
from givtcp_async.registers.catalog import derived_for, fields_for
from givtcp_async.registers.models import detect_model
from givtcp_async.snapshot import FlatHistory, Snapshot, Spec

GEN3 = detect_model({0: 0x2001, 19: 308, 21: 308})
_FIELDS = fields_for(GEN3)
SPECS: dict[str, Spec] = {f.name: f for f in _FIELDS}
SPECS.update({x.name: x for x in derived_for(GEN3, _FIELDS)})
T0 = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)


def every_value() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in SPECS.items():
        options = getattr(spec, "options", None)
        out[name] = next(iter(options.values())) if options else 1.5
    return out


def snapshot(i: int, values: dict[str, Any]) -> Snapshot:
    stats = {"Time_Since_Last_Update": float(i), "status": "online"}
    readings = {n: Reading(v) for n, v in values.items()}
    raw = {"invertor": {"soc": i, "model": "2"}}
    return Snapshot("SA1234G567", GEN3, T0 + timedelta(seconds=15 * i), readings, SPECS,
                    stats=stats, raw=raw)  # fmt: skip


def series() -> list[Snapshot]:
    snaps = []
    for i in range(13):
        values = every_value()
        values["SOC"] = 40 + i  # changes every time
        values["Grid_Voltage"] = 240.0 + (i % 2)  # changes back and forth
        if i in (7, 8):
            values["PV_Power"] = None  # unavailable: the leaf is left out, the paths differ
        snaps.append(snapshot(i, values))
    return snaps


def test_full_cache_shows_the_last_snapshots_flat_forms_oldest_first() -> None:
    history = FlatHistory(10)
    snaps = series()
    for snap in snaps:
        history.append(snap)
    assert len(history) == 10
    assert history.flats() == [s.flat() for s in snaps[-10:]]
    assert [list(f) for f in history.flats()] == [list(s.flat()) for s in snaps[-10:]]


def test_full_cache_keeps_no_snapshot_and_shares_what_did_not_change() -> None:
    history = FlatHistory(10)
    snaps = series()
    for snap in snaps:
        history.append(snap)
    rows = list(history._rows)
    # Nothing of a snapshot is kept but the leaves' values: no readings, no snapshots.
    assert not any(isinstance(v, Reading | Snapshot) for _, values in rows for v in values)
    # One tuple of paths while the paths hold (snapshots 7 and 8 lack PV_Power).
    assert len({id(paths) for paths, _ in rows}) == 3
    assert rows[-1][0] is rows[-2][0]
    assert rows[2][0] is rows[1][0]  # snapshots 4 and 5
    # A value that did not change is the object before it; one that did is new.
    paths = rows[-1][0]
    soc = paths.index("Power/Power/SOC")
    battery = next(i for i, p in enumerate(paths) if p.endswith("/Battery_Voltage"))
    assert rows[-1][1][battery] is rows[-2][1][battery]
    assert rows[-1][1][soc] == 52
    assert rows[-2][1][soc] == 51
    # The paths are interned: every inverter's history holds the same strings.
    other = FlatHistory(10)
    other.append(snaps[0])
    common = set(paths) & set(other._rows[0][0])
    mine = {p: p for p in paths}
    assert len(common) > 200
    assert all(mine[p] is p for p in other._rows[0][0] if p in common)
