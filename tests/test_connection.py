"""DongleConnection against the simulated dongle over real TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from givtcp_async.backoff import Backoff
from givtcp_async.connection import ConnectionSettings, DongleConnection, Priority
from givtcp_async.errors import (
    ConnectionClosed,
    DeviceErrorResponse,
    NotConnected,
    RequestTimeout,
)
from givtcp_async.protocol.frames import (
    ErrorResponse,
    Heartbeat,
    ReadRequest,
    ReadResponse,
    WriteRequest,
    WriteResponse,
)
from givtcp_async.quality.patterns import pattern_a_page
from givtcp_async.simulator.faults import FaultKind
from givtcp_async.simulator.server import DongleSimulator, SimEvent, SimulatorConfig
from tests.sim_support import (
    BATTERY,
    HR,
    INVERTER,
    INVERTER_SERIAL,
    IR,
    RawClient,
    expected_read,
    hr_value,
    ir_value,
    make_store,
)

ADAPTER = SimulatorConfig().adapter_serial
CLIENT_SERIAL = ConnectionSettings("x").adapter_serial


def fast(port: int, **changes: Any) -> ConnectionSettings:
    """Small timeouts so the suite stays quick."""
    base = ConnectionSettings(
        host="127.0.0.1",
        port=port,
        pacing=0.0,
        read_timeout=0.3,
        write_timeout=0.3,
        read_retries=1,
        write_retries=1,
        retry_delay=0.05,
        request_deadline=5.0,
        connect_timeout=1.0,
        backoff_initial=0.02,
        backoff_max=0.2,
        close_timeout=0.5,
    )
    return replace(base, **changes)


def values(frame: ReadResponse | WriteResponse) -> tuple[int, ...]:
    assert isinstance(frame, ReadResponse)
    return frame.values


def ir(base: int, count: int = 60, device: int = INVERTER) -> tuple[int, ...]:
    return tuple(ir_value(r) for r in range(base, base + count))


def hr(base: int, count: int = 60) -> tuple[int, ...]:
    return tuple(hr_value(r) for r in range(base, base + count))


def dongle_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("dongle") and not t.done()]


class Recorder:
    """on_response / on_state hooks that keep what they saw and let tests wait for it."""

    def __init__(self) -> None:
        self.responses: list[tuple[ReadResponse | WriteResponse, bool]] = []
        self.states: list[bool] = []
        self._changed = asyncio.Event()

    def on_response(self, frame: ReadResponse | WriteResponse, solicited: bool) -> None:
        self.responses.append((frame, solicited))
        self._changed.set()

    def on_state(self, up: bool) -> None:
        self.states.append(up)
        self._changed.set()

    async def wait_state(self, up: bool, timeout: float = 5.0) -> None:
        """Wait until the latest state change reported is ``up``."""
        async with asyncio.timeout(timeout):
            while not self.states or self.states[-1] != up:
                self._changed.clear()
                await self._changed.wait()

    async def wait_unsolicited(self, n: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while sum(1 for _, s in self.responses if not s) < n:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def sim() -> AsyncIterator[DongleSimulator]:
    async with DongleSimulator(make_store(), SimulatorConfig(heartbeat_interval=60)) as s:
        yield s


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def conn(sim: DongleSimulator, recorder: Recorder) -> AsyncIterator[DongleConnection]:
    async with DongleConnection(
        fast(sim.port), on_response=recorder.on_response, on_state=recorder.on_state
    ) as c:
        await c.wait_connected(5)
        yield c
    assert dongle_tasks() == []


def is_request(e: SimEvent) -> bool:
    return e.kind == "request"


# --- plain reads and writes ------------------------------------------------------------------


async def test_reads_and_writes(
    sim: DongleSimulator, conn: DongleConnection, recorder: Recorder
) -> None:
    resp = await conn.read(INVERTER, IR, 0, 60)
    assert resp == expected_read(INVERTER, IR, 0, 60, ADAPTER)
    assert values(await conn.read(INVERTER, HR, 58, 5)) == hr(58, 5)
    assert values(await conn.read(BATTERY, IR, 60, 60)) == tuple(
        ir_value(r) + 5 for r in range(60, 120)
    )
    echo = await conn.write(INVERTER, 20, 1)
    assert echo == WriteResponse(INVERTER, INVERTER_SERIAL, 20, 1, ADAPTER)
    assert sim.store.holding(20) == 1
    assert values(await conn.read(INVERTER, HR, 0, 60))[20] == 1
    assert conn.stats.requests == conn.stats.responses == conn.stats.frames_sent == 5
    assert conn.stats.timeouts == conn.stats.retries == conn.stats.unsolicited == 0
    assert recorder.states == [True]
    assert [s for _, s in recorder.responses] == [True] * 5
    # Every request carried the client's adapter serial and a correct CRC (the simulator's
    # FrameStream only passes CRC-valid frames on).
    seen = sim.requests_seen()
    assert len(seen) == 5
    assert all(r.adapter_serial == CLIENT_SERIAL for r in seen)


async def test_error_frames_raise_device_error_response(
    sim: DongleSimulator, conn: DongleConnection
) -> None:
    with pytest.raises(DeviceErrorResponse) as info:
        await conn.read(INVERTER, HR, 240, 60)
    assert info.value.device_address == INVERTER
    assert info.value.function == 3
    assert "67" not in str(info.value)  # the serial's 'S' is not an exception code
    with pytest.raises(DeviceErrorResponse) as winfo:
        await conn.write(INVERTER, 300, 5)
    assert winfo.value.function == 6
    assert conn.stats.error_responses == 2
    assert conn.stats.retries == 0  # an error is an answer, not a reason to retry
    # The queue is in step afterwards.
    assert values(await conn.read(INVERTER, IR, 180, 60)) == ir(180)


# --- unsolicited frames ----------------------------------------------------------------------


async def test_unsolicited_frames_never_complete_the_wrong_request(
    sim: DongleSimulator, conn: DongleConnection, recorder: Recorder
) -> None:
    sim.faults.add(FaultKind.DELAY, seconds=0.25)
    mark = sim.mark()
    task = asyncio.create_task(conn.read(INVERTER, IR, 0, 60, timeout=2.0))
    await sim.wait_for(is_request, after=mark)
    fake = (0xBEEF,) * 60
    decoys: list[ReadResponse] = [
        ReadResponse(INVERTER, IR, INVERTER_SERIAL, 180, fake, ADAPTER),  # other base
        ReadResponse(INVERTER, IR, INVERTER_SERIAL, 0, fake[:30], ADAPTER),  # other count
        ReadResponse(INVERTER, HR, INVERTER_SERIAL, 0, fake, ADAPTER),  # other function
        ReadResponse(0x31, IR, INVERTER_SERIAL, 0, fake, ADAPTER),  # other device
    ]
    for decoy in decoys:
        sim.broadcast(decoy)
    sim.broadcast(ErrorResponse(0x31, 4, INVERTER_SERIAL, 0, 60, ADAPTER))  # other device
    await recorder.wait_unsolicited(len(decoys))
    assert not task.done()
    resp = await task
    assert values(resp) == ir(0)
    assert conn.stats.unsolicited == len(decoys) + 1
    assert conn.stats.responses == 1
    assert recorder.responses == [*((d, False) for d in decoys), (resp, True)]


async def test_unsolicited_frame_shaped_like_a_queued_request_does_not_complete_it(
    sim: DongleSimulator, conn: DongleConnection
) -> None:
    sim.faults.add(FaultKind.DELAY, seconds=0.25)
    mark = sim.mark()
    first = asyncio.create_task(conn.read(INVERTER, IR, 0, 60, timeout=2.0))
    await sim.wait_for(is_request, after=mark)
    queued = asyncio.create_task(conn.read(INVERTER, HR, 0, 60, timeout=2.0))  # not sent yet
    await asyncio.sleep(0)  # let it enter the queue (ordering only, not timing)
    assert conn.queued == 1
    sim.broadcast(ReadResponse(INVERTER, HR, INVERTER_SERIAL, 0, (0xBEEF,) * 60, ADAPTER))
    assert values(await first) == ir(0)
    assert values(await queued) == hr(0)  # its own answer, not the stale broadcast
    assert conn.stats.unsolicited == 1


async def test_other_clients_traffic_arrives_as_unsolicited(
    sim: DongleSimulator, conn: DongleConnection, recorder: Recorder
) -> None:
    other = await RawClient.connect(sim.port)
    await other.send(ReadRequest(BATTERY, IR, 60, 60))
    await recorder.wait_unsolicited(1)
    frame, solicited = recorder.responses[-1]
    assert not solicited
    assert isinstance(frame, ReadResponse)
    assert frame.shape == (BATTERY, 4, 60, 60)
    assert conn.stats.unsolicited == 1
    assert conn.stats.responses == 0
    # Our own request of a different shape is answered normally afterwards.
    assert values(await conn.read(INVERTER, IR, 0, 60)) == ir(0)
    await other.close()


# --- heartbeats ------------------------------------------------------------------------------


async def test_heartbeat_answered_with_same_type_while_a_request_is_pending(
    recorder: Recorder,
) -> None:
    config = SimulatorConfig(heartbeat_interval=60, adapter_type=2)
    async with (
        DongleSimulator(make_store(), config) as sim,
        DongleConnection(fast(sim.port, read_timeout=1.0)) as conn,
    ):
        await conn.wait_connected(5)
        sim.faults.add(FaultKind.DROP)
        mark = sim.mark()
        task = asyncio.create_task(conn.read(INVERTER, IR, 0, 60))
        await sim.wait_for(is_request, after=mark)
        hb_mark = sim.mark()
        sim.send_heartbeat()
        sent = await sim.wait_for(lambda e: e.kind == "heartbeat_sent", after=hb_mark)
        reply = await sim.wait_for(lambda e: e.kind == "heartbeat_reply", after=hb_mark)
        assert not task.done()  # the read was still waiting for its answer
        assert reply.time - sent.time < 1.0
        assert isinstance(reply.frame, Heartbeat)
        assert reply.frame.adapter_type == 2
        assert reply.frame.adapter_serial == CLIENT_SERIAL
        assert conn.stats.heartbeats == 1
        # The dropped read is retried and completes.
        assert values(await task) == ir(0)
        assert conn.stats.retries == 1


async def test_connection_keeps_answering_periodic_heartbeats() -> None:
    config = SimulatorConfig(heartbeat_interval=0.15, heartbeat_misses=3)
    async with (
        DongleSimulator(make_store(), config) as sim,
        DongleConnection(fast(sim.port)) as conn,
    ):
        await conn.wait_connected(5)

        def sixth_reply(e: SimEvent) -> bool:
            return (
                e.kind == "heartbeat_reply"
                and sum(1 for x in sim.events if x.kind == "heartbeat_reply") >= 6
            )

        await sim.wait_for(sixth_reply, timeout=5)
        assert sim.stats.clients_closed_for_missed_heartbeats == 0
        assert conn.stats.reconnects == 0
        assert conn.connected


# --- faults ----------------------------------------------------------------------------------


async def test_delay_within_timeout(sim: DongleSimulator, conn: DongleConnection) -> None:
    sim.faults.add(FaultKind.DELAY, seconds=0.1)
    assert values(await conn.read(INVERTER, IR, 0, 60)) == ir(0)
    assert conn.stats.timeouts == 0


async def test_late_answer_within_retry_window_completes_without_resending(
    sim: DongleSimulator,
) -> None:
    async with DongleConnection(fast(sim.port, read_timeout=0.3, retry_delay=0.8)) as conn:
        await conn.wait_connected(5)
        sim.faults.add(FaultKind.DELAY, seconds=0.6)  # after the timeout, before the retry
        mark = sim.mark()
        assert values(await conn.read(INVERTER, IR, 0, 60)) == ir(0)
        assert conn.stats.timeouts == 1
        assert conn.stats.retries == 0
        assert len(sim.requests_seen(mark)) == 1


async def test_drop_then_retry_succeeds(sim: DongleSimulator, conn: DongleConnection) -> None:
    sim.faults.add(FaultKind.DROP)
    mark = sim.mark()
    assert values(await conn.read(INVERTER, IR, 0, 60)) == ir(0)
    assert (conn.stats.timeouts, conn.stats.retries) == (1, 1)
    req = ReadRequest(INVERTER, IR, 0, 60, CLIENT_SERIAL)
    assert sim.requests_seen(mark) == [req, req]


async def test_drop_on_every_attempt_raises_request_timeout(
    sim: DongleSimulator, conn: DongleConnection
) -> None:
    sim.faults.add(FaultKind.DROP, count=2)
    with pytest.raises(RequestTimeout):
        await conn.read(INVERTER, IR, 0, 60)
    assert conn.stats.timeouts == 2
    assert values(await conn.read(INVERTER, IR, 0, 60)) == ir(0)


async def test_bad_crc_counted_then_retry_succeeds(
    sim: DongleSimulator, conn: DongleConnection
) -> None:
    sim.faults.add(FaultKind.BAD_CRC)
    assert values(await conn.read(INVERTER, IR, 0, 60)) == ir(0)
    assert conn.stats.crc_failures == 1
    assert conn.stats.retries == 1


async def test_truncated_answer_then_retry_succeeds(
    sim: DongleSimulator, conn: DongleConnection
) -> None:
    sim.faults.add(FaultKind.TRUNCATE)
    assert values(await conn.read(INVERTER, IR, 0, 60)) == ir(0)
    assert conn.stats.retries == 1
    assert conn.stats.responses == 1


async def test_spliced_answer_completes_at_once(
    sim: DongleSimulator, conn: DongleConnection
) -> None:
    sim.faults.add(FaultKind.SPLICE)
    assert values(await conn.read(INVERTER, IR, 0, 60)) == ir(0)
    assert conn.stats.retries == 0  # the whole frame after the cut-off one is the answer
    assert conn.stats.crc_failures + conn.stats.malformed == 1


async def test_zero_and_garbage_pages_are_delivered_as_is(
    sim: DongleSimulator, conn: DongleConnection
) -> None:
    # Page gates belong to a later layer: the connection hands over what came.
    sim.faults.add(FaultKind.ZERO_PAGE)
    assert values(await conn.read(INVERTER, IR, 0, 60)) == (0,) * 60
    sim.faults.add(FaultKind.GARBAGE_PAGE)
    assert values(await conn.read(INVERTER, IR, 0, 60)) == pattern_a_page(ir(0))
    assert conn.stats.retries == 0


async def test_garbage_before_the_answer(sim: DongleSimulator, conn: DongleConnection) -> None:
    sim.faults.add(FaultKind.GARBAGE)
    assert values(await conn.read(INVERTER, IR, 0, 60)) == ir(0)
    assert conn.stats.retries == 0


async def test_disconnect_reconnects_and_retries(
    sim: DongleSimulator, conn: DongleConnection, recorder: Recorder
) -> None:
    sim.faults.add(FaultKind.DISCONNECT)
    mark = sim.mark()
    assert values(await conn.read(INVERTER, IR, 0, 60)) == ir(0)
    assert conn.stats.reconnects == 1
    assert conn.stats.disconnects == 1
    assert len([e for e in sim.events if e.kind == "connect" and e.seq >= mark]) == 1
    assert len(sim.requests_seen(mark)) == 2
    assert recorder.states == [True, False, True]


async def test_refused_reconnect_backs_off_within_backoff_max(
    sim: DongleSimulator, conn: DongleConnection
) -> None:
    refuse_for = 0.6
    sim.faults.add(FaultKind.REFUSE, seconds=refuse_for)
    mark = sim.mark()
    assert values(await conn.read(INVERTER, IR, 0, 60)) == ir(0)  # still answered
    fault = await sim.wait_for(lambda e: e.kind == "fault", after=mark)
    sim.disconnect_all()
    # A request made during the outage is served once the link is back.
    assert values(await conn.read(INVERTER, HR, 0, 60)) == hr(0)
    connect = await sim.wait_for(lambda e: e.kind == "connect", after=mark)
    assert conn.stats.reconnects == 1
    assert conn.stats.connect_failures >= 3
    delays = conn.last_delays
    assert len(delays) == conn.stats.connect_failures + 1
    assert all(0 <= d <= conn.settings.backoff_max for d in delays)
    assert max(delays) >= conn.settings.backoff_max * (1 - conn.settings.backoff_jitter)
    assert delays[0] < delays[3]  # it grows before it is capped
    # Reconnected no later than one capped back-off after the listener came back.
    reopened = fault.time + refuse_for
    assert connect.time - reopened <= conn.settings.backoff_max + 0.15


async def test_max_consecutive_timeouts_forces_a_reconnect(sim: DongleSimulator) -> None:
    async with DongleConnection(fast(sim.port, max_consecutive_timeouts=2, read_retries=2)) as conn:
        await conn.wait_connected(5)
        sim.faults.add(FaultKind.DROP, count=2)
        mark = sim.mark()
        assert values(await conn.read(INVERTER, IR, 0, 60)) == ir(0)
        assert conn.stats.timeouts == 2
        assert conn.stats.reconnects == 1
        connects = [e for e in sim.events if e.kind == "connect" and e.seq >= mark]
        assert len(connects) == 1
        # The third attempt went out on the new connection.
        [*_, last] = [e for e in sim.events if e.kind == "request" and e.seq >= mark]
        assert last.client == connects[0].client


async def test_unanswered_probes_of_absent_devices_keep_the_link(sim: DongleSimulator) -> None:
    # The meter scan asks eight addresses that may not exist; their silence is no dead link.
    async with DongleConnection(fast(sim.port, max_consecutive_timeouts=2)) as conn:
        await conn.wait_connected(5)
        sim.faults.add(FaultKind.DROP, count=4)
        for _ in range(4):
            with pytest.raises(RequestTimeout):
                await conn.read(INVERTER, IR, 0, 60, retries=0, probe=True)
        # Counted apart: Timeout_Error (the link's timeouts) does not read 8 after a meter scan.
        assert (conn.stats.timeouts, conn.stats.probe_timeouts) == (0, 4)
        assert values(await conn.read(INVERTER, IR, 0, 60)) == ir(0)
        assert conn.stats.reconnects == 0
        assert conn.stats.disconnects == 0


async def test_timeouts_on_every_attempt_raise_request_timeout_even_when_reconnecting(
    sim: DongleSimulator,
) -> None:
    async with DongleConnection(fast(sim.port, max_consecutive_timeouts=2)) as conn:
        await conn.wait_connected(5)
        sim.faults.add(FaultKind.DROP, count=2)
        mark = sim.mark()
        with pytest.raises(RequestTimeout):  # not ConnectionLost: every attempt timed out
            await conn.read(INVERTER, IR, 0, 60)
        # The second consecutive timeout also forced a new connection.
        await sim.wait_for(lambda e: e.kind == "connect", after=mark)
        await conn.wait_connected(5)
        assert conn.stats.reconnects == 1
        assert values(await conn.read(INVERTER, IR, 0, 60)) == ir(0)


# --- ordering and cancellation ---------------------------------------------------------------


async def test_writes_go_ahead_of_queued_polls(
    sim: DongleSimulator, conn: DongleConnection
) -> None:
    sim.faults.add(FaultKind.DELAY, seconds=0.2)
    mark = sim.mark()
    first = asyncio.create_task(conn.read(INVERTER, IR, 0, 60, timeout=2.0))
    await sim.wait_for(is_request, after=mark)
    polls = [asyncio.create_task(conn.read(INVERTER, HR, base, 60)) for base in (0, 60, 120)]
    command = asyncio.create_task(conn.read(INVERTER, IR, 180, 60, priority=Priority.COMMAND))
    write = asyncio.create_task(conn.write(INVERTER, 20, 1))
    await asyncio.gather(first, *polls, command, write)
    written = list(hr(0))
    written[20] = 1  # the write went out before the poll of its page
    assert [values(p.result()) for p in polls] == [tuple(written), hr(60), hr(120)]
    assert values(command.result()) == ir(180)
    assert write.result().value == 1
    s = CLIENT_SERIAL
    assert sim.requests_seen(mark) == [
        ReadRequest(INVERTER, IR, 0, 60, s),
        WriteRequest(INVERTER, 20, 1, s),
        ReadRequest(INVERTER, IR, 180, 60, s),
        ReadRequest(INVERTER, HR, 0, 60, s),
        ReadRequest(INVERTER, HR, 60, 60, s),
        ReadRequest(INVERTER, HR, 120, 60, s),
    ]


async def test_cancelled_in_flight_request_leaves_the_queue_in_step(
    sim: DongleSimulator, conn: DongleConnection
) -> None:
    sim.faults.add(FaultKind.DELAY, count=2, seconds=0.2)
    mark = sim.mark()
    cancelled = asyncio.create_task(conn.read(INVERTER, IR, 0, 60, timeout=2.0))
    await sim.wait_for(is_request, after=mark)
    cancelled.cancel()
    # Same shape as the cancelled one: it must get its own answer, not the cancelled one's.
    same = asyncio.create_task(conn.read(INVERTER, IR, 0, 60, timeout=2.0))
    first_answer = await sim.wait_for(lambda e: e.kind == "response", after=mark)
    sim.store.devices[INVERTER].set(int(IR), 5, 4242)  # before the second answer is made
    resp = await same
    assert values(resp)[5] == 4242
    assert isinstance(first_answer.frame, ReadResponse)
    assert first_answer.frame.values[5] == ir_value(5)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    # And a different shape afterwards gets its own answer too.
    assert values(await conn.read(INVERTER, HR, 60, 60)) == hr(60)
    assert conn.stats.unsolicited == 0
    assert len(sim.requests_seen(mark)) == 3


async def test_cancelled_queued_request_is_never_sent(
    sim: DongleSimulator, conn: DongleConnection
) -> None:
    sim.faults.add(FaultKind.DELAY, seconds=0.2)
    mark = sim.mark()
    first = asyncio.create_task(conn.read(INVERTER, IR, 0, 60, timeout=2.0))
    await sim.wait_for(is_request, after=mark)
    queued = asyncio.create_task(conn.read(INVERTER, HR, 0, 60, timeout=2.0))
    after = asyncio.create_task(conn.read(INVERTER, HR, 60, 60, timeout=2.0))
    await asyncio.sleep(0)  # both enter the queue (ordering only, not timing)
    assert conn.queued == 2
    queued.cancel()
    assert values(await first) == ir(0)
    assert values(await after) == hr(60)
    with pytest.raises(asyncio.CancelledError):
        await queued
    s = CLIENT_SERIAL
    assert sim.requests_seen(mark) == [
        ReadRequest(INVERTER, IR, 0, 60, s),
        ReadRequest(INVERTER, HR, 60, 60, s),
    ]


async def test_pacing_spaces_frames(sim: DongleSimulator) -> None:
    pacing = 0.12
    async with DongleConnection(fast(sim.port, pacing=pacing)) as conn:
        await conn.wait_connected(5)
        mark = sim.mark()
        reads = [conn.read(INVERTER, IR, 0, 60), conn.read(INVERTER, HR, 0, 60)]
        reads += [conn.read(INVERTER, HR, 60, 60), conn.read(INVERTER, IR, 180, 60)]
        await asyncio.gather(*reads)
        times = [e.time for e in sim.events if e.kind == "request" and e.seq >= mark]
        assert len(times) == 4 == conn.stats.frames_sent
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(g >= pacing - 0.015 for g in gaps), gaps


# --- close and connection state --------------------------------------------------------------


async def test_close_is_bounded_fails_pending_and_leaves_no_tasks(sim: DongleSimulator) -> None:
    conn = DongleConnection(fast(sim.port, read_timeout=5.0, close_timeout=0.5))
    await conn.start()
    await conn.wait_connected(5)
    sim.faults.add(FaultKind.DROP)
    mark = sim.mark()
    in_flight = asyncio.create_task(conn.read(INVERTER, IR, 0, 60, timeout=2.0))
    await sim.wait_for(is_request, after=mark)
    queued = asyncio.create_task(conn.read(INVERTER, HR, 0, 60, timeout=2.0))
    await asyncio.sleep(0)
    assert dongle_tasks()
    started = time.monotonic()
    await conn.close()
    assert time.monotonic() - started < conn.settings.close_timeout + 1.0
    for task in (in_flight, queued):
        with pytest.raises(ConnectionClosed):
            await task
    assert dongle_tasks() == []
    assert not conn.connected
    with pytest.raises(ConnectionClosed):
        await conn.read(INVERTER, IR, 0, 60)
    with pytest.raises(ConnectionClosed):
        await conn.start()
    await sim.wait_for(lambda e: e.kind == "disconnect", after=mark)


async def test_close_while_reconnecting_is_bounded(recorder: Recorder) -> None:
    sim = DongleSimulator(make_store())
    await sim.start()
    conn = DongleConnection(
        fast(sim.port, backoff_initial=0.5, backoff_max=5.0), on_state=recorder.on_state
    )
    await conn.start()
    await conn.wait_connected(5)
    await sim.close()  # nothing listens any more: the connection waits, then retries
    await recorder.wait_state(False)
    started = time.monotonic()
    await conn.close()
    assert time.monotonic() - started < 1.0
    assert dongle_tasks() == []


async def test_nothing_listening(sim: DongleSimulator) -> None:
    port = sim.port
    await sim.close()
    async with DongleConnection(fast(port, backoff_initial=0.02, backoff_max=0.05)) as conn:
        with pytest.raises(NotConnected):
            await conn.wait_connected(0.3)
        with pytest.raises(NotConnected):
            await conn.read(INVERTER, IR, 0, 60, deadline=0.2)
        assert conn.stats.connect_failures >= 2
        assert all(d <= 0.05 for d in conn.last_delays)
    assert dongle_tasks() == []


async def test_request_deadline(sim: DongleSimulator, conn: DongleConnection) -> None:
    sim.faults.add(FaultKind.DROP, count=5)
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        await conn.read(INVERTER, IR, 0, 60, deadline=0.15, retries=5)
    assert time.monotonic() - started < 0.5


# --- back-off --------------------------------------------------------------------------------


def test_backoff_doubles_and_is_capped() -> None:
    b = Backoff(initial=1.0, maximum=10.0, factor=2.0, jitter=0.0)
    assert [b.next_delay() for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert b.failures == 7
    assert b.bound() == 10.0


def test_backoff_jitter_stays_within_bounds() -> None:
    b = Backoff(initial=0.5, maximum=8.0, jitter=0.2, _rng=random.Random(1))
    seen: list[float] = []
    for n in range(40):
        base = min(8.0, 0.5 * 2**n)
        d = b.next_delay()
        assert base * 0.8 - 1e-9 <= d <= min(8.0, base * 1.2) + 1e-9
        seen.append(d)
    assert max(seen) <= b.bound()
    assert len({round(d, 6) for d in seen[10:]}) > 5  # capped delays still spread out


def test_backoff_reset_and_huge_failure_counts() -> None:
    b = Backoff(initial=0.02, maximum=0.2, jitter=0.0)
    for _ in range(5):
        b.next_delay()
    b.reset()
    assert b.failures == 0
    assert b.next_delay() == 0.02
    b.failures = 10_000
    assert b.next_delay() == 0.2


def test_backoff_full_jitter_never_negative() -> None:
    b = Backoff(initial=1.0, maximum=2.0, jitter=1.0, _rng=random.Random(3))
    delays = [b.next_delay() for _ in range(200)]
    assert all(0.0 <= d <= 2.0 for d in delays)
