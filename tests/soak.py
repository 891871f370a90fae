"""The chaos soak (issue #8 §1): the real daemon against a simulated plant on an accelerated
clock, faults injected at random, commands arriving over MQTT and REST, everything it publishes
checked against the plant's truth.

The plant is frozen between steps. Each step the soak waits until the daemon is between polls,
moves the plant on by ``step_seconds`` (so a value that goes stale now differs from the truth),
asks for a refresh, and sends commands while that poll runs. Once the daemon is quiet again it
checks:

* every snapshot published during the step: each value equals the plant's truth at some point of
  the step (the plant only changes by the step's own commands), or is the last value published
  fresh, marked stale, or is unavailable. Zero wrong values;
* every MQTT state message is one of those validated snapshots' (topic, payload) pairs, and
  ``GET /runAll`` answers one of them;
* every command got a result; every register an ``ok`` result wrote holds what the last write to
  it in the step asked for, and the write was echoed;
* every reconnection to the dongle came within its bound (refusal time + back-off maximum +
  margin), with no restart of the daemon;
* periodically, every InfluxDB sample the daemon wrote matches a validated snapshot, and every
  point of every validated snapshot arrived (after the outages too);
* memory, asyncio tasks and sockets, sampled at quiet moments, stay flat.

The daemon runs in a process of its own (:mod:`tests.soak_host`, driven over a pipe), so the
memory, tasks and sockets sampled are the daemon's alone; the simulated dongle, the plant and the
checks run here.

``tests/test_soak.py`` runs one simulated day in CI; ``bench/soak.py`` runs a month or more.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import urllib.parse
import urllib.request
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from bench.production import launcher
from givtcp_async.protocol.frames import WriteRequest
from givtcp_async.quality.gates import Reading
from givtcp_async.simulator.faults import FaultKind
from givtcp_async.simulator.plant import Plant, PlantConfig
from givtcp_async.simulator.server import DongleSimulator
from givtcp_async.sinks.discovery import command_topic, result_topic
from tests.harness import settings_dict
from tests.mqtt_support import Watcher, watching
from tests.servers import Mosquitto, VictoriaMetrics, free_port
from tests.test_influx import parse_line
from tests.test_snapshot_truth import same

ROOT = "GivEnergy"
START = datetime(2026, 6, 20, 6, 0, tzinfo=ZoneInfo("Europe/London"))

# Per-request fault probabilities at the simulated dongle (all kinds of SPEC's bad answers).
FAULTS: Mapping[FaultKind, float] = {
    FaultKind.BAD_CRC: 0.01,
    FaultKind.TRUNCATE: 0.005,
    FaultKind.SPLICE: 0.005,
    FaultKind.GARBAGE: 0.01,
    FaultKind.ZERO_PAGE: 0.006,
    FaultKind.GARBAGE_PAGE: 0.006,
    FaultKind.DROP: 0.005,
    FaultKind.DELAY: 0.005,
    FaultKind.DISCONNECT: 0.002,
    FaultKind.REFUSE: 0.001,
}
RECONNECT_MARGIN = 2.0  # seconds beyond the bound, for a loaded 2-core machine
COMMAND_TIMEOUT = 60.0
REPOSITORY = Path(__file__).resolve().parents[1]  # the daemon's process runs from here
RECENT = 8  # snapshots whose MQTT messages and runAll trees may still be arriving


@dataclass
class SoakConfig:
    days: float = 1.0
    step_seconds: float = 600.0
    seed: int = 1
    commands_per_step: float = 0.8  # mean
    disconnect_p: float = 0.03  # per step: drop the daemon's connection
    refuse_p: float = 0.015  # per step: drop it and refuse connections for a while
    broker_restarts: int = 1
    influx_outages: int = 1
    influx_outage_steps: int = 6
    influx_check_every: int = 24  # steps
    sample_every: int = 12  # steps
    progress: Callable[[str], None] | None = None

    @property
    def steps(self) -> int:
        return math.ceil(self.days * 86400 / self.step_seconds)


@dataclass
class SoakReport:
    steps: int = 0
    simulated_days: float = 0.0
    wall_seconds: float = 0.0
    snapshots: int = 0
    values_checked: int = 0
    fresh: int = 0
    stale: int = 0
    unavailable: int = 0
    mqtt_messages_checked: int = 0
    runall_checked: int = 0
    influx_samples_checked: int = 0
    commands: Counter[str] = field(default_factory=Counter)
    ok_writes_verified: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    reconnect_times: list[float] = field(default_factory=list)
    reconnect_bounds: list[float] = field(default_factory=list)
    broker_restarts: int = 0
    mqtt_reconnect_times: list[float] = field(default_factory=list)
    influx_outages: int = 0
    samples: list[tuple[int, float, int, int]] = field(
        default_factory=list
    )  # step, MiB, tasks, sockets
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < 200:
            self.problems.append(text)

    def table(self) -> str:
        def row(name: str, value: object) -> str:
            return f"| {name} | {value} |"

        first, last = (self.samples[0], self.samples[-1]) if self.samples else (None, None)
        rows = [
            "| figure | value |",
            "|---|---|",
            row("simulated time", f"{self.simulated_days:.2f} days in {self.steps} steps"),
            row("wall time", f"{self.wall_seconds:.0f} s"),
            row("snapshots validated", self.snapshots),
            row("values compared with the truth", self.values_checked),
            row(
                "  fresh / stale / unavailable", f"{self.fresh} / {self.stale} / {self.unavailable}"
            ),
            row("wrong values", len([p for p in self.problems if p.startswith("value")])),
            row("MQTT state messages checked", self.mqtt_messages_checked),
            row("GET /runAll answers checked", self.runall_checked),
            row("InfluxDB samples checked", self.influx_samples_checked),
            row("commands (transport/status)", dict(sorted(self.commands.items()))),
            row("ok writes verified in registers", self.ok_writes_verified),
            row("faults injected", dict(sorted(self.faults.items()))),
            row("dongle reconnections", self.reconnects),
            row(
                "slowest forced reconnection / its bound",
                f"{max(self.reconnect_times, default=0):.2f} s / "
                f"{max(self.reconnect_bounds, default=0):.2f} s",
            ),
            row(
                "broker restarts / slowest MQTT reconnect",
                f"{self.broker_restarts} / {max(self.mqtt_reconnect_times, default=0):.2f} s",
            ),
            row("InfluxDB outages", self.influx_outages),
        ]
        if first and last:
            rows += [
                row(
                    "RSS MiB (after warm-up -> end, peak)",
                    f"{first[1]:.1f} -> {last[1]:.1f}, {max(s[1] for s in self.samples):.1f}",
                ),
                row(
                    "asyncio tasks (after warm-up -> end, max)",
                    f"{first[2]} -> {last[2]}, {max(s[2] for s in self.samples)}",
                ),
                row(
                    "open sockets (after warm-up -> end, max)",
                    f"{first[3]} -> {last[3]}, {max(s[3] for s in self.samples)}",
                ),
            ]
        rows.append(row("problems", len(self.problems)))
        return "\n".join(rows)


# --- commands --------------------------------------------------------------------------------


def _hhmm(rng: random.Random, colon: bool) -> str:
    h, m = rng.randrange(24), rng.randrange(0, 60, 5)
    return f"{h:02d}:{m:02d}" if colon else f"{h:02d}{m:02d}"


def random_command(rng: random.Random) -> tuple[str, Any, bool]:
    """A function, a payload and whether the payload is valid (a few are deliberately not)."""
    pct = str(rng.randint(4, 100))
    valid: list[tuple[str, Any]] = [
        ("setChargeTarget", {"chargeToPercent": pct}),
        ("setBatteryReserve", {"dischargeToPercent": str(rng.randint(4, 100))}),
        ("setChargeRate", {"chargeRate": str(rng.randrange(0, 5001, 100))}),
        ("setDischargeRate", {"dischargeRate": str(rng.randrange(0, 5001, 100))}),
        (
            "setChargeSlot1",
            {"start": _hhmm(rng, False), "finish": _hhmm(rng, False), "chargeToPercent": pct},
        ),
        ("setDischargeSlot1", {"start": _hhmm(rng, False), "finish": _hhmm(rng, False)}),
        ("setDischargeSlot2", {"start": _hhmm(rng, True), "finish": _hhmm(rng, True)}),
        ("enableChargeTarget", rng.choice(["enable", "disable"])),
        ("enableChargeSchedule", rng.choice(["enable", "disable"])),
        ("enableDischargeSchedule", rng.choice(["enable", "disable"])),
        ("setEcoMode", rng.choice(["enable", "disable"])),
        ("setBatteryMode", {"mode": str(rng.randint(1, 4))}),
    ]
    invalid: list[tuple[str, Any]] = [
        ("setChargeTarget", {"chargeToPercent": str(rng.randint(101, 1000))}),
        ("setChargeRate", {"chargeRate": "-5"}),
        ("setChargeSlot1", {"start": "2561", "finish": "0400"}),
        ("setEcoMode", "sometimes"),
    ]
    if rng.random() < 0.15:
        return (*rng.choice(invalid), False)
    return (*rng.choice(valid), True)


@dataclass
class Sent:
    transport: str
    function: str
    payload: Any
    valid: bool
    result: dict[str, Any] | None = None


# --- the daemon's process -----------------------------------------------------------------------


@dataclass
class Published:
    """A snapshot the daemon published, as :mod:`tests.soak_host` sends it."""

    serial: str
    taken_at: datetime
    values: dict[str, Reading]
    batteries: list[dict[str, Reading]]
    mqtt: set[tuple[str, str]]  # its state messages (topic, payload)
    runall: Any  # its runAll tree, as JSON
    influx: list[str]  # its InfluxDB lines

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Published:
        def readings(values: Mapping[str, Any]) -> dict[str, Reading]:
            return {n: Reading(_decode(v), stale=stale) for n, (v, stale) in values.items()}

        return cls(
            serial=event["serial"],
            taken_at=datetime.fromisoformat(event["taken_at"]),
            values=readings(event["values"]),
            batteries=[readings(b) for b in event["batteries"]],
            mqtt={(t, p) for t, p in event["mqtt"]},
            runall=event["runall"],
            influx=list(event["influx"]),
        )


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$dt"}:
        return datetime.fromisoformat(value["$dt"])
    return value


class DaemonProcess:
    """The daemon in a process of its own (``python -m tests.soak_host``) and the soak's calls
    to it; every snapshot it publishes is handed to ``on_snapshot`` before any later answer."""

    def __init__(
        self, proc: asyncio.subprocess.Process, on_snapshot: Callable[[Published], None]
    ) -> None:
        self.proc = proc
        self.on_snapshot = on_snapshot
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = 0
        self._started = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="soak-daemon-pipe")

    @classmethod
    async def start(
        cls, settings: Mapping[str, Any], now: datetime, on_snapshot: Callable[[Published], None]
    ) -> DaemonProcess:
        # As its production install would run it: only its runtime dependencies importable.
        run = "import runpy; runpy.run_module('tests.soak_host', run_name='__main__')"
        proc = await asyncio.create_subprocess_exec(
            *launcher("givtcp-async", run),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            cwd=REPOSITORY, limit=1 << 24,
        )  # fmt: skip
        host = cls(proc, on_snapshot)
        host._send({"settings": settings, "time": now.isoformat()})
        async with asyncio.timeout(60):
            await host._started.wait()
        return host

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _send(self, message: Mapping[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            message = json.loads(line)
            if message.get("event") == "snapshot":
                self.on_snapshot(Published.from_event(message))
            elif message.get("event") == "started":
                self._started.set()
            elif (call := self._calls.pop(message.get("id", -1), None)) is not None:
                call.set_result(message)
        for call in self._calls.values():
            call.set_exception(RuntimeError("the daemon's process went away"))

    async def call(self, op: str, timeout: float = COMMAND_TIMEOUT, **args: Any) -> dict[str, Any]:
        """Send a request; its answer (an error answer raises)."""
        self._ids += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[self._ids] = future
        self._send({"id": self._ids, "op": op, **args})
        async with asyncio.timeout(timeout):
            reply = await future
        if "error" in reply:
            raise RuntimeError(f"{op}: {reply['error']}")
        return reply

    async def stop(self) -> dict[str, Any]:
        """Stop the daemon; what it left behind (tasks, sockets)."""
        try:
            return await self.call("stop")
        finally:
            async with asyncio.timeout(30):
                await self.proc.wait()
            await self._reader


# --- the soak --------------------------------------------------------------------------------


class Soak:
    def __init__(
        self,
        cfg: SoakConfig,
        plant: Plant,
        sim: DongleSimulator,
        broker: Mosquitto,
        vm: VictoriaMetrics,
        rest_port: int,
    ) -> None:
        self.cfg = cfg
        self.plant = plant
        self.sim = sim
        self.broker = broker
        self.vm = vm
        self.rest = f"http://127.0.0.1:{rest_port}"
        self.rng = random.Random(cfg.seed)
        self.report = SoakReport()
        self.serial = ""
        self.daemon: DaemonProcess | None = None
        self.backoff_max = 0.0
        self.mqtt_backoff_bound = 0.0
        self.snapshots: list[Published] = []  # published, not yet validated
        self._first = asyncio.Event()
        self.last_checked: Published | None = None
        self.last_fresh: dict[tuple[int, str], Any] = {}
        # What the latest snapshots allow on MQTT and from GET /runAll: a message may arrive a
        # little after the next snapshot is validated.
        self.allowed_mqtt: deque[set[tuple[str, str]]] = deque(maxlen=RECENT)
        self.allowed_runall: deque[Any] = deque(maxlen=RECENT)
        self.allowed_influx: dict[tuple[str, tuple[tuple[str, str], ...], int], set[float]] = {}
        self.influx_down = False
        self.influx_checked_until = 0  # ms: samples before this were checked
        self.mqtt_sessions = 1

    # -- following snapshots

    def published(self, snap: Published) -> None:
        self.snapshots.append(snap)
        self._first.set()

    @property
    def host(self) -> DaemonProcess:
        assert self.daemon is not None
        return self.daemon

    async def quiet(self) -> None:
        """The daemon waits for its next poll and every snapshot it published is here."""
        await self.host.call("quiet")

    # -- validation

    def truths(self) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        truth = self.plant.truth()
        return [(dict(truth.values), [dict(b) for b in truth.batteries])]

    def validate(self, truths: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
        snaps, self.snapshots = self.snapshots, []
        for snap in snaps:
            self.report.snapshots += 1
            previous, self.last_checked = self.last_checked, snap
            # Republished with what a command read back or the daemon's own state (timed
            # overrides, tariffs): only what changed is new, and must be true now.
            again = previous is not None and snap.taken_at == previous.taken_at
            devices = [(snap.values, previous.values if previous else {}, [t[0] for t in truths])]
            for index, pack in enumerate(snap.batteries):
                before = (
                    previous.batteries[index]
                    if previous and again and index < len(previous.batteries)
                    else {}
                )
                devices.append((pack, before, [t[1][index] for t in truths
                                               if index < len(t[1])]))  # fmt: skip
            for device, (values, before, device_truths) in enumerate(devices):
                if again:
                    changed = {n: r for n, r in values.items() if before.get(n) != r}
                    self._check_values(changed, device_truths, device, snap, only=True)
                else:
                    self._check_values(values, device_truths, device, snap)
            self.allowed_mqtt.append(snap.mqtt)
            self.allowed_runall.append(snap.runall)
            for line in snap.influx:
                measurement, tags, fields, ts = parse_line(line)
                labels = tuple(sorted(tags.items()))
                for name, value in fields.items():
                    key = (f"{measurement}_{name}", labels, ts)
                    self.allowed_influx.setdefault(key, set()).add(value)

    def _check_values(
        self,
        values: Mapping[str, Any],
        truths: list[dict[str, Any]],
        device: int,
        snap: Published,
        *,
        only: bool = False,
    ) -> None:
        """Every value of the truth (``only``: those in ``values``) is true or last good."""
        if not truths:
            return
        when = snap.taken_at.isoformat(timespec="seconds")
        for name in truths[0]:
            if only and name not in values:
                continue
            reading = values.get(name)
            self.report.values_checked += 1
            if reading is None or reading.value is None:
                self.report.unavailable += 1
                continue
            key = (device, name)
            if reading.stale:
                self.report.stale += 1
                if key not in self.last_fresh or self.last_fresh[key] != reading.value:
                    self.report.problem(
                        f"value {when} dev{device} {name}: stale {reading.value!r}, last fresh "
                        f"{self.last_fresh.get(key)!r}"
                    )
                continue
            self.report.fresh += 1
            if not any(same(t[name], reading.value, name) for t in truths if name in t):
                self.report.problem(
                    f"value {when} dev{device} {name}: published {reading.value!r}, truth "
                    f"{[t.get(name) for t in truths]!r}"
                )
            self.last_fresh[key] = reading.value

    async def check_mqtt(self, watcher: Watcher) -> None:
        await watcher.sync()
        allowed = set().union(*self.allowed_mqtt)
        base = f"{ROOT}/{self.serial}/"
        for seen in watcher.log:
            if not seen.topic.startswith(base) or "/control/" in seen.topic:
                continue
            if seen.topic.endswith("/Stats/status"):
                continue  # availability, not a snapshot value
            self.report.mqtt_messages_checked += 1
            if (seen.topic, seen.payload) not in allowed:
                self.report.problem(f"mqtt {seen.topic}={seen.payload[:80]!r} from no snapshot")
        # Checked: the log starts again (it would otherwise grow for the whole soak).
        del watcher.log[:]
        watcher.latest.clear()

    async def check_runall(self, session: aiohttp.ClientSession) -> None:
        async with session.get(f"{self.rest}/runAll") as resp:
            body = await resp.json()
            status = resp.status
        self.report.runall_checked += 1
        if status != 200 or body not in self.allowed_runall:
            self.report.problem(f"runAll answered {status} with a tree from no snapshot")

    async def check_influx(self) -> None:
        """Every sample stored since the last check matches a validated snapshot, and every
        point of those snapshots is stored."""
        await self.host.call("influx_drained", timeout=60)
        expected = {
            k: v for k, v in self.allowed_influx.items() if k[2] >= self.influx_checked_until
        }
        if not expected:
            return
        end = max(k[2] for k in expected)
        stored = await self._stored(self.influx_checked_until, end)
        for key, values in stored.items():
            want = expected.get(key)
            self.report.influx_samples_checked += len(values)
            if want is None:
                self.report.problem(f"influx {key} stored but from no snapshot")
            elif not set(values) <= want:
                self.report.problem(f"influx {key} holds {values}, snapshots had {want}")
        missing = [k for k in expected if k not in stored]
        if missing:
            self.report.problem(f"influx: {len(missing)} samples never arrived, e.g. {missing[0]}")
        self.influx_checked_until = end + 1
        self.allowed_influx = {k: v for k, v in self.allowed_influx.items() if k[2] > end}

    async def _stored(
        self, start_ms: int, end_ms: int
    ) -> dict[tuple[str, tuple[tuple[str, str], ...], int], list[float]]:
        def fetch() -> str:
            with urllib.request.urlopen(f"{self.vm.url}/internal/force_flush", timeout=10):
                pass
            query = urllib.parse.urlencode(
                {
                    "match[]": f'{{serial="{self.serial}"}}',
                    "start": f"{start_ms / 1000:.3f}",
                    "end": f"{end_ms / 1000:.3f}",
                }
            )
            with urllib.request.urlopen(f"{self.vm.url}/api/v1/export?{query}", timeout=30) as r:
                return str(r.read().decode())

        # VictoriaMetrics makes a write searchable shortly after acknowledging it, with no event
        # to wait for: ask until the count stops growing short of what is expected.
        want = sum(1 for k in self.allowed_influx if start_ms <= k[2] <= end_ms)
        deadline = time.monotonic() + 15
        while True:
            out: dict[tuple[str, tuple[tuple[str, str], ...], int], list[float]] = {}
            for row in filter(None, (await asyncio.to_thread(fetch)).splitlines()):
                item = json.loads(row)
                labels = dict(item["metric"])
                name = labels.pop("__name__")
                key_labels = tuple(sorted(labels.items()))
                for ts, value in zip(item["timestamps"], item["values"], strict=True):
                    out.setdefault((name, key_labels, int(ts)), []).append(float(value))
            if len(out) >= want or time.monotonic() > deadline:
                return out
            await asyncio.sleep(0.2)

    # -- commands

    async def send_mqtt(self, watcher: Watcher, sent: Sent) -> None:
        text = sent.payload if isinstance(sent.payload, str) else json.dumps(sent.payload)
        mark = watcher.mark()
        await watcher.client.publish(command_topic(ROOT, self.serial, sent.function), text, qos=1)
        sent.result = await watcher.result(
            result_topic(ROOT, self.serial, sent.function), after=mark, timeout=COMMAND_TIMEOUT
        )

    async def send_rest(self, session: aiohttp.ClientSession, sent: Sent) -> None:
        body = sent.payload if isinstance(sent.payload, str) else json.dumps(sent.payload)
        async with session.post(
            f"{self.rest}/{sent.function}",
            data=body,
            headers={"Content-Type": "application/json"},
        ) as resp:
            result = await resp.json()
        sent.result = result if isinstance(result, dict) else None

    def check_commands(self, commands: list[Sent], mark: int) -> None:
        writes: dict[int, int] = {}
        for req in self.sim.requests_seen(mark):
            if isinstance(req, WriteRequest):
                writes[req.register] = req.value  # the last write to each register wins
        for sent in commands:
            result = sent.result
            if result is None:
                self.report.problem(f"command {sent.function} over {sent.transport}: no result")
                continue
            status = str(result.get("status"))
            self.report.commands[f"{sent.transport}/{status}"] += 1
            if not sent.valid and status != "rejected":
                self.report.problem(f"command {sent.function} {sent.payload!r} not rejected")
            if status == "rejected" and not result.get("errors") and sent.valid:
                self.report.problem(f"command {sent.function} {sent.payload!r}: {result}")
            if status != "ok":
                continue
            for change in result.get("registers", []):
                if not change.get("written"):
                    continue
                reg, new = int(change["register"]), int(change["new"])
                held = self.sim.store.holding(reg)
                if writes.get(reg) != held or change.get("echo") != new:
                    self.report.problem(
                        f"command {sent.function} ok but HR{reg} holds {held}, "
                        f"wrote {new}, last write {writes.get(reg)}"
                    )
                else:
                    self.report.ok_writes_verified += 1

    # -- chaos

    async def reconnect_after(self, refuse: float) -> None:
        """Drop the daemon's link (refusing connections for ``refuse`` s); time its return."""
        sim = self.sim
        mark = sim.mark()
        started = time.monotonic()
        if refuse:
            sim.refuse_connections(refuse)
        sim.disconnect_all()
        bound = refuse + self.backoff_max + RECONNECT_MARGIN
        try:
            await sim.wait_for(lambda e: e.kind == "connect", after=mark, timeout=bound + 30)
        except TimeoutError:
            self.report.problem(f"no reconnection within {bound + 30:.1f} s")
            return
        took = time.monotonic() - started
        self.report.reconnect_times.append(took)
        self.report.reconnect_bounds.append(bound)
        if took > bound:
            self.report.problem(f"reconnected after {took:.2f} s, bound {bound:.2f} s")

    async def restart_broker(self) -> None:
        started = time.monotonic()
        await asyncio.to_thread(self.broker.restart)
        self.mqtt_sessions += 1
        await self.host.call(
            "mqtt_connected", n=self.mqtt_sessions, timeout=self.mqtt_backoff_bound + 30
        )
        self.report.broker_restarts += 1
        self.report.mqtt_reconnect_times.append(time.monotonic() - started)

    # -- the run

    async def run(self, settings: Mapping[str, Any]) -> SoakReport:
        cfg, report, sim = self.cfg, self.report, self.sim
        started = time.monotonic()
        sim.faults.rng = random.Random(cfg.seed + 1)
        sim.faults.random_delay = 1.0
        self.daemon = await DaemonProcess.start(settings, self.plant.now(), self.published)
        try:
            await self._run()
        finally:
            left = await self.host.stop()
        # Stopped: nothing of the daemon is left running, no socket left open.
        if left.get("tasks_left"):
            report.problem(f"tasks left after stop: {left['tasks_left']}")
        if left.get("sockets_left", 0) > 0:
            report.problem(f"{left['sockets_left']} sockets left open after stop")
        report.steps = cfg.steps
        report.simulated_days = cfg.steps * cfg.step_seconds / 86400
        report.wall_seconds = time.monotonic() - started
        report.faults.update({k.value: n for k, n in sim.faults.injected.items()})
        return report

    async def _run(self) -> None:
        cfg, report, sim = self.cfg, self.report, self.sim
        async with asyncio.timeout(60):
            await self._first.wait()
        self.serial = self.snapshots[0].serial
        stats = await self.host.call("stats")
        self.backoff_max = stats["backoff_max"]
        self.mqtt_backoff_bound = stats["mqtt_backoff_bound"]
        await self.quiet()
        self.validate(self.truths())
        for kind, p in FAULTS.items():
            sim.faults.set_probability(kind, p)
        steps = cfg.steps
        restarts = {
            int(steps * (i + 1) / (cfg.broker_restarts + 1)) for i in range(cfg.broker_restarts)
        }
        outages = {
            int(steps * (i + 0.5) / max(cfg.influx_outages, 1)) for i in range(cfg.influx_outages)
        }
        influx_back = -1
        timeout = aiohttp.ClientTimeout(total=COMMAND_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            watcher_cm = watching(self.broker.port, f"{ROOT}/{self.serial}/#")
            watcher = await watcher_cm.__aenter__()
            try:
                for step in range(steps):
                    if step in restarts:
                        await self.check_mqtt(watcher)
                        await watcher_cm.__aexit__(None, None, None)
                        await self.restart_broker()
                        watcher_cm = watching(self.broker.port, f"{ROOT}/{self.serial}/#")
                        watcher = await watcher_cm.__aenter__()
                    if step in outages and not self.influx_down:
                        await self.check_influx()
                        await asyncio.to_thread(self.vm.stop)
                        self.influx_down = True
                        report.influx_outages += 1
                        influx_back = step + cfg.influx_outage_steps
                    if step == influx_back:
                        await asyncio.to_thread(self.vm.start)
                        self.influx_down = False
                    await self.step(step, watcher, session)
                    if not self.influx_down and (step + 1) % cfg.influx_check_every == 0:
                        await self.check_influx()
                    if (step + 1) % cfg.sample_every == 0:
                        stats = await self.host.call("stats")
                        report.samples.append(
                            (step + 1, stats["rss"], stats["tasks"], stats["sockets"])
                        )
                    if cfg.progress and (step + 1) % 144 == 0:
                        cfg.progress(
                            f"day {(step + 1) * cfg.step_seconds / 86400:.0f}: "
                            f"{report.snapshots} snapshots, "
                            f"{len(report.problems)} problems"
                        )
                sim.faults.clear()
                if self.influx_down:
                    await asyncio.to_thread(self.vm.start)
                    self.influx_down = False
                # One clean poll at the end: everything fresh again.
                await self.step(steps, watcher, session, commands=False)
                await self.check_mqtt(watcher)
                await self.check_influx()
            finally:
                await watcher_cm.__aexit__(None, None, None)
        stats = await self.host.call("stats")
        report.reconnects = stats["reconnects"]
        if stats.get("daemon_stopped"):
            report.problem("the daemon stopped")  # it must never need a restart

    async def step(
        self, step: int, watcher: Watcher, session: aiohttp.ClientSession, *, commands: bool = True
    ) -> None:
        cfg = self.cfg
        await self.quiet()
        self.validate(self.truths())  # anything published since the last step (fan-out, timers)
        refuse: float | None = None
        if commands and self.rng.random() < cfg.disconnect_p:
            refuse = 0.0
        elif commands and self.rng.random() < cfg.refuse_p:
            refuse = self.rng.uniform(0.3, 1.5)
        if refuse is not None:
            await self.reconnect_after(refuse)
            await self.quiet()
            self.validate(self.truths())
        self.plant.advance(cfg.step_seconds)
        truths = self.truths()
        mark = self.sim.mark()
        # The plant's new time and the refresh together: one poll, as with the plant's clock.
        await self.host.call("time", t=self.plant.now().isoformat(), refresh=True)
        sent: list[Sent] = []
        if commands:
            count = min(3, int(self.rng.expovariate(1 / cfg.commands_per_step)))
            used: set[str] = set()
            for _ in range(count):
                function, payload, valid = random_command(self.rng)
                if function in used:
                    continue
                used.add(function)
                sent.append(Sent(self.rng.choice(["mqtt", "rest"]), function, payload, valid))

        async def one(cmd: Sent) -> None:
            try:
                if cmd.transport == "mqtt":
                    await self.send_mqtt(watcher, cmd)
                else:
                    await self.send_rest(session, cmd)
            except (TimeoutError, aiohttp.ClientError) as err:
                self.report.problem(f"command {cmd.function} over {cmd.transport}: {err!r}")
            truths.extend(self.truths())  # a command may change the settings truth

        await asyncio.gather(*(one(c) for c in sent))
        await self.quiet()
        truths.extend(self.truths())
        self.validate(truths)
        self.check_commands(sent, mark)
        await self.check_mqtt(watcher)
        await self.check_runall(session)


async def run_soak(
    tmp_path: Path, cfg: SoakConfig, broker: Mosquitto, vm: VictoriaMetrics
) -> SoakReport:
    """Start the daemon (MQTT, REST, InfluxDB; its own process) against a frozen plant served
    here, and soak it."""
    rest_port = free_port()
    plant = Plant(PlantConfig(speed=0, start=START, seed=cfg.seed))
    async with plant.simulator() as sim:
        # Heartbeats every few real seconds, so the run answers many of them.
        sim.config = replace(sim.config, heartbeat_interval=2.0)
        settings = settings_dict(
            [sim],
            tmp_path / "state",
            inverter={"read_retries": 2},
            mqtt={
                "host": "127.0.0.1",
                "port": broker.port,
                "client_id": "givtcp-async-soak",
                "topic": ROOT,
            },
            rest={"port": rest_port},
            influx={"url": vm.url, "bucket": "givenergy", "org": "home", "token": "soak"},
            control={"write_budget_per_day": 0},
        )
        return await Soak(cfg, plant, sim, broker, vm, rest_port).run(settings)
