"""Random and mutated command payloads through MQTT and REST (issue #8 §2, transport level).

The real daemon runs against the simulated inverter, frozen at noon and on the plant's clock (so
no timed override ends by itself during the run). A test client publishes to the control topics
or POSTs to the control routes, for every function, alias and slot router and for names that
are none of these: payloads from :func:`givtcp_async.testing.fuzz.random_payload` (often a
mutated example) and raw bodies that fuzzer does not make: not UTF-8, empty, over the 64 KiB cap,
deeply nested, JSON of the wrong type, NaN and Infinity, huge numbers, unicode, retained
messages, odd content types and encodings, query strings. The random generators are seeded: a
failure reproduces.

For every message or request: an answer arrives (an MQTT result, a JSON HTTP body), or, where
there is nothing to answer to, a log line says so; a rejection writes nothing and names each
field and what is allowed; a payload the catalogue refuses is never executed; every register
written comes from a payload the catalogue accepts, is on the model's write allow-list and is
exactly what the answer reports. Afterwards the daemon still runs all its tasks and polls, and
the MQTT service is still on its first broker connection. (The catalogue-level fuzzer, every
model, is tests/test_fuzz_commands.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import yarl
from structlog.testing import capture_logs

from givtcp_async.control import allowlist
from givtcp_async.control.catalogue import CATALOGUE, ControlFunction
from givtcp_async.control.executor import Controller
from givtcp_async.errors import GivTcpError
from givtcp_async.protocol.frames import WriteRequest
from givtcp_async.registers.models import Model
from givtcp_async.simulator.plant import PlantConfig
from givtcp_async.simulator.server import DongleSimulator
from givtcp_async.sinks.mqtt import MAX_PENDING_COMMANDS, MqttService
from givtcp_async.testing.fuzz import random_payload
from tests.harness import Rig, running_daemon
from tests.mqtt_support import Watcher, watching
from tests.rest_support import NOON, RestRig, rest_rig, settled
from tests.servers import Mosquitto

ROOT: Final = "GivEnergy"
SERIAL: Final = "SA2347G000"
STRANGER: Final = "XX0000X000"  # a serial this daemon does not serve
PLANT: Final = PlantConfig(speed=0, start=NOON.replace(tzinfo=None), serial=SERIAL)
CAP: Final = 64 * 1024  # docs/mqtt.md, docs/rest.md: payloads and bodies over 64 KiB are refused
STATUSES: Final = frozenset({"ok", "rejected", "failed", "partial"})
MESSAGES: Final = 300  # random messages (requests) sent one at a time, per transport
BURST: Final = 64  # random messages (requests) sent at once
QUEUED: Final = MAX_PENDING_COMMANDS + 8  # valid commands sent while the inverter is busy
# The test client sends at once too, as the broker (tests/servers.py) and the daemon do.
NODELAY: Final = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]

UNKNOWN_NAMES: Final = (
    "noSuchFunction", "setChargeTarget0", "setChargeSlot11", "setExportSlot4", "forceCharge2",
    "setChargeTarget💡", "é", "x" * 400, "null", "result", "control", "runAll", "setChargeSlot 1",
)  # fmt: skip
# rebootAddon restarts the daemon, as it should (tests/test_givtcp3_functions.py): not fuzzed.
RESTART: Final = frozenset({"rebootAddon", *CATALOGUE.get("rebootAddon").aliases})
NAMES: Final = (*(n for n in CATALOGUE.names() if n not in RESTART), *UNKNOWN_NAMES)
_ROUTERS: Final = {name.lower(): router for name, router in CATALOGUE.routers.items()}


def _nested(depth: int, inner: str = "") -> str:
    return "[" * depth + inner + "]" * depth


# Raw payloads random_payload does not make; each is sent once to a random name, and they turn
# up among the random ones too.
ODD: Final[tuple[bytes, ...]] = (
    # not UTF-8
    b"\xff\xfe\xfd", b"\xc3\x28", b"80\xff", '{"chargeToPercent": "8é"}'.encode("latin-1"),
    # blank
    b" ", b"\r\n\t ",
    # deeply nested (Python's JSON decoder gives up near 1000 levels, pydantic's encoder at 255)
    b"[" * 5000, _nested(300).encode(), _nested(1200).encode(),
    ('{"a":' * 2000 + "1" + "}" * 2000).encode(),
    ('{"chargeToPercent": ' + _nested(300, "80") + "}").encode(),
    ('{"slot": "3", "start": ' + _nested(600, '"0100"') + "}").encode(),
    ('{"duration": ' + _nested(50, "30") + "}").encode(),
    # JSON of the wrong type
    b"[1, 2]", b"[]", b"{}", b"true", b"false", b"null", b'"80"', b"80.0", b"8e1", b"0x50", b"-0",
    b'{"chargeToPercent": {"value": 80}}', b'{"chargeToPercent": [80]}',
    b'{"chargeToPercent": true}', b'{"chargeToPercent": null}', b'{"slot": [3], "start": "0100"}',
    b'{"slot": {"n": 3}}', b'{"duration": [30]}', b'{"mode": 1.5}', b'{"state": 1}',
    # numbers JSON cannot carry, or Python will not convert
    b"NaN", b"Infinity", b"-Infinity", b"1e400", b'{"chargeToPercent": NaN}',
    b'{"chargeToPercent": Infinity}', b'{"duration": -Infinity}', b'{"slot": NaN, "start": "0100"}',
    b'{"dischargeRate": 1e999}', ('{"chargeToPercent": ' + "9" * 5000 + "}").encode(),
    ('{"slot": ' + "3" * 5000 + "}").encode(), b"9" * 5000, ("9" * 400 + ".0").encode(),
    ('{"chargeRate": "' + "9" * 400 + '.0"}').encode(),
    # unicode
    "８０".encode(), "٣٠".encode(), '{"chargeToPercent": "💡"}'.encode(), '{"💡": 1}'.encode(),
    b'"\\ud800"', '{"state": "enable\u00a0"}'.encode(), "\u202eelbane".encode(), b"\x00",
    # many fields
    json.dumps({f"k{i}": i for i in range(4000)}).encode(),
)  # fmt: skip
# Over the cap in several shapes (refused unread), and exactly at it (a valid plain value padded
# with blanks: accepted).
HUGE: Final[tuple[bytes, ...]] = (
    b"8" * (CAP + 1),
    json.dumps({"chargeToPercent": "80", "pad": "x" * CAP}).encode(),
    b"[" * (CAP + 1),
    b"80" + b" " * (CAP - 1),
)
AT_CAP: Final = b"80" + b" " * (CAP - 2)


@dataclass
class Tally:
    """What was sent and answered, for the assertions that both sides were exercised."""

    statuses: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)


def strict_json(text: str) -> Any:
    """JSON as RFC 8259 has it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} in an answer: not JSON")

    return json.loads(text, parse_constant=refuse)


