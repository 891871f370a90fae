"""Immutable per-refresh snapshots, and their rendering in GivTCP's runAll shape.

A :class:`Snapshot` holds only validated readings (see :mod:`givtcp_async.quality.gates`). Sinks
(MQTT, REST, Influx) read snapshots and never touch registers.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from sys import intern
from typing import Any

from givtcp_async.layout import TreeLayout, device_paths, group, render
from givtcp_async.quality.gates import Reading
from givtcp_async.registers.models import Model
from givtcp_async.registers.schema import Derived, Field

Spec = Field | Derived


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    """Readings of one battery pack or meter, keyed by field name."""

    address: int
    serial: str
    values: Mapping[str, Reading]
    specs: Mapping[str, Spec]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything known about one inverter after one refresh."""

    serial: str
    model: Model
    taken_at: datetime  # timezone-aware
    values: Mapping[str, Reading]
    specs: Mapping[str, Spec]
    batteries: tuple[DeviceSnapshot, ...] = ()
    meters: tuple[DeviceSnapshot, ...] = ()
    stats: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] | None = None  # print_raw (see registers/raw.py)
    layout: TreeLayout = TreeLayout.GIVTCP3

    def value(self, name: str) -> Any:
        """The published value of an inverter-level field (None when unavailable)."""
        reading = self.values.get(name)
        return None if reading is None else reading.value

    def stale(self) -> list[str]:
        """Names of readings currently republished as their last good value."""
        names = [n for n, r in self.values.items() if r.stale and r.value is not None]
        for dev in (*self.batteries, *self.meters):
            names.extend(f"{dev.serial}/{n}" for n, r in dev.values.items() if r.stale)
        return sorted(names)

    def quality(self) -> dict[str, list[str]]:
        """The runAll paths (slash-joined) of readings republished as their last good value
        (``stale``) and of the model's values that have no valid reading now (``missing``: the
        map has them for this model, runAll leaves them out). The dashboard greys the first
        and marks the second; a path in neither is not part of this model."""
        stale: list[str] = []
        missing: list[str] = []
        for name, spec in self.specs.items():
            reading = self.values.get(name)
            where = "/".join((*group(self.layout, spec.path, self.serial), name))
            if reading is None or reading.value is None:
                if isinstance(spec, Derived) and all(
                    self.value(i) is not None for i in spec.inputs if i in self.specs
                ):
                    continue  # worked out from valid readings as nothing: not this plant's
                missing.append(where)
            elif reading.stale:
                stale.append(where)
        devices = (*self.batteries, *self.meters)
        paths = device_paths(self.layout, devices)
        for dev in devices:
            for name, reading in dev.values.items():
                if reading.stale and reading.value is not None:
                    parts = (*paths[dev.address], *dev.specs[name].path, name)
                    stale.append("/".join(parts))
        return {"stale": sorted(stale), "missing": sorted(missing)}

    def runall(self, *, units: bool = False) -> dict[str, Any]:
        """The GivTCP-shaped nested tree (JSON-ready) in the snapshot's layout (see
        :mod:`givtcp_async.layout`); ``units`` gives {value, unit} leaves."""
        tree: dict[str, Any] = {}
        layout = self.layout
        for name, reading in self.values.items():
            if reading.value is None:
                continue  # unavailable: never published
            node = _node(tree, group(layout, self.specs[name].path, self.serial))
            value = _jsonable(render(layout, name, reading.value, self.model))
            node[name] = {"value": value, "unit": reading.unit} if units else value
        devices = (*self.batteries, *self.meters)
        paths = device_paths(layout, devices)
        for dev in devices:
            _fill(_node(tree, paths[dev.address]), dev.values, dev.specs, units)
        if self.stats:
            tree["Stats"] = {k: _jsonable(v) for k, v in self.stats.items()}
        if self.raw is not None:
            tree["raw"] = _copy(self.raw)
        return tree

    def flat(self) -> dict[str, Any]:
        """Every leaf of :meth:`runall` keyed by its slash-joined path (the MQTT topic tail)."""
        out: dict[str, Any] = {}
        _flatten(self.runall(), "", out)
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _copy(node: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, Mapping) else _jsonable(v) for k, v in node.items()}


