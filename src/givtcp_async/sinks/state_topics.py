"""Which MQTT messages a snapshot becomes: GivTCP's topic layout, payload text, change detection.

Pure (no I/O): the MQTT client publishes what :meth:`StateTopics.messages` returns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from givtcp_async.snapshot import Snapshot


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


@dataclass
class StateTopics:
    """Turns successive snapshots of one inverter into the messages worth publishing.

    The first call (and the first after :meth:`reset`) returns every value; later calls return
    only values whose payload changed, unless ``changes_only`` is off. Values that became
    unavailable are not published (their last message stays; availability covers them).
    """

    root: str
    retain: bool = True
    changes_only: bool = True
    publish_json: bool = True
    _last: dict[str, str] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget what was published: the next snapshot is published in full."""
        self._last.clear()

    def messages(self, snapshot: Snapshot) -> list[Message]:
        base = state_base(self.root, snapshot.serial)
        out: list[Message] = []
        for path, value in snapshot.flat().items():
            topic = f"{base}/{path}"
            text = payload_text(value)
            if self.changes_only and self._last.get(topic) == text:
                continue
            self._last[topic] = text
            out.append(Message(topic, text, self.retain))
        if self.publish_json:
            doc = json.dumps(snapshot.runall(), separators=(",", ":"), default=str)
            out.append(Message(f"{base}/runAll", doc, self.retain))
        return out