def pick_name(rng: random.Random) -> str:
    """A function name, alias, router or unknown name, sometimes in another case or padded."""
    name = rng.choice(NAMES)
    roll = rng.random()
    if roll < 0.05:
        return name.upper()
    if roll < 0.10:
        return name.lower()
    if roll < 0.13:
        return f" {name} "
    return name


def example_of(name: str, rng: random.Random) -> object:
    """A valid payload of ``name`` (routers: one of their slot functions' with a slot)."""
    router = _ROUTERS.get(name.strip().lower())
    if router is not None:
        example = CATALOGUE.get(f"{router.target}1").example
        slot = str(rng.randrange(0, 12))
        return {"slot": slot, **example} if isinstance(example, Mapping) else {"slot": slot}
    try:
        return CATALOGUE.get(name).example
    except GivTcpError:
        return None


def as_bytes(payload: object, rng: random.Random) -> bytes:
    """A fuzzer payload as it travels: text as it is (sometimes as a JSON string), the rest as
    JSON; None is no payload at all."""
    if payload is None:
        return b""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return (json.dumps(payload) if rng.random() < 0.2 else payload).encode()
    return json.dumps(payload).encode()


def random_body(rng: random.Random, name: str) -> bytes:
    roll = rng.random()
    if roll < 0.2:
        return rng.choice(ODD)
    if roll < 0.23:
        return rng.choice(HUGE)
    return as_bytes(random_payload(rng, example_of(name, rng)), rng)


