"""Which MQTT messages a snapshot becomes: GivTCP's topic layout, payload text, change detection.

Pure (no I/O): the MQTT client publishes what :meth:`StateTopics.messages` returns.

Every leaf of the snapshot's runAll tree goes to ``<root>/<serial>/<path>`` (for example
``GivEnergy/SA1234G567/Power/Power/SOC``); the whole tree also goes, as one JSON document, to
``<root>/<serial>/runAll``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from sys import intern
from typing import Any, Final, Protocol

JSON_DOCUMENT = "runAll"


class Tree(Protocol):
    """A snapshot as the state topics need it (an inverter's or an EV charger's)."""

    @property
    def serial(self) -> str: ...

    def runall(self, *, units: bool = False) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: str
    retain: bool


def payload_text(value: Any) -> str:
    """A value as GivTCP publishes it: numbers as text (floats to 3 dp), bools as true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError("non-finite value")
        text = f"{round(value, 3):.3f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def state_base(root: str, serial: str) -> str:
    return f"{root}/{serial}"


def leaves(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every leaf of a runAll tree keyed by its slash-joined path; None leaves are left out."""
    out: dict[str, Any] = {}
    _leaves(tree, prefix, out)
    return out


def _leaves(node: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, value in node.items():
        # Interned: every inverter's tree has the same paths, and StateTopics keeps them.
        path = intern(f"{prefix}/{key}") if prefix else key
        if isinstance(value, Mapping):
            _leaves(value, path, out)
        elif value is not None:
            out[path] = value


@dataclass
class StateTopics:
    """Turns successive snapshots of one inverter into the messages worth publishing.

    The first call (and the first after :meth:`reset`) returns every value; later calls return
    only values whose payload changed, unless ``changes_only`` is off. Values that became
    unavailable are not published (their last message stays; availability covers them), and
    neither is anything non-finite. Paths in ``exclude`` (relative to ``<root>/<serial>``) are
    owned by someone else (the availability topic ``Stats/status``).
    """

    root: str
    retain: bool = True
    changes_only: bool = True
    publish_json: bool = True
    exclude: Collection[str] = ()
    # What was published, by path under ``_base``: the value. Values are compared first; only a
    # changed value is formatted, and the value before it again only when it may read the same
    # (a float past 3 decimals). Not the payloads: ~900 more strings per inverter (issue #16).
    _last: dict[str, Any] = field(default_factory=dict)
    _base: str = ""

    def reset(self) -> None:
        """Forget what was published: the next snapshot is published in full."""
        self._last.clear()

    def topics(self, snapshot: Tree) -> dict[str, str]:
        """Every state topic of ``snapshot`` with its payload (no change detection)."""
        base = state_base(self.root, snapshot.serial)
        out: dict[str, str] = {}
        for path, value in leaves(snapshot.runall()).items():
            if path in self.exclude:
                continue
            try:
                out[f"{base}/{path}"] = payload_text(value)
            except ValueError:
                continue  # non-finite: never published
        return out

    def messages(self, snapshot: Tree) -> list[Message]:
        """The messages worth publishing of ``snapshot``, all at once."""
        return list(self.each_message(snapshot))

    def each_message(self, snapshot: Tree) -> Generator[Message, None, None]:
        """:meth:`messages` one at a time, as a publisher takes them: a value counts as
        published once its message is taken (a full state's ~700 messages never wait in memory
        together, issue #16)."""
        base = state_base(self.root, snapshot.serial)
        tree = snapshot.runall()
        if base != self._base:
            self._last.clear()
            self._base = base
        last = self._last
        exclude = self.exclude
        changes_only = self.changes_only
        for path, value in leaves(tree).items():
            seen = last.get(path)
            if (
                changes_only
                and seen is not None
                and (seen is value or (seen.__class__ is value.__class__ and seen == value))
            ):
                continue
            if path in exclude:
                continue
            try:
                text = payload_text(value)
            except ValueError:
                continue
            last[path] = value
            if (
                changes_only
                and seen is not None
                and not (seen.__class__ is value.__class__ and value.__class__ in _EXACT)
                and payload_text(seen) == text
            ):
                continue  # a different value that reads the same (e.g. past 3 decimals)
            yield Message(f"{base}/{path}", text, self.retain)
        if self.publish_json:
            doc = json.dumps(tree, separators=(",", ":"), default=_json_default)
            yield Message(f"{base}/{JSON_DOCUMENT}", doc, self.retain)


# Types whose different values always read differently: a change of one needs no second format.
_EXACT: Final = frozenset({int, str, bool})


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
