"""The simulated dongle: register store semantics, fan-out, heartbeats, faults, command line."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from givtcp_async.errors import CrcMismatch
from givtcp_async.protocol.capture import load_capture
from givtcp_async.protocol.frames import (
    ErrorResponse,
    FunctionCode,
    Heartbeat,
    ReadRequest,
    ReadResponse,
    WriteRequest,
    WriteResponse,
    decode_frame,
)
from givtcp_async.protocol.stream import FrameStream, RejectedFrame
from givtcp_async.quality.patterns import is_pattern_a, pattern_a_page
from givtcp_async.simulator.faults import FaultInjector, FaultKind, parse_fault_option
from givtcp_async.simulator.server import DongleSimulator, SimEvent, SimulatorConfig
from givtcp_async.simulator.store import RegisterStore
from tests.conftest import CAPTURES, all_captures
from tests.sim_support import (
    BATTERY,
    BATTERY_SERIAL,
    HR,
    INVERTER,
    INVERTER_SERIAL,
    IR,
    RawClient,
    cli_command,
    expected_read,
    hr_value,
    ir_value,
    make_store,
    raw_read_request,
    simulate_capture,
)

GEN1 = CAPTURES / "hybrid_2_bat_a" / "hybrid_gen1_arm449_0x11_poll_10min.jsonl"
AIO = CAPTURES / "aio_a" / "aio_arm612_5min.jsonl"
ADAPTER = SimulatorConfig().adapter_serial


# --- the register store ----------------------------------------------------------------------


def test_store_reads_present_pages() -> None:
    store = make_store()
    resp = store.read(INVERTER, HR, 0, 60)
    assert resp == ReadResponse(
        INVERTER, HR, INVERTER_SERIAL, 0, tuple(hr_value(r) for r in range(60))
    )
    # Short and unaligned reads inside present pages, also across two present pages.
    short = store.read(INVERTER, HR, 58, 5)
    assert isinstance(short, ReadResponse)
    assert short.values == tuple(hr_value(r) for r in range(58, 63))
    battery = store.read(BATTERY, IR, 60, 60)
    assert isinstance(battery, ReadResponse)
    assert battery.serial == BATTERY_SERIAL


def test_store_absent_page_is_an_error_frame() -> None:
    store = make_store()
    assert store.read(INVERTER, HR, 180, 60) == ErrorResponse(
        INVERTER, int(HR), INVERTER_SERIAL, 180, 60
    )
    # A read that reaches from a present page into an absent one is refused too.
    assert isinstance(store.read(INVERTER, IR, 30, 60), ErrorResponse)
    # The meter-product function has no pages at all here.
    assert isinstance(store.read(INVERTER, FunctionCode.READ_METER_PRODUCT, 60, 60), ErrorResponse)


@pytest.mark.parametrize("count", [0, 61, 120])
def test_store_count_out_of_range_is_an_error_frame(count: int) -> None:
    store = make_store()
    assert store.read(BATTERY, IR, 60, count) == ErrorResponse(
        BATTERY, int(IR), BATTERY_SERIAL, 60, count
    )


def test_store_absent_device_is_silent() -> None:
    store = make_store()
    assert store.read(0x40, IR, 0, 60) is None
    assert store.write(0x40, 20, 1) is None


def test_store_missing_registers_in_a_present_page_read_zero() -> None:
    store = RegisterStore()
    dev = store.add_device(INVERTER, INVERTER_SERIAL)
    dev.add_page(HR, 60, [5, 6])  # page 60 present, only HR60/61 known
    resp = store.read(INVERTER, HR, 60, 60)
    assert isinstance(resp, ReadResponse)
    assert resp.values == (5, 6) + (0,) * 58


def test_store_alias_shows_the_same_register_file() -> None:
    store = make_store()
    direct = store.read(INVERTER, IR, 0, 60)
    facade = store.read(0x31, IR, 0, 60)
    assert isinstance(direct, ReadResponse)
    assert isinstance(facade, ReadResponse)
    assert facade.device_address == 0x31
    assert facade.values == direct.values
    echo = store.write(0x31, 20, 4)
    assert isinstance(echo, WriteResponse)
    assert store.holding(20) == 4


def test_store_writes_echo_and_change_the_bank() -> None:
    store = make_store()
    assert store.holding(20) == hr_value(20)
    echo = store.write(INVERTER, 20, 1)
    assert echo == WriteResponse(INVERTER, INVERTER_SERIAL, 20, 1)
    assert store.holding(20) == 1
    resp = store.read(INVERTER, HR, 0, 60)
    assert isinstance(resp, ReadResponse)
    assert resp.values[20] == 1
    # Input registers are untouched by a holding write.
    assert store.input(20) == ir_value(20)


def test_store_write_to_absent_page_is_an_error_frame_and_changes_nothing() -> None:
    store = make_store()
    before = store.snapshot()
    assert store.write(INVERTER, 300, 1) == ErrorResponse(
        INVERTER, int(FunctionCode.WRITE_SINGLE), INVERTER_SERIAL, 300, 1
    )
    assert store.snapshot() == before


def test_store_write_hooks_change_or_refuse_writes() -> None:
    store = make_store()
    seen: list[tuple[int, int, int]] = []

    def clamp(device: int, register: int, value: int) -> int | None:
        seen.append((device, register, value))
        return min(value, 100)

    def refuse_hr50(device: int, register: int, value: int) -> int | None:
        seen.append((device, register, value))
        return None if register == 50 else value

    store.write_hooks += [clamp, refuse_hr50]
    echo = store.write(0x31, 21, 250)  # via the facade: hooks see the real device
    assert echo == WriteResponse(0x31, INVERTER_SERIAL, 21, 100)
    assert store.holding(21) == 100
    assert seen == [(INVERTER, 21, 250), (INVERTER, 21, 100)]
    refused = store.write(INVERTER, 50, 3)
    assert isinstance(refused, ErrorResponse)
    assert store.holding(50) == hr_value(50)


def test_store_seeded_from_every_capture_holds_the_last_valid_values() -> None:
    for path in all_captures():
        expected: dict[tuple[int, int, int], int] = {}
        pages: list[tuple[int, int, int, int]] = []
        for rec in load_capture(path):
            if rec.direction != "rx":
                continue
            try:
                frame = decode_frame(rec.data)
            except CrcMismatch:
                continue
            if isinstance(frame, ReadResponse):
                pages.append(frame.shape)
                for i, v in enumerate(frame.values):
                    expected[
                        (frame.device_address, int(frame.function), frame.base_register + i)
                    ] = v
        store = RegisterStore.from_capture(load_capture(path))
        assert store.snapshot() == expected, path.name
        for device, function, base, count in pages:
            resp = store.read(device, FunctionCode(function), base, count)
            assert isinstance(resp, ReadResponse), (path.name, device, function, base)
            assert resp.values == tuple(
                expected[(device, function, base + i)] for i in range(count)
            )


def test_store_seeded_from_capture_keeps_refused_pages_absent() -> None:
    store = RegisterStore.from_capture(load_capture(AIO))
    refused = store.read(0x11, HR, 1100, 60)  # the AIO answered this with an error frame
    assert refused == ErrorResponse(0x11, int(HR), b"CH2414G000", 1100, 60)


# --- over TCP --------------------------------------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[DongleSimulator]:
    async with DongleSimulator(make_store(), SimulatorConfig(heartbeat_interval=60)) as s:
        yield s


async def connected(sim: DongleSimulator) -> tuple[RawClient, int]:
    """A raw client and its simulator client id."""
    mark = sim.mark()
    client = await RawClient.connect(sim.port)
    ev = await sim.wait_for(lambda e: e.kind == "connect", after=mark)
    return client, ev.client


REQ_IR0 = ReadRequest(INVERTER, IR, 0, 60)
REQ_HR0 = ReadRequest(INVERTER, HR, 0, 60)


async def test_read_and_write_over_tcp(sim: DongleSimulator) -> None:
    client, _ = await connected(sim)
    mark = sim.mark()
    await client.send(REQ_IR0)
    assert await client.frame() == expected_read(INVERTER, IR, 0, 60, ADAPTER)
    await client.send(WriteRequest(INVERTER, 20, 1))
    assert await client.frame() == WriteResponse(INVERTER, INVERTER_SERIAL, 20, 1, ADAPTER)
    assert sim.store.holding(20) == 1
    assert sim.requests_seen(mark) == [REQ_IR0, WriteRequest(INVERTER, 20, 1)]
    await sim.wait_for(lambda e: e.kind == "write", after=mark)
    await client.close()


async def test_count_above_60_and_absent_page_answer_error_frames(sim: DongleSimulator) -> None:
    client, _ = await connected(sim)
    await client.send(raw_read_request(BATTERY, 4, 0, 120))
    assert await client.frame() == ErrorResponse(BATTERY, 4, BATTERY_SERIAL, 0, 120, ADAPTER)
    await client.send(ReadRequest(INVERTER, HR, 240, 60))
    assert await client.frame() == ErrorResponse(INVERTER, 3, INVERTER_SERIAL, 240, 60, ADAPTER)
    await client.close()


async def test_absent_device_stays_silent(sim: DongleSimulator) -> None:
    client, _ = await connected(sim)
    await client.send(ReadRequest(0x40, IR, 60, 60))
    await client.send(REQ_HR0)
    # Requests are answered in order, so the first frame back shows 0x40 sent nothing.
    assert await client.frame() == expected_read(INVERTER, HR, 0, 60, ADAPTER)
    assert client.stream.stats.garbage_bytes == 0
    await client.close()


async def test_every_response_fans_out_to_every_client(sim: DongleSimulator) -> None:
    a, _ = await connected(sim)
    b, _ = await connected(sim)
    assert sim.client_count == 2
    await a.send(REQ_IR0)
    want = expected_read(INVERTER, IR, 0, 60, ADAPTER)
    assert await a.frame() == want
    assert await b.frame() == want  # b never asked
    await b.send(WriteRequest(INVERTER, 21, 9))
    echo = WriteResponse(INVERTER, INVERTER_SERIAL, 21, 9, ADAPTER)
    assert await b.frame() == echo
    assert await a.frame() == echo
    await b.send(ReadRequest(INVERTER, HR, 180, 60))  # errors fan out as well
    err = ErrorResponse(INVERTER, 3, INVERTER_SERIAL, 180, 60, ADAPTER)
    assert await a.frame() == err
    assert await b.frame() == err
    assert sim.stats.responses == 3  # one answer each, sent to both
    await a.close()
    await b.close()


async def test_broadcast_reaches_every_client(sim: DongleSimulator) -> None:
    a, _ = await connected(sim)
    b, _ = await connected(sim)
    frame = expected_read(0x33, IR, 60, 60, ADAPTER)
    sim.broadcast(frame)
    assert await a.frame() == frame
    assert await b.frame() == frame
    await a.close()
    await b.close()


async def test_heartbeats_every_interval_and_silent_client_closed_after_three() -> None:
    config = SimulatorConfig(heartbeat_interval=0.2, heartbeat_misses=3, adapter_type=2)
    async with DongleSimulator(make_store(), config) as sim:
        silent, silent_id = await connected(sim)
        polite, polite_id = await connected(sim)

        async def answer_heartbeats() -> None:
            while True:
                frame = await polite.frame(timeout=10)
                if isinstance(frame, Heartbeat):
                    await polite.send(Heartbeat(b"AB1234G567", frame.adapter_type))

        responder = asyncio.create_task(answer_heartbeats())
        try:
            timeout_ev = await sim.wait_for(
                lambda e: e.kind == "heartbeat_timeout" and e.client == silent_id, timeout=5
            )
            assert await silent.closed_by_peer()
            sent_to_silent = [
                e for e in sim.events if e.kind == "heartbeat_sent" and e.client == silent_id
            ]
            assert len(sent_to_silent) == 3
            # Every heartbeat_sent is one interval after the previous one (or the connect).
            times = [e.time for e in sent_to_silent] + [timeout_ev.time]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert all(0.18 <= g <= 1.0 for g in gaps), gaps
            for e in sent_to_silent:
                assert isinstance(e.frame, Heartbeat)
                assert e.frame.adapter_type == 2

            # The client that answers survives well past three intervals.
            def fifth_to_polite(e: SimEvent) -> bool:
                return (
                    e.kind == "heartbeat_reply"
                    and e.client == polite_id
                    and sum(
                        1
                        for x in sim.events
                        if x.kind == "heartbeat_reply" and x.client == polite_id
                    )
                    >= 5
                )

            await sim.wait_for(fifth_to_polite, timeout=5)
            assert not [
                e for e in sim.events if e.kind == "heartbeat_timeout" and e.client == polite_id
            ]
            assert sim.client_count == 1
            assert sim.stats.clients_closed_for_missed_heartbeats == 1
        finally:
            responder.cancel()
            await asyncio.gather(responder, return_exceptions=True)
            await polite.close()
            await silent.close()


# --- faults on the wire ----------------------------------------------------------------------

GOOD_IR0 = expected_read(INVERTER, IR, 0, 60, ADAPTER)
GOOD_HR0 = expected_read(INVERTER, HR, 0, 60, ADAPTER)


async def test_fault_delay(sim: DongleSimulator) -> None:
    client, _ = await connected(sim)
    sim.faults.add(FaultKind.DELAY, seconds=0.3)
    mark = sim.mark()
    await client.send(REQ_IR0)
    assert await client.frame() == GOOD_IR0
    req = await sim.wait_for(lambda e: e.kind == "request", after=mark)
    resp = await sim.wait_for(lambda e: e.kind == "response", after=mark)
    assert resp.time - req.time >= 0.3
    assert sim.faults.injected == {FaultKind.DELAY: 1}
    await client.close()


async def test_fault_drop(sim: DongleSimulator) -> None:
    client, _ = await connected(sim)
    sim.faults.add(FaultKind.DROP)
    mark = sim.mark()
    await client.send(REQ_IR0)
    await client.send(REQ_HR0)
    assert await client.frame() == GOOD_HR0  # nothing at all came back for the first
    assert client.stream.stats.garbage_bytes == 0
    fault = await sim.wait_for(lambda e: e.kind == "fault", after=mark)
    assert fault.detail == "drop"
    assert fault.frame == REQ_IR0
    await client.close()


async def test_fault_bad_crc(sim: DongleSimulator) -> None:
    client, _ = await connected(sim)
    sim.faults.add(FaultKind.BAD_CRC)
    await client.send(REQ_IR0)
    good = GOOD_IR0.encode()
    raw = await client.exactly(len(good))
    assert raw[:-2] == good[:-2]
    assert raw[-2:] != good[-2:]
    [item] = FrameStream().feed_detailed(raw)
    assert isinstance(item, RejectedFrame)
    assert isinstance(item.error, CrcMismatch)
    await client.close()


async def test_fault_truncate(sim: DongleSimulator) -> None:
    client, _ = await connected(sim)
    sim.faults.add(FaultKind.TRUNCATE)
    await client.send(REQ_IR0)
    await client.send(REQ_HR0)
    good, second = GOOD_IR0.encode(), GOOD_HR0.encode()
    cut = len(good) // 2
    raw = await client.exactly(cut + len(second))
    assert raw == good[:cut] + second
    assert FrameStream().feed(raw) == [GOOD_HR0]
    await client.close()


async def test_fault_splice(sim: DongleSimulator) -> None:
    client, _ = await connected(sim)
    sim.faults.add(FaultKind.SPLICE)
    await client.send(REQ_IR0)
    good = GOOD_IR0.encode()
    raw = await client.exactly(len(good) // 3 + len(good))
    assert raw == good[: len(good) // 3] + good
    assert FrameStream().feed(raw) == [GOOD_IR0]
    await client.close()


async def test_fault_zero_page(sim: DongleSimulator) -> None:
    client, _ = await connected(sim)
    sim.faults.add(FaultKind.ZERO_PAGE)
    await client.send(WriteRequest(INVERTER, 20, 1))  # writes are skipped by page faults
    assert isinstance(await client.frame(), WriteResponse)
    await client.send(REQ_IR0)
    frame = await client.frame()  # a valid frame: the CRC is right, the content is not
    assert isinstance(frame, ReadResponse)
    assert frame.shape == GOOD_IR0.shape
    assert frame.values == (0,) * 60
    assert sim.store.input(5) == ir_value(5)  # the store itself is untouched
    await client.close()


async def test_fault_garbage_page(sim: DongleSimulator) -> None:
    client, _ = await connected(sim)
    sim.faults.add(FaultKind.GARBAGE_PAGE)
    await client.send(REQ_IR0)
    frame = await client.frame()
    assert isinstance(frame, ReadResponse)
    assert frame.values == pattern_a_page(GOOD_IR0.values)
    assert frame.values != GOOD_IR0.values
    assert is_pattern_a(frame.values)
    await client.close()


async def test_fault_garbage(sim: DongleSimulator) -> None:
    client, _ = await connected(sim)
    sim.faults.add(FaultKind.GARBAGE)
    await client.send(REQ_IR0)
    good = GOOD_IR0.encode()
    raw = await client.exactly(17 + len(good))
    assert raw[17:] == good
    stream = FrameStream()
    assert stream.feed(raw) == [GOOD_IR0]
    assert stream.stats.garbage_bytes == 17
    await client.close()


async def test_fault_disconnect(sim: DongleSimulator) -> None:
    client, client_id = await connected(sim)
    sim.faults.add(FaultKind.DISCONNECT)
    mark = sim.mark()
    await client.send(REQ_IR0)
    assert await client.closed_by_peer()
    await sim.wait_for(lambda e: e.kind == "disconnect" and e.client == client_id, after=mark)
    assert sim.client_count == 0
    assert not [e for e in sim.events if e.kind == "response" and e.seq >= mark]
    await client.close()


async def test_fault_refuse_refuses_new_connections(sim: DongleSimulator) -> None:
    client, _ = await connected(sim)
    sim.faults.add(FaultKind.REFUSE, seconds=0.5)
    await client.send(REQ_IR0)
    # The asking client is still answered ...
    assert await client.frame() == GOOD_IR0
    # ... but nobody new can connect now.
    with pytest.raises(ConnectionRefusedError):
        await RawClient.connect(sim.port)
    await client.send(REQ_HR0)
    assert await client.frame() == GOOD_HR0  # existing connections keep working
    await client.close()


async def test_fault_matcher_and_count(sim: DongleSimulator) -> None:
    client, _ = await connected(sim)
    sim.faults.add(
        FaultKind.DROP,
        count=2,
        match=lambda r: isinstance(r, ReadRequest) and r.function is HR,
    )
    await client.send(REQ_IR0)
    assert await client.frame() == GOOD_IR0  # IR reads are not matched
    await client.send(REQ_HR0)
    await client.send(REQ_HR0)
    await client.send(REQ_HR0)
    assert await client.frame() == GOOD_HR0  # the third HR read gets through
    assert sim.faults.injected == {FaultKind.DROP: 2}
    assert sim.faults.queued == []
    await client.close()


def test_fault_probabilities_and_parsing() -> None:
    faults = FaultInjector()
    faults.set_probability("bad_crc", 1.0)
    assert faults.take(REQ_IR0) is not None
    faults.clear()
    assert faults.take(REQ_IR0) is None
    faults.set_probability(FaultKind.ZERO_PAGE, 1.0)
    assert faults.take(WriteRequest(INVERTER, 20, 1)) is None  # page faults need a read
    with pytest.raises(ValueError, match="within"):
        faults.set_probability("drop", 1.5)
    assert parse_fault_option("delay=0.25") == (FaultKind.DELAY, 0.25)
    for bad, reason in (
        ("delay", "expected KIND=PROBABILITY"),
        ("nonsense=0.1", "unknown fault 'nonsense'"),
        ("drop=2", "within 0..1"),
        ("drop=x", "could not convert"),
    ):
        with pytest.raises(ValueError, match=reason):
            parse_fault_option(bad)


async def test_close_drops_clients_and_stops_listening() -> None:
    sim = DongleSimulator(make_store())
    await sim.start()
    client = await RawClient.connect(sim.port)
    await sim.wait_for(lambda e: e.kind == "connect")
    await sim.close()
    assert await client.closed_by_peer()
    with pytest.raises(ConnectionRefusedError):
        await RawClient.connect(sim.port)
    await client.close()


# --- the command line ------------------------------------------------------------------------


async def test_cli_simulate_serves_a_capture_and_stops_on_sigterm() -> None:
    async with simulate_capture(GEN1) as port:
        client = await RawClient.connect(port)
        await client.send(REQ_IR0)
        frame = await client.frame(timeout=10)
        seeded = RegisterStore.from_capture(load_capture(GEN1)).read(INVERTER, IR, 0, 60)
        assert isinstance(frame, ReadResponse)
        assert isinstance(seeded, ReadResponse)
        assert frame.values == seeded.values
        await client.close()


@pytest.mark.parametrize("fault", ["nonsense=0.1", "drop=1.5", "delay"])
async def test_cli_simulate_bad_fault_exits_2(fault: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *cli_command(),
        "simulate",
        "--capture",
        str(GEN1),
        "--port",
        "0",
        "--fault",
        fault,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        stdout, stderr = await proc.communicate()
    assert proc.returncode == 2
    lines = stderr.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("givtcp-async: --fault")
    assert b"listening" not in stdout