def accepted(name: str, raw: bytes | None, model: Model) -> ControlFunction | None:
    """The function the catalogue resolves ``raw`` to on ``model``, or None if it refuses it."""
    try:
        fn, _ = CATALOGUE.resolve(name, raw, model)
    except GivTcpError:
        return None
    return fn


def writes_since(sim: DongleSimulator, mark: int) -> list[tuple[int, int]]:
    return [(q.register, q.value) for q in sim.requests_seen(mark) if isinstance(q, WriteRequest)]


def first_field(text: str) -> str | None:
    """The field of the first error of a result (None: no error, or not a result)."""
    with contextlib.suppress(ValueError, TypeError, KeyError, IndexError):
        return str(json.loads(text)["errors"][0]["field"])
    return None


def check_errors(errors: Any, context: object) -> None:
    """A rejection names every problem: the field and what is allowed."""
    assert isinstance(errors, list), context
    assert errors, context
    for error in errors:
        assert isinstance(error.get("field"), str), (context, error)  # "" for an unknown key ""
        assert isinstance(error.get("allowed"), str), (context, error)
        assert error["allowed"], (context, error)


def check_executed(
    name: str, raw: bytes | None, writes: list[tuple[int, int]], model: Model, context: object
) -> None:
    """Something was attempted: the payload is one the catalogue accepts, and every write is on
    the model's allow-list."""
    assert accepted(name, raw, model) is not None, ("executed a refused payload", context)
    allowlist.check_writes(model, writes)


def model_of(rig: Rig) -> Model:
    layout = rig.coordinator.layout
    assert layout is not None
    return layout.model


def controller_of(rig: Rig) -> Controller:
    controller = rig.coordinator.controller
    assert controller is not None
    return controller


def available_examples(model: Model) -> list[tuple[str, bytes]]:
    """Every function the model has that is not a timed override, with its valid example."""
    rng = random.Random(0)  # as_bytes only picks the text form
    return [
        (fn.name, as_bytes(fn.example, rng) or b"press")
        for fn in CATALOGUE
        if fn.available(model) and not fn.override and fn.name not in RESTART
    ]


def assert_daemon_running(rig: Rig) -> None:
    """Every task the daemon started is still running (its systemd watchdog task ends at once
    when not under systemd)."""
    tasks = {t.get_name(): t for t in asyncio.all_tasks()}
    expected = [
        "daemon",
        *(f"inverter-{c.config.host}" for c in rig.daemon.coordinators),
        *(f"service-{s.name}" for s in rig.daemon.services),
    ]
    for name in expected:
        assert name in tasks, name
        assert not tasks[name].done(), name


async def assert_still_polling(rig: Rig) -> None:
    """A poll asked for now produces a fresh snapshot."""
    before = rig.coordinator.snapshot
    assert before is not None
    rig.coordinator.request_refresh(settings=False)
    fresh = await rig.next_snapshot()
    assert fresh is not before
    assert fresh.taken_at >= before.taken_at


# --- MQTT ---------------------------------------------------------------------------------------


def mqtt_settings(broker: Mosquitto) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": broker.port, "client_id": "givtcp-async-fuzz"}


def mqtt_service(rig: Rig) -> MqttService:
    return next(s for s in rig.daemon.services if isinstance(s, MqttService))


def command_topic(serial: str, name: str, givtcp_form: bool = False) -> str:
    if givtcp_form:
        return f"{ROOT}/control/{serial}/{name}"
    return f"{ROOT}/{serial}/control/{name}"


def result_topic(serial: str, name: str) -> str:
    """Where the daemon answers a command in either topic form (docs/mqtt.md)."""
    return f"{ROOT}/{serial}/control/{name}/result"


def answered_once(w: Watcher, mark: int) -> set[str]:
    """The result topics seen since ``mark``, each of which must have been seen once."""
    seen = Counter(s.topic for s in w.log[mark:] if s.topic.endswith("/result"))
    assert max(seen.values(), default=1) == 1, seen
    return set(seen)