def _node(tree: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = tree
    for part in path:
        node = node.setdefault(part, {})
    return node


def _fill(
    tree: dict[str, Any], values: Mapping[str, Reading], specs: Mapping[str, Spec], units: bool
) -> None:
    for name, reading in values.items():
        if reading.value is None:
            continue  # unavailable: never published
        spec = specs[name]
        node = tree
        for part in spec.path:
            node = node.setdefault(part, {})
        value = _jsonable(reading.value)
        node[name] = {"value": value, "unit": reading.unit} if units else value


def _flatten(node: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, value in node.items():
        path = f"{prefix}/{key}" if prefix else key
        if isinstance(value, Mapping) and not ("value" in value and "unit" in value):
            _flatten(value, path, out)
        else:
            out[path] = value


class FlatHistory:
    """The flat form (:meth:`Snapshot.flat`) of the last ``maxlen`` snapshots, oldest first:
    what GivTCP 3's /fullCache shows.

    Kept compact (issue #16): not the snapshots themselves (each its readings, raw registers and
    devices, ~60 KiB of its own) but their leaves: the newest as a tuple of values under a tuple
    of paths, each older one with the same paths as only the values that differ from the row
    after it (their positions and values), one with other paths whole. So one whole row is kept
    while the paths stay. The paths are interned, and rows with the same paths share one tuple
    of them; a value equal to the one before it (same type) is the very object before it. A
    flat form depends on nothing but its snapshot, so making it on arrival shows what making it
    on request did.
    """

    __slots__ = ("_maxlen", "_rows")

    def __init__(self, maxlen: int) -> None:
        self._maxlen = maxlen
        # (paths, every value, None, None) for the newest row and any row whose paths the row
        # after it does not have; else (paths, None, positions, their values in this row)
        self._rows: deque[_Row] = deque()

    def __len__(self) -> int:
        return len(self._rows)

    def append(self, snap: Snapshot) -> None:
        tree = snap.runall()
        rows = self._rows
        # The leaves where the newest row has them (the common case): no path text is made.
        leaves = _leaves_at(tree, rows[-1][0]) if rows else None
        if leaves is not None:
            paths, last, _, _ = rows[-1]
            assert last is not None
            at = array("I")
            before: list[Any] = []
            values = list(last)
            for i, (old, new) in enumerate(zip(last, leaves, strict=True)):
                if not (old is new or (old.__class__ is new.__class__ and old == new)):
                    at.append(i)
                    before.append(old)
                    values[i] = new
            rows[-1] = (paths, None, at, tuple(before))
            rows.append((paths, tuple(values), None, None))
        else:
            flat: dict[str, Any] = {}
            _flatten(tree, "", flat)
            found = next((r[0] for r in rows if _same_paths(r[0], flat)), None)
            paths = tuple(map(intern, flat)) if found is None else found
            rows.append((paths, tuple(flat.values()), None, None))
        if len(rows) > self._maxlen:
            rows.popleft()  # whole, or the differences from the row after it: not needed

    def flats(self) -> list[dict[str, Any]]:
        """Each kept snapshot's :meth:`Snapshot.flat`, oldest first."""
        out: list[dict[str, Any]] = []
        values: list[Any] = []
        for paths, whole, at, before in reversed(self._rows):
            if whole is not None:
                values = list(whole)
            else:
                assert at is not None
                assert before is not None
                for i, value in zip(at, before, strict=True):
                    values[i] = value
            out.append(dict(zip(paths, values, strict=True)))
        out.reverse()
        return out


_Row = tuple[tuple[str, ...], tuple[Any, ...] | None, "array[int] | None", tuple[Any, ...] | None]


def _same_paths(paths: tuple[str, ...], flat: Mapping[str, Any]) -> bool:
    return len(paths) == len(flat) and all(a == b for a, b in zip(paths, flat, strict=True))


def _leaves_at(tree: Mapping[str, Any], paths: tuple[str, ...]) -> list[Any] | None:
    """The leaves of ``tree`` (as :meth:`Snapshot.flat` has them) when their paths are exactly
    ``paths``, in order; else None. Compares without joining a path text per leaf."""
    out: list[Any] = []
    if _walk(tree, "", paths, out) and len(out) == len(paths):
        return out
    return None


def _walk(node: Mapping[Any, Any], prefix: str, paths: tuple[str, ...], out: list[Any]) -> bool:
    for key, value in node.items():
        if not isinstance(key, str):
            return False  # as _flatten would make it: left to it
        if isinstance(value, Mapping) and not ("value" in value and "unit" in value):
            if not _walk(value, f"{prefix}/{key}" if prefix else key, paths, out):
                return False
            continue
        i = len(out)
        if i >= len(paths):
            return False
        path = paths[i]
        if prefix:
            n = len(prefix)
            if not (
                len(path) == n + 1 + len(key)
                and path[n] == "/"
                and path.startswith(prefix)
                and path.endswith(key)
            ):
                return False
        elif path != key:
            return False
        out.append(value)
    return True
