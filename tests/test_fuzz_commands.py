"""Random and mutated payloads for every control function (issue #8 §2, catalogue level).

Each command runs against the simulated inverter over TCP. Whatever the payload: the controller
never raises, a rejected command writes nothing, and every register write that does happen comes
from a payload the catalogue accepts and is allowed on this model. (tests/test_fuzz_transport.py
runs the same fuzzer, and raw bodies it does not make, through MQTT and REST.)
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
from givtcp_async.control.result import rejected
from givtcp_async.errors import GivTcpError, ValidationFailed
from givtcp_async.protocol.frames import WriteRequest
from givtcp_async.testing.fuzz import random_payload
from tests.control_support import model_of, rig


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
            result = await r.control.execute(name, payload)
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


def _nested(depth: int, inner: str = "") -> str:
    return "[" * depth + inner + "]" * depth


# Payloads past what Python's JSON decoder (about 1000 levels), pydantic's validation (about 500)
# and its JSON encoder (255) manage, and numbers Python will not convert.
BEYOND_LIMITS = (
    "[" * 5000,
    _nested(300),
    '{"a":' * 2000 + "1" + "}" * 2000,
    '{"chargeToPercent": ' + _nested(300, "80") + "}",
    '{"slot": "3", "start": ' + _nested(600, '"0100"') + "}",
    '{"chargeToPercent": ' + "9" * 5000 + "}",
    '{"chargeRate": "' + "9" * 400 + '.0"}',
    "9" * 400 + ".0",  # a plain value: buttons ignore it
)


@pytest.mark.parametrize("raw", BEYOND_LIMITS, ids=lambda raw: raw[:24])
def test_payloads_beyond_the_parsers_limits_are_refused_not_raised(raw: str) -> None:
    """Every name refuses them (bar a button given a plain value) with errors naming the field,
    and the refusal is JSON."""
    model = model_of("gen3")
    nested = json.loads(_nested(40))  # already parsed, as REST hands over a JSON object
    for name in CATALOGUE.names():
        for payload in (raw, raw.encode(), {"chargeToPercent": nested}):
            try:
                fn, _ = CATALOGUE.resolve(name, payload, model)
            except ValidationFailed as err:
                refusal = rejected(name, str(err), err.errors)
            else:
                assert raw[0].isdigit(), (name, raw[:40])
                assert fn.payload.scalar_field is None, (name, raw[:40])
                continue
            assert refusal.errors, (name, raw[:40])
            assert all(isinstance(e["allowed"], str) for e in refusal.errors), refusal.errors
            json.dumps(refusal.to_json(), allow_nan=False)