def mqtt_serial(rng: random.Random) -> str:
    roll = rng.random()
    return SERIAL if roll < 0.9 else SERIAL.lower() if roll < 0.95 else STRANGER


def transport_refusal(serial: str, payload: bytes) -> str | None:
    """The field a command is refused on before its payload is parsed (docs/mqtt.md)."""
    if not payload.strip() or len(payload) > CAP:
        return "payload"
    if serial.upper() != SERIAL:
        return "serial"
    return None


async def mqtt_command(
    w: Watcher, rig: Rig, topic: str, serial: str, name: str, payload: bytes, *, retain: bool
) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    """Publish one command and wait for its result: the result and the writes it caused."""
    mark, sim_mark = w.mark(), rig.sim.mark()
    await w.client.publish(topic, payload, qos=1, retain=retain)
    seen = await w.wait_topic(result_topic(serial, name), after=mark)
    assert not seen.retain, topic
    result = strict_json(seen.payload)
    assert isinstance(result, dict), seen
    return result, writes_since(rig.sim, sim_mark)


def check_mqtt_result(
    result: dict[str, Any],
    writes: list[tuple[int, int]],
    *,
    serial: str,
    name: str,
    payload: bytes,
    model: Model,
    tally: Tally,
) -> None:
    context = (serial, name, payload[:120], result.get("message"))
    status = result["status"]
    assert status in STATUSES, context
    assert result["serial"] == serial, context
    tally.statuses[status] += 1
    refused_on = transport_refusal(serial, payload)
    if refused_on is not None:
        assert status == "rejected", context
        assert result["errors"][0]["field"] == refused_on, context
    if accepted(name, payload, model) is None:
        assert status == "rejected", ("a refused payload was executed", context)
    if status == "rejected":
        assert writes == [], context
        assert result["registers"] == [], context
        check_errors(result["errors"], context)
        return
    check_executed(name, payload, writes, model, context)
    assert writes == [(c["register"], c["new"]) for c in result["registers"] if c["written"]], (
        context
    )


# Retained commands already on the broker when the daemon connects: replayed to it on
# subscription, they are refused, never executed. (serial, GivTCP's topic form, name, payload)
STALE: Final = (
    (SERIAL, False, "setChargeTarget", b"60"),
    (SERIAL, True, "rebootInverter", b"restart"),
    (SERIAL, False, "forceCharge", b"30"),
    (SERIAL, False, "noSuchFunction", b"1"),
    (SERIAL, True, "setBatteryReserve", b"\xff\xfe"),
    (STRANGER, False, "setChargeTarget", b"50"),
)
# Control topics whose function (or serial) level is empty: nothing to answer to; each is logged.
NAMELESS: Final = (
    f"{ROOT}/{SERIAL}/control/",
    f"{ROOT}//control/setChargeTarget",
    f"{ROOT}/control//setChargeTarget",
    f"{ROOT}/control/{SERIAL}/",
)


