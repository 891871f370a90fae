"""/fullCache's history (issue #16): what it shows is each kept snapshot's flat form, and what it
keeps per inverter is that form compactly, not the snapshots."""

from __future__ import annotations

from array import array
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


def test_full_cache_keeps_no_snapshot_only_what_changed() -> None:
    history = FlatHistory(10)
    snaps = series()
    for snap in snaps:
        history.append(snap)
    rows = list(history._rows)  # snapshots 3 to 12
    # Nothing of a snapshot is kept but its leaves' values: no readings, no snapshots.
    kept = [v for row in rows for part in (row[1], row[3]) if part for v in part]
    assert not any(isinstance(v, Reading | Snapshot) for v in kept)
    # One tuple of paths per distinct set of paths (snapshots 7 and 8 lack PV_Power).
    assert len({id(row[0]) for row in rows}) == 2
    assert rows[0][0] is rows[-1][0]
    # The newest is whole, and so is each one whose paths differ from the one after it (6
    # and 8); every other holds only the values that differ in the one after it.
    assert [row[1] is not None for row in rows] == [i in (6, 8, 12) for i in range(3, 13)]
    paths, _, at, before = rows[-2]
    assert at is not None
    assert before is not None
    assert {paths[i] for i in at} == {
        "Power/Power/SOC",
        "Power/Power/Grid_Voltage",
        "Stats/Time_Since_Last_Update",
        "raw/invertor/soc",
    }
    flat = snaps[-2].flat()
    assert list(before) == [flat[paths[i]] for i in at]
    # While the paths stay, one row is whole: dropping the oldest leaves the rest as they are;
    # a value equal to the one before it is the very object before it.
    newest = rows[-1][1]
    assert newest is not None
    for _ in range(10):
        history.append(snapshot(12, {**every_value(), "SOC": 52, "Grid_Voltage": 240.0}))
    assert [row[1] is not None for row in history._rows] == [False] * 9 + [True]
    assert [row[2] for row in list(history._rows)[1:-1]] == [array("I")] * 8  # no difference
    assert all(a is b for a, b in zip(history._rows[-1][1] or (), newest, strict=True))
    assert history.flats() == [snaps[-1].flat()] * 10
    assert history.flats() == [snaps[-1].flat()] * 10
    # The paths are interned: every inverter's history holds the same strings.
    other = FlatHistory(10)
    other.append(snaps[0])
    common = set(paths) & set(other._rows[0][0])
    mine = {p: p for p in paths}
    assert len(common) > 200
    assert all(mine[p] is p for p in other._rows[0][0] if p in common)


def test_a_leaf_under_another_path_makes_a_whole_row() -> None:
    """As many leaves as before, one of them under another path: seen, and shown as it is."""
    history = FlatHistory(10)
    snaps = series()[:3]
    renamed = snapshot(3, every_value())
    renamed = Snapshot(renamed.serial, renamed.model, renamed.taken_at, renamed.values,
                       renamed.specs, stats={"Time_Since_Last_Update": 3.0, "state": "online"},
                       raw=renamed.raw)  # fmt: skip
    for snap in [*snaps, renamed, snaps[0]]:
        history.append(snap)
    assert history.flats() == [s.flat() for s in [*snaps, renamed, snaps[0]]]
    rows = list(history._rows)
    assert [row[1] is not None for row in rows] == [False, False, True, True, True]
    assert rows[4][0] is rows[0][0]  # the paths before are found again
    assert "Stats/state" in rows[3][0]
