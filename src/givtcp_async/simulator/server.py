"""An asyncio TCP server that plays a GivEnergy dongle over the real wire protocol.

It answers reads from a :class:`RegisterStore`, applies and echoes writes, sends heartbeats and
closes clients that miss them, fans every answer out to every connected client as a real dongle
does, and injects faults on demand. It is the inverter peer of every test in the project.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final

import structlog

from givtcp_async.protocol.frames import (
    ErrorResponse,
    Frame,
    Heartbeat,
    ReadRequest,
    ReadResponse,
    Request,
    WriteRequest,
    WriteResponse,
)
from givtcp_async.protocol.stream import FrameStream
from givtcp_async.quality.patterns import pattern_a_page
from givtcp_async.simulator.faults import Fault, FaultInjector, FaultKind
from givtcp_async.simulator.store import RegisterStore

log = structlog.get_logger(__name__)

_EVENT_HISTORY: Final = 20_000


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Where the simulated dongle listens and how it behaves."""

    host: str = "127.0.0.1"
    port: int = 0
    heartbeat_interval: float = 180.0
    heartbeat_misses: int = 3
    response_delay: float = 0.0
    adapter_serial: bytes = b"WF2125G000"
    adapter_type: int = 1


@dataclass(frozen=True, slots=True)
class SimEvent:
    """Something the simulator saw or did; ``seq`` orders events."""

    seq: int
    kind: (
        str  # connect, disconnect, request, response, write, heartbeat_sent, heartbeat_reply, fault
    )
    client: int
    time: float
    frame: Frame | None = None
    detail: str = ""


@dataclass(slots=True)
class SimStats:
    connections: int = 0
    requests: int = 0
    responses: int = 0
    writes: int = 0
    heartbeats_sent: int = 0
    heartbeat_replies: int = 0
    clients_closed_for_missed_heartbeats: int = 0


@dataclass(eq=False, slots=True)
class _Client:
    id: int
    writer: asyncio.StreamWriter
    stream: FrameStream = field(default_factory=FrameStream)
    unanswered: int = 0


PreAnswerHook = Callable[[], None]