async def test_mqtt_payloads_never_crash_drop_or_write_unless_valid(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    rng = random.Random("fuzz-mqtt")
    tally = Tally()
    results = f"{ROOT}/+/control/+/result"
    with capture_logs() as logs:
        async with watching(mosquitto.port, results, socket_options=NODELAY) as w:
            for serial, givtcp, name, payload in STALE:
                topic = command_topic(serial, name, givtcp)
                await w.client.publish(topic, payload, qos=1, retain=True)
            async with running_daemon(
                tmp_path, plant_config=PLANT, use_plant_clock=True, mqtt=mqtt_settings(mosquitto)
            ) as rig:
                await rig.first_snapshot()
                model = model_of(rig)
                for serial, _, name, _ in STALE:
                    seen = await w.wait_topic(result_topic(serial, name))
                    replayed = strict_json(seen.payload)
                    assert replayed["status"] == "rejected", replayed
                    assert replayed["errors"][0]["field"] == "retain", replayed
                    check_errors(replayed["errors"], replayed)
                    tally.kinds["retained replay"] += 1
                assert writes_since(rig.sim, 0) == []
                await settled(rig)

                async def send(
                    serial: str, name: str, payload: bytes, *, givtcp: bool = False,
                    retain: bool = False, kind: str = "random",
                ) -> dict[str, Any]:  # fmt: skip
                    topic = command_topic(serial, name, givtcp)
                    result, writes = await mqtt_command(
                        w, rig, topic, serial, name, payload, retain=retain
                    )
                    check_mqtt_result(result, writes, serial=serial, name=name,
                                      payload=payload, model=model, tally=tally)  # fmt: skip
                    tally.kinds[kind] += 1
                    if retain and payload:  # then cleared: an empty message, refused in turn
                        tally.kinds[f"retained live {result['status']}"] += 1
                        await send(serial, name, b"", givtcp=givtcp, retain=True,
                                   kind="retained clear")  # fmt: skip
                    return result

                # The stale commands are cleared (empty retained messages): refused as empty.
                for serial, givtcp, name, _ in STALE:
                    await send(serial, name, b"", givtcp=givtcp, retain=True,
                               kind="retained clear")  # fmt: skip

                # Every odd payload once, to a random name; the cap from both sides.
                for payload in ODD:
                    await send(SERIAL, pick_name(rng), payload, kind="odd")
                for payload in HUGE:
                    result = await send(SERIAL, "setChargeTarget", payload, kind="huge")
                    assert "too large" in result["message"], result
                result = await send(SERIAL, "setChargeTarget", AT_CAP, kind="at cap")
                assert result["status"] == "ok", result
                assert rig.sim.store.holding(116) == 80

                # Random commands, one at a time (a few retained: the broker hands those on as
                # live messages, so they are commands like any other; then they are cleared).
                for _ in range(MESSAGES):
                    name = pick_name(rng)
                    await send(mqtt_serial(rng), name, random_body(rng, name),
                               givtcp=rng.random() < 0.25, retain=rng.random() < 0.05)  # fmt: skip

                # Random commands all at once: each is answered exactly once, and the writes of
                # all of them are those the results report.
                mark, sim_mark = w.mark(), rig.sim.mark()
                burst = [(name, random_body(rng, name)) for name in rng.sample(NAMES, BURST)]
                await asyncio.gather(
                    *(w.client.publish(command_topic(SERIAL, n), p, qos=1) for n, p in burst)
                )
                answers = {}
                for name, _ in burst:
                    seen = await w.wait_topic(result_topic(SERIAL, name), after=mark)
                    answers[name] = strict_json(seen.payload)
                await w.sync()  # whatever else was on its way has arrived: no second answer
                assert answered_once(w, mark) == {result_topic(SERIAL, n) for n, _ in burst}
                reported: Counter[tuple[int, int]] = Counter()
                for name, payload in burst:
                    result = answers[name]
                    context = (name, payload[:80], result["message"])
                    assert result["status"] in STATUSES, context
                    tally.statuses[result["status"]] += 1
                    tally.kinds["burst"] += 1
                    if result["status"] == "rejected":
                        check_errors(result["errors"], context)
                        continue
                    assert accepted(name, payload, model) is not None, context
                    reported.update(
                        (c["register"], c["new"]) for c in result["registers"] if c["written"]
                    )
                burst_writes = writes_since(rig.sim, sim_mark)
                assert Counter(burst_writes) == reported
                allowlist.check_writes(model, burst_writes)

                # Valid commands while the inverter is busy with another: 32 wait their turn,
                # the rest are refused at once (field "queue") without being executed.
                queued = rng.sample(available_examples(model), QUEUED)
                mark, sim_mark = w.mark(), rig.sim.mark()
                async with controller_of(rig).lock:
                    await asyncio.gather(
                        *(w.client.publish(command_topic(SERIAL, n), p, qos=1) for n, p in queued)
                    )
                    after = mark
                    for _ in range(QUEUED - MAX_PENDING_COMMANDS):
                        seen = await w.wait(lambda s: first_field(s.payload) == "queue",
                                            after=after)  # fmt: skip
                        after = seen.seq + 1
                    assert writes_since(rig.sim, sim_mark) == []
                reported = Counter()
                refused = 0
                for name, _ in queued:
                    seen = await w.wait_topic(result_topic(SERIAL, name), after=mark)
                    result = strict_json(seen.payload)
                    tally.statuses[result["status"]] += 1
                    tally.kinds["queued"] += 1
                    if result["status"] == "rejected":
                        assert result["errors"][0]["field"] == "queue", result
                        refused += 1
                        continue
                    assert result["status"] == "ok", result
                    reported.update(
                        (c["register"], c["new"]) for c in result["registers"] if c["written"]
                    )
                await w.sync()
                assert answered_once(w, mark) == {result_topic(SERIAL, n) for n, _ in queued}
                assert refused >= QUEUED - MAX_PENDING_COMMANDS
                assert Counter(writes_since(rig.sim, sim_mark)) == reported

                # Messages that cannot be answered, each logged instead: topics naming no
                # function (or no serial), and one so long (MQTT's limit, 65535 bytes) that its
                # result topic cannot be published. A command after them is answered only once
                # they have been handled (one listener, in order).
                longest = "x" * (65535 - len(command_topic(SERIAL, "")))
                mark = w.mark()
                for topic in (*NAMELESS, command_topic(SERIAL, longest)):
                    await w.client.publish(topic, b"55", qos=1)
                await send(SERIAL, "noSuchFunction", b"1", kind="after unanswerable")
                assert [s.topic for s in w.log[mark:]] == [result_topic(SERIAL, "noSuchFunction")]
                ignored = [e.get("topic") for e in logs
                           if e["event"] == "MQTT message on a control topic ignored"]  # fmt: skip
                assert ignored == list(NAMELESS)
                undelivered = [(e["function"], e["status"]) for e in logs
                               if e["event"] == "MQTT command result not delivered"]  # fmt: skip
                assert undelivered == [(longest, "rejected")]
                tally.kinds["unanswerable"] += len(NAMELESS) + 1

                # The daemon is alive, polls, and is still on its first broker connection.
                assert_daemon_running(rig)
                await assert_still_polling(rig)
                service = mqtt_service(rig)
                assert service.connected.is_set()
                assert service.stats.connections == 1
                assert service.stats.results_undelivered == 1  # the 65535-byte topic
                async with watching(mosquitto.port, f"{ROOT}/bridge/status") as fresh:
                    await fresh.sync()
                    assert fresh.latest[f"{ROOT}/bridge/status"].payload == "online"
                target = 57 if rig.sim.store.holding(116) != 57 else 58
                result = await send(SERIAL, "setChargeTarget", str(target).encode(), kind="final")
                assert result["status"] == "ok", result
                assert rig.sim.store.holding(116) == target
    assert [e for e in logs if e["log_level"] in ("error", "critical")] == []
    # Both sides of the contract were exercised.
    assert tally.statuses["rejected"] > 100, tally
    assert tally.statuses["ok"] > 50, tally
    print(f"MQTT: {sum(tally.kinds.values())} messages {dict(tally.kinds)}; "
          f"statuses {dict(tally.statuses)}")  # fmt: skip


# --- REST ---------------------------------------------------------------------------------------

# The body is GivTCP's whatever the Content-Type (docs/rest.md): none of these may change the
# answer.
CONTENT_TYPES: Final = (
    None, "", "application/json", "application/json; charset=utf-16", "text/plain",
    "text/plain; charset=latin-1", "application/x-www-form-urlencoded",
    "application/octet-stream", "multipart/form-data; boundary=xyz", "image/png", "no/such; x=1",
)  # fmt: skip
# Control routes ignore the query string (percent-encoded as sent).
QUERIES: Final = (
    "?chargeToPercent=80", "?units=true", "?slot=3&slot=4", "?%ff%fe=%00", "?q=" + "x" * 2000,
    "?%C3%A9=%F0%9F%92%A1", "?", "?&&==",
)  # fmt: skip


@dataclass(frozen=True)
class Post:
    prefix: str  # "" or "<serial or inverter name>/"
    name: str
    body: bytes  # as the server reads it (b"": no body)
    query: str = ""
    content_type: str | None = None
    encoding: str = ""  # "gzip", "chunked", "bad-gzip" (said to be gzip, but is not) or ""

    def context(self) -> tuple[object, ...]:
        return (self.prefix, self.name, self.body[:100], self.query[:40], self.content_type,
                self.encoding)  # fmt: skip


def random_post(rng: random.Random, prefixes: tuple[str, ...]) -> Post:
    name = pick_name(rng)
    roll = rng.random()
    return Post(
        prefix="" if rng.random() < 0.8 else rng.choice(prefixes),
        name=name,
        body=random_body(rng, name),
        query=rng.choice(QUERIES) if rng.random() < 0.15 else "",
        content_type=rng.choice(CONTENT_TYPES),
        encoding=rng.choice(("gzip", "chunked", "bad-gzip")) if roll < 0.12 else "",
    )


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]


