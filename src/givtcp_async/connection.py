"""One TCP connection to one dongle, and the one serialised request queue in front of it.

(``asyncio.timeout`` is used throughout, never ``asyncio.wait_for``: on Python 3.11 the latter
can swallow a cancellation that races with completion, which would leave a task running.)

Nothing else in the program writes to the socket. Requests are sent one at a time, spaced by
``pacing``; a request completes only when a response of the same shape arrives (SPEC §3.5).
Heartbeats are answered from the reader at once, even while a request is waiting. The link is
re-established after any socket error with capped exponential back-off and jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any, Final

import structlog

from givtcp_async.backoff import Backoff
from givtcp_async.errors import (
    ConnectionClosed,
    ConnectionLost,
    DeviceErrorResponse,
    NotConnected,
    RequestTimeout,
)
from givtcp_async.protocol.frames import (
    DUMMY_ADAPTER_SERIAL,
    ErrorResponse,
    Frame,
    FunctionCode,
    Heartbeat,
    LanConfigBroadcast,
    NullResponse,
    ReadRequest,
    ReadResponse,
    Request,
    WriteRequest,
    WriteResponse,
)
from givtcp_async.protocol.stream import FrameStream

log = structlog.get_logger(__name__)

_READ_CHUNK: Final = 4096


class Priority(IntEnum):
    """Queue order: lower goes first; equal priorities keep their arrival order."""

    WRITE = 0
    COMMAND = 1  # reads that belong to a command (read-back, verification)
    POLL = 2


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """How to reach one dongle and how hard to push it (defaults from SPEC §3.4)."""

    host: str
    port: int = 8899
    pacing: float = 0.25
    read_timeout: float = 2.0
    write_timeout: float = 1.5
    read_retries: int = 1
    write_retries: int = 1
    retry_delay: float = 0.5
    request_deadline: float = 30.0
    connect_timeout: float = 5.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    backoff_jitter: float = 0.2
    max_consecutive_timeouts: int = 5
    drain_timeout: float = 10.0
    close_timeout: float = 2.0
    adapter_serial: bytes = DUMMY_ADAPTER_SERIAL
    # A dongle sends a frame at least every few hundred bytes; this many without one is junk
    # (or not a dongle): the link is dropped and re-made with back-off, bounding the CPU spent.
    junk_limit: int = 64 * 1024


@dataclass(slots=True)
class ConnectionStats:
    """Counters of one connection; they only ever grow."""

    requests: int = 0
    frames_sent: int = 0
    responses: int = 0
    timeouts: int = 0
    probe_timeouts: int = 0  # probes of devices that may be absent: expected, not a link fault
    retries: int = 0
    error_responses: int = 0
    crc_failures: int = 0
    malformed: int = 0
    unsolicited: int = 0
    heartbeats: int = 0
    null_frames: int = 0
    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    junk_drops: int = 0  # links dropped for streaming bytes without a valid frame

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


Response = ReadResponse | WriteResponse
ResponseHook = Callable[[ReadResponse | WriteResponse, bool], None]
StateHook = Callable[[bool], None]


def request_key(request: Request) -> tuple[int, ...]:
    """The shape a matching response must carry."""
    return request.shape


def response_key(frame: ReadResponse | WriteResponse) -> tuple[int, ...]:
    return frame.shape


@dataclass(eq=False, slots=True)
class _Pending:
    request: Request
    priority: int
    seq: int
    timeout: float
    retries: int
    future: asyncio.Future[Response]
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    attempts: int = 0
    deadline_handle: asyncio.TimerHandle | None = None
    probe: bool = False  # its silence says nothing about the link

    def __lt__(self, other: _Pending) -> bool:
        return (self.priority, self.seq) < (other.priority, other.seq)

    def matches_error(self, err: ErrorResponse) -> bool:
        req = self.request
        if req.device_address != err.device_address:
            return False
        if isinstance(req, ReadRequest):
            # Some firmware echoes the count as 0 in error frames: match on base alone.
            return int(req.function) == err.function and req.base_register == err.field1
        return err.function == int(FunctionCode.WRITE_SINGLE) and req.register == err.field1


class DongleConnection:
    """A self-healing connection to one dongle with a serialised request queue.

    Use as ``async with DongleConnection(settings) as conn:`` or call :meth:`start` and
    :meth:`close`. :meth:`request` may be called from any task.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        on_response: ResponseHook | None = None,
        on_state: StateHook | None = None,
    ) -> None:
        self.settings = settings
        self.stats = ConnectionStats()
        self._on_response = on_response
        self._on_state = on_state
        self._backoff = Backoff(
            initial=settings.backoff_initial,
            maximum=settings.backoff_max,
            jitter=settings.backoff_jitter,
        )
        self._stream = FrameStream()
        self._heap: list[_Pending] = []
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._connected = asyncio.Event()
        self._inflight: _Pending | None = None
        self._late: dict[tuple[int, ...], _Pending] = {}
        self._last_send = 0.0
        self._consecutive_timeouts = 0
        self._supervisor: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._closed = False
        self._ever_connected = False
        self.last_delays: list[float] = []  # back-off delays taken, newest last (bounded)

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> DongleConnection:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start connecting in the background; returns at once."""
        if self._closed:
            raise ConnectionClosed("connection was closed")
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(
                self._supervise(), name=f"dongle-{self.settings.host}:{self.settings.port}"
            )

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def queued(self) -> int:
        """Requests waiting to be sent (not counting one in flight)."""
        return sum(1 for p in self._heap if not p.future.done())

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once connected; raises :class:`NotConnected` after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError as err:
            raise NotConnected(
                f"no connection to {self.settings.host}:{self.settings.port} within {timeout} s"
            ) from err

    async def close(self) -> None:
        """Stop, close the socket (bounded in time) and fail whatever is still pending."""
        self._closed = True
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=self.settings.close_timeout + 1.0)
            if not done:
                log.warning("connection supervisor did not stop in time", host=self.settings.host)
        self._fail_all(ConnectionClosed("connection closed"))

    # --- requests ----------------------------------------------------------------------------

    async def request(
        self,
        request: Request,
        *,
        priority: Priority | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        deadline: float | None = None,
        probe: bool = False,
    ) -> Response:
        """Send ``request`` through the queue and return the matching response.

        ``probe``: the request asks whether an optional device exists at all, so going
        unanswered does not count towards the consecutive timeouts that declare the link dead.

        Raises :class:`DeviceErrorResponse` for an error frame, :class:`RequestTimeout` when no
        answer came after every retry or before ``deadline`` seconds, :class:`NotConnected` when
        the link stayed down until then, and :class:`ConnectionClosed` after :meth:`close`.
        """
        if self._closed:
            raise ConnectionClosed("connection is closed")
        s = self.settings
        is_write = isinstance(request, WriteRequest)
        loop = asyncio.get_running_loop()
        pending = _Pending(
            request=request,
            priority=int(
                priority
                if priority is not None
                else (Priority.WRITE if is_write else Priority.POLL)
            ),
            seq=next(self._seq),
            timeout=timeout
            if timeout is not None
            else (s.write_timeout if is_write else s.read_timeout),
            retries=retries
            if retries is not None
            else (s.write_retries if is_write else s.read_retries),
            future=loop.create_future(),
            probe=probe,
        )
        pending.deadline_handle = loop.call_later(
            deadline if deadline is not None else s.request_deadline, self._expire, pending
        )
        self.stats.requests += 1
        heapq.heappush(self._heap, pending)
        self._wakeup.set()
        try:
            return await pending.future
        finally:
            pending.deadline_handle.cancel()

    async def read(
        self,
        device_address: int,
        function: FunctionCode,
        base_register: int,
        register_count: int,
        **kwargs: Any,
    ) -> ReadResponse:
        """Read a block of registers; see :meth:`request` for errors and options."""
        req = ReadRequest(
            device_address, function, base_register, register_count, self.settings.adapter_serial
        )
        resp = await self.request(req, **kwargs)
        assert isinstance(resp, ReadResponse)
        return resp

    async def write(
        self, device_address: int, register: int, value: int, **kwargs: Any
    ) -> WriteResponse:
        """Write one holding register; returns the echo (whose value may differ)."""
        req = WriteRequest(device_address, register, value, self.settings.adapter_serial)
        resp = await self.request(req, **kwargs)
        assert isinstance(resp, WriteResponse)
        return resp

    def _expire(self, pending: _Pending) -> None:
        if pending.future.done():
            return
        if self.connected:
            pending.future.set_exception(
                RequestTimeout(f"{pending.request.kind} not answered before its deadline")
            )
        else:
            pending.future.set_exception(
                NotConnected(f"no connection to {self.settings.host}:{self.settings.port}")
            )

    def _fail_all(self, exc: Exception) -> None:
        for pending in [
            *self._heap,
            *self._late.values(),
            *([self._inflight] if self._inflight else []),
        ]:
            if not pending.future.done():
                pending.future.set_exception(exc)
        self._heap.clear()
        self._late.clear()

    # --- the link ----------------------------------------------------------------------------

    def _set_connected(self, up: bool) -> None:
        if up == self._connected.is_set():
            return
        if up:
            self._connected.set()
        else:
            self._connected.clear()
        if self._on_state is not None:
            self._on_state(up)

    async def _supervise(self) -> None:
        s = self.settings
        try:
            while True:
                try:
                    async with asyncio.timeout(s.connect_timeout):
                        reader, writer = await asyncio.open_connection(s.host, s.port)
                except (OSError, TimeoutError) as err:
                    self.stats.connect_failures += 1
                    delay = self._backoff.next_delay()
                    self._note_delay(delay)
                    # The first failure in a run is news; the rest are not.
                    report = log.warning if self._backoff.failures == 1 else log.debug
                    report(
                        "dongle connect failed",
                        host=s.host,
                        port=s.port,
                        error=repr(err),
                        retry_in=round(delay, 3),
                    )
                    await asyncio.sleep(delay)
                    continue
                await self._session(reader, writer)
                self.stats.disconnects += 1
                delay = self._backoff.next_delay()
                self._note_delay(delay)
                log.info("dongle link down, reconnecting", host=s.host, retry_in=round(delay, 3))
                await asyncio.sleep(delay)
        finally:
            self._set_connected(False)

    def _note_delay(self, delay: float) -> None:
        self.last_delays.append(delay)
        del self.last_delays[:-64]

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connects += 1
        if self._ever_connected:
            self.stats.reconnects += 1
        self._ever_connected = True
        self._stream.reset()
        self._consecutive_timeouts = 0
        self._writer = writer
        self._set_connected(True)
        log.info("dongle connected", host=self.settings.host, port=self.settings.port)
        tasks = [
            asyncio.create_task(self._reader_loop(reader, writer), name="dongle-reader"),
            asyncio.create_task(self._sender_loop(writer), name="dongle-sender"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.info("dongle session ended", reason=repr(task.exception()))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._writer = None
            self._set_connected(False)
            await self._close_writer(writer)
            self._requeue_inflight()

    async def _close_writer(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        try:
            async with asyncio.timeout(self.settings.close_timeout):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            writer.transport.abort()
        except asyncio.CancelledError:
            writer.transport.abort()
            raise

    def _requeue_inflight(self) -> None:
        """A request cut off by the link going down is sent again if it has retries left."""
        pending, self._inflight = self._inflight, None
        late, self._late = list(self._late.values()), {}
        for p in ([pending] if pending else []) + late:
            if p.future.done():
                continue
            if p.attempts <= p.retries:
                heapq.heappush(self._heap, p)
            else:
                p.future.set_exception(ConnectionLost("connection lost while waiting for answer"))

    async def _reader_loop(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        stream = self._stream
        junk = 0  # bytes since the last valid frame
        while True:
            data = await reader.read(_READ_CHUNK)
            if not data:
                raise ConnectionLost("dongle closed the connection")
            before_crc, before_bad = stream.stats.crc_failures, stream.stats.malformed
            frames = stream.feed(data)
            self.stats.crc_failures += stream.stats.crc_failures - before_crc
            self.stats.malformed += stream.stats.malformed - before_bad
            junk = 0 if frames else junk + len(data)
            if junk > self.settings.junk_limit:
                self.stats.junk_drops += 1
                raise ConnectionLost(f"{junk} bytes without a valid frame")
            for frame in frames:
                self._dispatch(frame, writer)

    def _dispatch(self, frame: Frame, writer: asyncio.StreamWriter) -> None:
        if isinstance(frame, Heartbeat):
            self.stats.heartbeats += 1
            writer.write(Heartbeat(self.settings.adapter_serial, frame.adapter_type).encode())
            return
        if isinstance(frame, NullResponse | LanConfigBroadcast):
            self.stats.null_frames += 1
            return
        if isinstance(frame, ErrorResponse):
            self._on_error_frame(frame)
            return
        if isinstance(frame, ReadResponse | WriteResponse):
            self._on_response_frame(frame)
        # Requests never come from a dongle; anything else is ignored.

    def _candidates(self) -> list[_Pending]:
        """Requests a response may complete: those sent at least once and not yet answered."""
        current = self._inflight
        sent = [current] if current is not None and current.attempts else []
        return sent + list(self._late.values())

    def _on_response_frame(self, frame: ReadResponse | WriteResponse) -> None:
        key = response_key(frame)
        match = next((p for p in self._candidates() if request_key(p.request) == key), None)
        self._backoff.reset()
        if match is None:
            self.stats.unsolicited += 1
        else:
            self.stats.responses += 1
            self._consecutive_timeouts = 0
            match.answered.set()
            if not match.future.done():
                match.future.set_result(frame)
        if self._on_response is not None:
            self._on_response(frame, match is not None)

    def _on_error_frame(self, frame: ErrorResponse) -> None:
        match = next((p for p in self._candidates() if p.matches_error(frame)), None)
        if match is None:
            self.stats.unsolicited += 1
            return
        self.stats.error_responses += 1
        self._consecutive_timeouts = 0
        match.answered.set()
        if not match.future.done():
            match.future.set_exception(
                DeviceErrorResponse(
                    f"device {frame.device_address:#04x} refused function {frame.function:#04x} "
                    f"({frame.field1}, {frame.field2})",
                    device_address=frame.device_address,
                    function=frame.function,
                )
            )

    async def _next_pending(self) -> _Pending:
        while True:
            while self._heap:
                pending = heapq.heappop(self._heap)
                if not pending.future.done():
                    return pending
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _sender_loop(self, writer: asyncio.StreamWriter) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        while True:
            pending = await self._next_pending()
            # Held in _inflight from here on, so a dropped link re-queues it.
            self._inflight = pending
            wait = self._last_send + s.pacing - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if pending.future.done():  # cancelled or expired while pacing
                self._inflight = None
                continue
            pending.answered.clear()
            pending.attempts += 1
            if pending.attempts > 1:
                self.stats.retries += 1
            writer.write(pending.request.encode())
            self._last_send = loop.time()
            self.stats.frames_sent += 1
            try:
                async with asyncio.timeout(s.drain_timeout):
                    await writer.drain()
            except TimeoutError as err:
                raise ConnectionLost("socket write stalled") from err
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pending.timeout):
                    await pending.answered.wait()
            if pending.answered.is_set() or pending.future.done():
                self._inflight = None
                continue
            if pending.probe:
                self.stats.probe_timeouts += 1
            else:
                self.stats.timeouts += 1
                self._consecutive_timeouts += 1
            exhausted = pending.attempts > pending.retries
            if exhausted:
                self._inflight = None
                pending.future.set_exception(
                    RequestTimeout(
                        f"{pending.request.kind} {request_key(pending.request)} unanswered after "
                        f"{pending.attempts} attempt(s)"
                    )
                )
            if self._consecutive_timeouts >= s.max_consecutive_timeouts:
                # One with retries left stays in _inflight: the session's end re-queues it.
                raise ConnectionLost(f"{self._consecutive_timeouts} consecutive timeouts")
            if exhausted:
                continue
            self._inflight = None
            # The dongle has multi-second silent windows: wait before retrying, and accept a
            # late answer that arrives meanwhile. If the link drops now, _late re-queues it.
            key = request_key(pending.request)
            self._late[key] = pending
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(s.retry_delay):
                    await pending.answered.wait()  # a late answer ends the wait at once
            self._late.pop(key, None)
            if not pending.answered.is_set() and not pending.future.done():
                heapq.heappush(self._heap, pending)  # keeps its place: same priority and seq
