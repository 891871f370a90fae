"""The chaos soak's daemon, in a process of its own (``python -m tests.soak_host``).

:mod:`tests.soak` starts this program and drives it over its standard input and output, one JSON
object a line, so that the memory, tasks and sockets it samples are the daemon's alone (not mixed
with the simulator's and the checker's). The first line in is the start: the settings (as
``Settings.model_validate`` takes them) and the plant's start time. Then requests
``{"id": N, "op": ...}`` each get ``{"id": N, ...}`` back; between them, every snapshot the daemon
publishes comes out as ``{"event": "snapshot", ...}``: its readings (value, stale), and what the
checker compares with the outputs: the MQTT (topic, payload) pairs, the runAll tree and the
InfluxDB lines it makes. Serialising them is the only work here that the daemon does not do.

The daemon runs on a clock that only the soak moves (``time``), as the plant's simulated clock.

Operations: ``time`` (set the clock; with ``refresh``, and poll now), ``refresh`` (poll now,
settings too), ``quiet`` (answer once the poll loop waits for its next poll and every snapshot has
been sent), ``stats``, ``mqtt_connected`` (wait for the N-th MQTT session), ``influx_drained``
(wait until every point is written), ``stop`` (stop the daemon; answers with what it left behind,
then the process exits).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from datetime import datetime
from typing import Any

import structlog

from givtcp_async.backoff import Backoff
from givtcp_async.config import Settings
from givtcp_async.daemon import Daemon
from givtcp_async.sinks.influx import InfluxService, snapshot_points
from givtcp_async.sinks.mqtt import MqttService
from givtcp_async.sinks.state_topics import StateTopics
from givtcp_async.snapshot import Snapshot


def resources() -> tuple[float, int]:
    """This process's resident memory (MiB) and open sockets."""
    rss = 0.0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return rss, sockets


def encode(value: Any) -> Any:
    """A reading's value as JSON (datetimes tagged: the checker compares them as datetimes)."""
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    return value


class SteppedClock:
    """The daemon's clock: moves only when the soak moves the plant (``time``)."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._moved = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = max(self._now, when)
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def sleep_until(self, when: datetime) -> None:
        while self._now < when:
            await self._moved.wait()


class Host:
    def __init__(self, daemon: Daemon, clock: SteppedClock, out: asyncio.StreamWriter) -> None:
        self.daemon = daemon
        self.clock = clock
        self.out = out
        self.coord = daemon.coordinators[0]
        self.sent: Snapshot | None = None
        self._sent_signal = asyncio.Event()
        self.topics: StateTopics | None = None

    def write(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n")

    async def forward(self) -> None:
        """Send every snapshot the coordinator publishes."""
        async for snap in self.coord.updates():
            if self.topics is None:
                root = self.daemon.settings.mqtt.topic
                self.topics = StateTopics(root, changes_only=False)
            self.write({
                "event": "snapshot",
                "serial": snap.serial,
                "taken_at": snap.taken_at.isoformat(),
                "values": {n: [encode(r.value), r.stale] for n, r in snap.values.items()},
                "batteries": [{n: [encode(r.value), r.stale] for n, r in b.values.items()}
                              for b in snap.batteries],
                "mqtt": [[m.topic, m.payload] for m in self.topics.messages(snap)],
                "runall": snap.runall(),
                "influx": snapshot_points(snap),
            })  # fmt: skip
            await self.out.drain()
            self.sent = snap
            self._sent_signal.set()
            self._sent_signal = asyncio.Event()

    async def quiet(self) -> None:
        await self.coord.wait_idle()
        while self.sent is not self.coord.snapshot:
            await self._sent_signal.wait()

    def service(self, kind: type[Any]) -> Any:
        return next(s for s in self.daemon.services if isinstance(s, kind))

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "time":
            # With ``refresh``, both at once: the poll the clock wakes is the one asked for.
            self.clock.set(datetime.fromisoformat(request["t"]))
            if request.get("refresh"):
                self.coord.request_refresh(settings=True)
        elif op == "refresh":
            self.coord.request_refresh(settings=True)
        elif op == "quiet":
            await self.quiet()
        elif op == "stats":
            rss, sockets = resources()
            return {
                "rss": rss,
                "sockets": sockets,
                "tasks": len(asyncio.all_tasks()),
                "reconnects": self.coord.conn.stats.reconnects,
                "backoff_max": self.coord.conn.settings.backoff_max,
                "mqtt_backoff_bound": self.service(MqttService).backoff.bound(),
            }
        elif op == "mqtt_connected":
            await self.service(MqttService).wait_connected(int(request["n"]))
        elif op == "influx_drained":
            influx = self.service(InfluxService)
            await influx.wait_for(lambda: len(influx.buffer) == 0 and influx.buffer.in_flight == 0)
        else:
            raise ValueError(f"unknown op {op!r}")
        return {}


async def main() -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # The protocol has the original standard output to itself; stray prints go to stderr.
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, proto)
    out = asyncio.StreamWriter(transport, protocol, None, loop)

    start = json.loads(await reader.readline())
    clock = SteppedClock(datetime.fromisoformat(start["time"]))
    settings = Settings.model_validate(start["settings"])
    before = set(asyncio.all_tasks())
    sockets_before = resources()[1]
    daemon = Daemon(settings, clock=clock)
    for coord in daemon.coordinators:
        coord.reader.probe_timeout = 0.2
    for service in daemon.services:
        if isinstance(service, InfluxService):
            service.retry = Backoff(initial=0.05, maximum=0.5)
    host = Host(daemon, clock, out)
    runner = asyncio.create_task(daemon.run(), name="soak-daemon")
    forwarder = asyncio.create_task(host.forward(), name="soak-forward")
    async with asyncio.timeout(10):
        await daemon.started.wait()
    host.write({"event": "started"})

    async def answer(request: dict[str, Any]) -> None:
        try:
            reply = await host.handle(request)
        except Exception as err:  # noqa: BLE001 (reported to the soak, which fails the run)
            reply = {"error": f"{type(err).__name__}: {err}"}
        if runner.done():
            reply["daemon_stopped"] = True
        host.write({"id": request["id"], **reply})

    pending: set[asyncio.Task[None]] = set()
    while line := await reader.readline():
        request = json.loads(line)
        if request["op"] == "stop":
            for task in pending:
                task.cancel()
            daemon.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forwarder
            await asyncio.sleep(0)
            left = set(asyncio.all_tasks()) - before - {asyncio.current_task()}
            host.write({"id": request["id"], "tasks_left": sorted(t.get_name() for t in left),
                        "sockets_left": resources()[1] - sockets_before})  # fmt: skip
            await out.drain()
            return 0
        task = asyncio.create_task(answer(request))
        pending.add(task)
        task.add_done_callback(pending.discard)
    return 1  # the soak went away without stopping the daemon


if __name__ == "__main__":
    # The daemon's own log lines would drown the protocol and the soak's output: errors only.
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    sys.exit(asyncio.run(main()))