async def rest_send(r: RestRig, post: Post) -> tuple[int, dict[str, Any]]:
    """POST one request: the status and the JSON answer."""
    url = yarl.URL(f"{r.base}/{post.prefix}{quote(post.name, safe='')}{post.query}", encoded=True)
    headers = {} if post.content_type is None else {"Content-Type": post.content_type}
    data: Any = post.body
    if post.encoding == "gzip":
        data = gzip.compress(post.body)
        headers["Content-Encoding"] = "gzip"
    elif post.encoding == "chunked":
        data = _chunks(post.body)  # Transfer-Encoding: chunked
    elif post.encoding == "bad-gzip":
        headers["Content-Encoding"] = "gzip"
    # The server closes the connection after a body it could not decode (where would the next
    # request start?): such a request gets a connection of its own.
    async with contextlib.AsyncExitStack() as stack:
        session = r.session
        if post.encoding == "bad-gzip":
            session = await stack.enter_async_context(aiohttp.ClientSession())
        async with session.post(url, data=data, headers=headers) as resp:
            status, content_type, text = resp.status, resp.content_type, await resp.text()
    assert content_type == "application/json", (post.context(), status, text[:200])
    body = strict_json(text)
    assert isinstance(body, dict), (post.context(), text[:200])
    return status, body