class DongleSimulator:
    """The simulated dongle; ``async with DongleSimulator(store) as sim: sim.port``."""

    def __init__(
        self,
        store: RegisterStore,
        config: SimulatorConfig | None = None,
        *,
        faults: FaultInjector | None = None,
    ) -> None:
        self.store = store
        self.config = config or SimulatorConfig()
        self.faults = faults or FaultInjector()
        self.stats = SimStats()
        self.events: deque[SimEvent] = deque(maxlen=_EVENT_HISTORY)
        self.pre_answer_hooks: list[PreAnswerHook] = []
        self.port = self.config.port
        self._seq = itertools.count()
        self._client_ids = itertools.count(1)
        self._clients: dict[int, _Client] = {}
        self._handlers: dict[int, asyncio.Task[object]] = {}
        self._server: asyncio.Server | None = None
        self._work: asyncio.Queue[tuple[_Client, Request]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._signal = asyncio.Event()
        self._refuse_handle: asyncio.TimerHandle | None = None
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> DongleSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        await self._listen()
        self._worker = asyncio.create_task(self._process_loop(), name="sim-worker")
        log.info("simulator listening", host=self.config.host, port=self.port)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._on_client, self.config.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening, drop every client and stop every task (bounded in time)."""
        self._closed = True
        if self._refuse_handle is not None:
            self._refuse_handle.cancel()
        if self._server is not None:
            self._server.close()
        # Client handler tasks end by themselves once their socket is aborted; cancelling them
        # instead makes asyncio's stream callback log a spurious error on Python 3.11.
        handlers = [self._handlers[c] for c in self._clients if c in self._handlers]
        for client in list(self._clients.values()):
            self._drop(client)
        if self._worker is not None:
            self._worker.cancel()
            handlers.append(self._worker)
        if handlers:
            _, stuck = await asyncio.wait(handlers, timeout=2.0)
            for task in stuck:
                task.cancel()
        self._clients.clear()

    @property
    def client_count(self) -> int:
        return len(self._clients)

    # --- events ------------------------------------------------------------------------------

    def _event(self, kind: str, client: int, frame: Frame | None = None, detail: str = "") -> None:
        ev = SimEvent(
            next(self._seq), kind, client, asyncio.get_running_loop().time(), frame, detail
        )
        self.events.append(ev)
        # Wake every waiter, then give later waiters a fresh event to wait on.
        self._signal.set()
        self._signal = asyncio.Event()

    def mark(self) -> int:
        """A position in the event history; pass it to :meth:`wait_for` to see only later events."""
        return self.events[-1].seq + 1 if self.events else 0

    async def wait_for(
        self, predicate: Callable[[SimEvent], bool], *, after: int = 0, timeout: float = 10.0
    ) -> SimEvent:
        """The first event at or after ``after`` that satisfies ``predicate``."""

        def find() -> SimEvent | None:
            return next((e for e in self.events if e.seq >= after and predicate(e)), None)

        async with asyncio.timeout(timeout):
            while (ev := find()) is None:
                await self._signal.wait()
            return ev

    def requests_seen(self, after: int = 0) -> list[Request]:
        """Every request received since ``after``, in order."""
        return [
            e.frame
            for e in self.events
            if e.kind == "request"
            and e.seq >= after
            and isinstance(e.frame, ReadRequest | WriteRequest)
        ]

    # --- clients -----------------------------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(next(self._client_ids), writer)
        self._clients[client.id] = client
        self.stats.connections += 1
        self._event("connect", client.id)
        hb = asyncio.create_task(self._heartbeat_loop(client), name=f"sim-hb-{client.id}")
        current = asyncio.current_task()
        if current is not None:
            self._handlers[client.id] = current
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                for frame in client.stream.feed(data):
                    self._on_frame(client, frame)
        except (ConnectionError, OSError):
            pass
        finally:
            hb.cancel()
            self._handlers.pop(client.id, None)
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        if self._clients.pop(client.id, None) is not None:
            client.writer.transport.abort()
            self._event("disconnect", client.id)

    def _on_frame(self, client: _Client, frame: Frame) -> None:
        if isinstance(frame, Heartbeat):
            client.unanswered = 0
            self.stats.heartbeat_replies += 1
            self._event("heartbeat_reply", client.id, frame)
            return
        if isinstance(frame, ReadRequest | WriteRequest):
            self.stats.requests += 1
            self._event("request", client.id, frame)
            self._work.put_nowait((client, frame))

    async def _heartbeat_loop(self, client: _Client) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            if client.unanswered >= self.config.heartbeat_misses:
                self.stats.clients_closed_for_missed_heartbeats += 1
                self._event("heartbeat_timeout", client.id)
                self._drop(client)
                return
            self._send_heartbeat(client)

    def _send_heartbeat(self, client: _Client) -> None:
        hb = Heartbeat(self.config.adapter_serial, self.config.adapter_type)
        client.unanswered += 1
        client.writer.write(hb.encode())
        self.stats.heartbeats_sent += 1
        self._event("heartbeat_sent", client.id, hb)

    def send_heartbeat(self) -> None:
        """Send a heartbeat to every client now (tests)."""
        for client in list(self._clients.values()):
            self._send_heartbeat(client)

    def broadcast(self, data: bytes | Frame) -> None:
        """Send bytes or a frame to every client, as the dongle's fan-out would."""
        raw = data if isinstance(data, bytes) else data.encode()
        for client in list(self._clients.values()):
            client.writer.write(raw)

    def disconnect_all(self) -> None:
        """Drop every client connection now."""
        for client in list(self._clients.values()):
            self._drop(client)

    def refuse_connections(self, seconds: float) -> None:
        """Stop listening for ``seconds``; connection attempts meanwhile are refused."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._refuse_handle is not None:
            self._refuse_handle.cancel()

        def reopen() -> None:
            self._refuse_handle = None
            if not self._closed:
                asyncio.get_running_loop().create_task(self._listen())

        self._refuse_handle = asyncio.get_running_loop().call_later(seconds, reopen)

    # --- answering ---------------------------------------------------------------------------

    def answer(self, request: Request) -> ReadResponse | WriteResponse | ErrorResponse | None:
        """What the plant answers to ``request`` right now (None: nothing answers)."""
        for hook in self.pre_answer_hooks:
            hook()
        if isinstance(request, ReadRequest):
            return self.store.read(
                request.device_address,
                request.function,
                request.base_register,
                request.register_count,
            )
        self.stats.writes += 1
        resp = self.store.write(request.device_address, request.register, request.value)
        if isinstance(resp, WriteResponse):
            self._event("write", 0, resp)
        return resp

    async def _process_loop(self) -> None:
        while True:
            client, request = await self._work.get()
            fault = self.faults.take(request)
            if fault is not None:
                self._event("fault", client.id, request, fault.kind.value)
            delay = self.config.response_delay + (
                fault.seconds if fault is not None and fault.kind is FaultKind.DELAY else 0.0
            )
            if delay > 0:
                await asyncio.sleep(delay)
            self._apply(client, request, fault)

    def _apply(self, client: _Client, request: Request, fault: Fault | None) -> None:
        kind = fault.kind if fault is not None else None
        if kind is FaultKind.DISCONNECT:
            self._drop(client)
            return
        if kind is FaultKind.REFUSE:
            assert fault is not None
            self.refuse_connections(fault.seconds or 1.0)
        if kind is FaultKind.DROP:
            return
        resp = self.answer(request)
        if resp is None:
            return
        if isinstance(resp, ReadResponse) and kind is FaultKind.ZERO_PAGE:
            resp = replace(resp, values=(0,) * len(resp.values))
        elif isinstance(resp, ReadResponse) and kind is FaultKind.GARBAGE_PAGE:
            resp = replace(resp, values=pattern_a_page(resp.values))
        elif isinstance(resp, ReadResponse) and kind is FaultKind.ONES_PAGE:
            resp = replace(resp, values=(0xFFFF,) * len(resp.values))
        resp = replace(resp, adapter_serial=self.config.adapter_serial)
        raw = resp.encode()
        if kind is FaultKind.BAD_CRC:
            raw = raw[:-2] + bytes([raw[-2] ^ 0xFF, raw[-1] ^ 0x5A])
        elif kind is FaultKind.TRUNCATE:
            raw = raw[: max(9, len(raw) // 2)]
        elif kind is FaultKind.SPLICE:
            raw = raw[: len(raw) // 3] + raw
        elif kind is FaultKind.GARBAGE:
            raw = os.urandom(17) + raw
        self.stats.responses += 1
        self._event("response", client.id, resp, kind.value if kind else "")
        for other in list(self._clients.values()):
            with contextlib.suppress(ConnectionError, OSError):
                other.writer.write(raw)
