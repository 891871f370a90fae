"""Random and mutated payloads for every control function (issue #8 §2, catalogue level).

Each command runs against the simulated inverter over TCP. Whatever the payload: the controller
never raises, a rejected command writes nothing, and every register write that does happen comes
from a payload the catalogue accepts and is allowed on this model. (The MQTT and REST tests run
the same fuzzer through their transports.)
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from givtcp_async.control import allowlist
from givtcp_async.control.catalogue import CATALOGUE
from givtcp_async.errors import GivTcpError
from givtcp_async.protocol.frames import WriteRequest
from givtcp_async.testing.fuzz import random_payload
from tests.control_support import rig


def as_transport(payload: object) -> str | bytes | dict[str, Any] | None:
    """How a payload reaches the controller from MQTT (bytes/text) or REST (a JSON object)."""
    if payload is None or isinstance(payload, str | bytes | dict):
        return payload
    return json.dumps(payload)


@pytest.mark.parametrize("kind", ["gen3", "gen1", "ac"])
async def test_random_payloads_never_write_unless_valid(tmp_path: Path, kind: str) -> None:
    rng = random.Random(f"fuzz-{kind}")
    names = [*CATALOGUE.names(), *CATALOGUE.aliases, *CATALOGUE.routers, "noSuchFunction"]
    statuses: Counter[str] = Counter()
    async with rig(kind, tmp_path) as r:
        for _ in range(400):
            name = rng.choice(names)
            try:
                example = CATALOGUE.get(name).example
            except GivTcpError:
                example = None
            payload = as_transport(random_payload(rng, example))
            before = r.snapshot()
            mark = r.sim.mark()
            result = await r.controller.execute(name, payload)
            statuses[result.status] += 1
            writes = [q for q in r.sim.requests_seen(mark) if isinstance(q, WriteRequest)]
            if result.status == "rejected":
                assert writes == [], (name, payload, result.message)
                assert r.snapshot() == before, (name, payload)
                assert result.errors, (name, payload)
                assert all({"field", "allowed"} <= set(e) for e in result.errors)
                continue
            # Something was attempted: the payload must be one the catalogue accepts ...
            CATALOGUE.resolve(name, payload, r.model)
            # ... and every write must be allowed on this model.
            allowlist.check_writes(r.model, ((w.register, w.value) for w in writes))
    # The fuzzer exercised both sides of the contract.
    assert statuses["rejected"] > 100
    assert statuses["ok"] > 20