def route_status(post: Post) -> int | None:
    """The status of a request refused before its payload is looked at, else None."""
    if post.name.lower() == "runall":
        return 405  # a data route: read with GET
    if post.prefix == f"{STRANGER}/":
        return 404  # no such inverter
    if post.name not in CATALOGUE:
        return 404  # no such function
    if len(post.body) > CAP and post.encoding != "bad-gzip":
        return 413
    return None


def check_rest_answer(
    post: Post, status: int, body: dict[str, Any], *, model: Model, tally: Tally
) -> Counter[tuple[int, int]]:
    """Check one answer; the writes it reports (the caller compares them with the inverter's)."""
    context = (*post.context(), status, body.get("message"))
    tally.statuses[str(status)] += 1
    expected = route_status(post)
    if expected is not None:
        assert status == expected, context
        assert isinstance(body.get("error"), str), context
        assert isinstance(body.get("message"), str), context
        assert body["message"], context
        return Counter()
    assert {"function", "status", "message", "errors", "registers", "written", "result",
            "serial"} <= set(body), context  # fmt: skip
    assert body["result"] == body["message"], context
    assert body["serial"] == SERIAL, context
    if post.name.strip().lower() not in _ROUTERS:
        assert body["function"] == CATALOGUE.get(post.name).name, context
    raw = post.body if post.body.strip() else None
    if post.encoding == "bad-gzip" and len(post.body) > 1:  # (zlib needs two bytes to know)
        assert body["status"] == "rejected", context
    elif accepted(post.name, raw, model) is None:
        assert body["status"] == "rejected", ("a refused payload was executed", context)
    if body["status"] == "rejected":
        assert body["written"] == [], context
        assert body["registers"] == [], context
        check_errors(body["errors"], context)
        fields = {e["field"] for e in body["errors"]}
        assert status == (400 if "payload" in fields else 422), context
        return Counter()
    assert status == (200 if body["status"] == "ok" else 502), context
    # ``registers`` says what was sent, ``written`` what the inverter echoed (HR163 echoes 0).
    sent = [(c["register"], c["new"]) for c in body["registers"] if c["written"]]
    assert [w["register"] for w in body["written"]] == [reg for reg, _ in sent], context
    return Counter(sent)


async def test_rest_bodies_never_crash_or_write_unless_valid(tmp_path: Path) -> None:
    rng = random.Random("fuzz-rest")
    tally = Tally()
    with capture_logs() as logs:
        async with rest_rig(tmp_path, plant_config=PLANT, use_plant_clock=True) as r:
            rig = r.rig
            await settled(rig)
            model = model_of(rig)
            name = rig.coordinator.name
            prefixes = (f"{SERIAL}/", f"{SERIAL.lower()}/", f"{name}/", f"{name.upper()}/",
                        f"{STRANGER}/")  # fmt: skip

            async def send(post: Post, kind: str = "random") -> tuple[int, dict[str, Any]]:
                mark = rig.sim.mark()
                status, body = await rest_send(r, post)
                writes = writes_since(rig.sim, mark)
                reported = check_rest_answer(post, status, body, model=model, tally=tally)
                assert Counter(writes) == reported, post.context()
                allowlist.check_writes(model, writes)
                tally.kinds[kind] += 1
                return status, body

            # Every odd body once, to a random name; the cap from both sides and in each framing;
            # bodies that are not in the Content-Encoding they claim.
            for payload in ODD:
                await send(Post("", pick_name(rng), payload), "odd")
            for payload in HUGE:
                for encoding in ("", "gzip", "chunked"):
                    status, _ = await send(Post("", "setChargeTarget", payload,
                                                encoding=encoding), "huge")  # fmt: skip
                    assert status == 413, (payload[:40], encoding)
            for target, encoding in ((80, ""), (81, "gzip"), (82, "chunked")):
                at_cap = str(target).encode() + AT_CAP[2:]
                status, body = await send(Post("", "setChargeTarget", at_cap,
                                               encoding=encoding), "at cap")  # fmt: skip
                assert (status, body["status"]) == (200, "ok"), body
                assert r.hr(116) == target
            for payload in (b"80", b"enable", AT_CAP, HUGE[0]):
                status, body = await send(Post("", "setChargeTarget", payload,
                                               encoding="bad-gzip"), "bad gzip")  # fmt: skip
                assert status == 400, payload[:40]
                assert body["errors"][0]["field"] == "payload", body

            # Random requests, one at a time.
            for _ in range(MESSAGES):
                await send(random_post(rng, prefixes))

            # Random requests all at once: each is answered, and the writes of all of them are
            # those the answers report.
            posts = [random_post(rng, prefixes) for _ in range(BURST)]
            mark = rig.sim.mark()
            answers = await asyncio.gather(*(rest_send(r, post) for post in posts))
            writes = writes_since(rig.sim, mark)
            reported: Counter[tuple[int, int]] = Counter()
            for post, (status, body) in zip(posts, answers, strict=True):
                reported += check_rest_answer(post, status, body, model=model, tally=tally)
                tally.kinds["burst"] += 1
            assert Counter(writes) == reported
            allowlist.check_writes(model, writes)

            # The daemon is alive and polls; the API still answers and still controls.
            assert_daemon_running(rig)
            await assert_still_polling(rig)
            status, health = await r.get("health")
            assert (status, health["status"]) == (200, "ok"), health
            target = 57 if r.hr(116) != 57 else 58
            status, body = await send(Post("", "setChargeTarget", str(target).encode()), "final")
            assert (status, r.hr(116)) == (200, target), body
    assert [e for e in logs if e["log_level"] in ("error", "critical")] == []
    # Every kind of answer was exercised.
    for code, least in (("200", 20), ("400", 20), ("404", 10), ("405", 1), ("413", 12),
                        ("422", 50)):  # fmt: skip
        assert tally.statuses[code] >= least, (code, tally)
    print(f"REST: {sum(tally.kinds.values())} requests {dict(tally.kinds)}; "
          f"HTTP statuses {dict(tally.statuses)}")  # fmt: skip
