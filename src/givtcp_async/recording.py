"""Recording a dongle's conversation as a capture file, every serial replaced by a stand-in.

:class:`RecordingProxy` relays a client's TCP connection to the dongle on 127.0.0.1 and keeps
every chunk each way with its arrival time (bounded). :func:`recorded_frames` splits the chunks
into frames; :class:`Anonymiser` learns the serials they carry (the dongle's in the frame
header, the device serial of every response, and the serial registers of the register map) and
replaces each, wherever its bytes appear, by one consistent stand-in of the same shape,
recomputing the CRC of every frame that had a valid one; :func:`capture_lines` writes the
``.jsonl`` lines of ``tests/fixtures/captures`` (``ts``, ``dir``, ``count``, ``hex``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from givtcp_async.protocol.frames import (
    DUMMY_ADAPTER_SERIAL,
    TRANSPARENT_PREFIX_LEN,
    ErrorResponse,
    Frame,
    FunctionCode,
    Heartbeat,
    LanConfigBroadcast,
    ReadResponse,
    WriteResponse,
    crc16,
)
from givtcp_async.protocol.stream import FrameStream, RejectedFrame
from givtcp_async.registers.catalog import ALL_FIELDS
from givtcp_async.registers.schema import Bank, Enc

__all__ = [
    "Anonymiser",
    "Chunk",
    "RecordedFrame",
    "RecordingProxy",
    "capture_lines",
    "recorded_frames",
]

CHUNK: Final = 4096
MAX_RECORDED_BYTES: Final = 16 * 1024 * 1024  # a full read is tens of kilobytes
SERIAL_LEN: Final = 10
# The shape of a GivEnergy serial (SA2114G047, WF2125G316, BG2134G007): any run of bytes that
# has it is treated as a serial, whatever register or field it sits in.
SERIAL_SHAPE: Final = re.compile(rb"[A-Z]{2}[0-9]{4}[A-Z][0-9]{3}")
_ANY_SERIAL: Final = re.compile(rb"[A-Z0-9]{10}")
_BANK_OF: Final = {FunctionCode.READ_HOLDING: Bank.HOLDING, FunctionCode.READ_INPUT: Bank.INPUT}
# (bank, registers) holding a serial as ASCII: the register map's serial fields, and HR8-12
# ("first battery serial", not in the map: unreliable, the inverter's byte-swapped on an AIO).
SERIAL_REGISTERS: Final[tuple[tuple[Bank, tuple[int, ...]], ...]] = (
    *sorted(
        {(f.bank, f.registers) for f in ALL_FIELDS if f.enc is Enc.ASCII and "Serial" in f.name}
    ),
    (Bank.HOLDING, (8, 9, 10, 11, 12)),
)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes read from one side: ``rx`` from the dongle, ``tx`` from the client."""

    ts: datetime
    direction: str
    data: bytes


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    """One whole frame as it crossed the wire (``frame`` None: it did not decode)."""

    ts: datetime
    direction: str
    raw: bytes
    frame: Frame | None


class RecordingProxy:
    """Relays connections from 127.0.0.1:``port`` to the dongle, keeping what crosses.

    :meth:`start` (or entering it as an async context manager) connects to the dongle, and the
    first client is relayed over that connection.
    :attr:`chunks` holds up to ``max_bytes`` of traffic (:attr:`truncated` tells when more
    crossed than was kept).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float = 10.0,
        max_bytes: int = MAX_RECORDED_BYTES,
    ) -> None:
        self.host = host
        self.upstream_port = port
        self.connect_timeout = connect_timeout
        self.max_bytes = max_bytes
        self.chunks: list[Chunk] = []
        self.truncated = False
        self._kept = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    @property
    def port(self) -> int:
        """The local port clients connect to."""
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Connect to the dongle and listen on 127.0.0.1 (raises OSError or TimeoutError)."""
        self._ready = await self._upstream()
        try:
            self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        except OSError:
            self._ready[1].transport.abort()
            raise

    async def __aenter__(self) -> RecordingProxy:
        await self.start()
        return self

    async def _upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(self.connect_timeout):
            return await asyncio.open_connection(self.host, self.upstream_port)

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening and end every relayed connection."""
        if self._server is not None:
            self._server.close()
        if self._ready is not None:
            self._ready[1].transport.abort()
            self._ready = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _record(self, direction: str, data: bytes) -> None:
        if self._kept + len(data) > self.max_bytes:
            self.truncated = True
            return
        self._kept += len(data)
        self.chunks.append(Chunk(datetime.now(UTC), direction, data))

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            ready, self._ready = self._ready, None
            try:
                up_reader, up_writer = ready or await self._upstream()
            except (OSError, TimeoutError):
                return  # the client sees its connection closed, as if the dongle refused
            self._writers.add(up_writer)
            try:
                pumps = [
                    asyncio.ensure_future(self._pump(up_reader, writer, "rx")),
                    asyncio.ensure_future(self._pump(reader, up_writer, "tx")),
                ]
                try:
                    await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for pump in pumps:
                        pump.cancel()
                    await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                self._writers.discard(up_writer)
                up_writer.transport.abort()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
            self._tasks.discard(task)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, direction: str
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(CHUNK):
                self._record(direction, data)
                sink.write(data)
                await sink.drain()


def recorded_frames(chunks: Iterable[Chunk]) -> list[RecordedFrame]:
    """The whole frames of each direction, in arrival order, each stamped with the time of the
    chunk that completed it (bytes that are no frame at all are left out)."""
    streams = {"rx": FrameStream(), "tx": FrameStream()}
    out: list[RecordedFrame] = []
    for chunk in chunks:
        for item in streams[chunk.direction].feed_detailed(chunk.data):
            if isinstance(item, RejectedFrame):
                out.append(RecordedFrame(chunk.ts, chunk.direction, item.raw, None))
            else:
                out.append(RecordedFrame(chunk.ts, chunk.direction, item.encode(), item))
    return out


def _swapped(serial: bytes) -> bytes:
    """The serial with the two bytes of each register swapped."""
    return b"".join(serial[i : i + 2][::-1] for i in range(0, len(serial), 2))


class Anonymiser:
    """Replaces every serial it has learnt by a stand-in: the same first two letters (they name
    the kind of device), then ``0000``, a letter and a number, one per serial."""

    def __init__(self) -> None:
        self.stand_ins: dict[bytes, bytes] = {}  # serial (and its byte-swapped form) -> stand-in
        self.serials = 0

    def learn(self, recorded: Iterable[RecordedFrame]) -> None:
        """Learn the serials of these frames (call with every frame before :meth:`apply`)."""
        for item in recorded:
            for serial in self._serials_in(item):
                self._add(serial)

    def _serials_in(self, item: RecordedFrame) -> Iterator[bytes]:
        frame = item.frame
        if isinstance(frame, Heartbeat | LanConfigBroadcast) or (
            frame is not None and item.direction == "rx"
        ):
            yield frame.adapter_serial
        if isinstance(frame, ReadResponse | WriteResponse | ErrorResponse):
            yield frame.serial
        if isinstance(frame, ReadResponse) and frame.function in _BANK_OF:
            bank = _BANK_OF[frame.function]
            end = frame.base_register + len(frame.values)
            for field_bank, registers in SERIAL_REGISTERS:
                if (
                    field_bank is bank
                    and frame.base_register <= registers[0] <= registers[-1] < end
                ):
                    words = (frame.values[r - frame.base_register] for r in registers)
                    yield b"".join(w.to_bytes(2, "big") for w in words)
        yield from (m.group() for m in SERIAL_SHAPE.finditer(item.raw))

    def _add(self, serial: bytes) -> None:
        serial = serial.replace(b"\x00", b"")
        if not _ANY_SERIAL.fullmatch(serial) or serial == DUMMY_ADAPTER_SERIAL:
            return  # blank, not a serial, or the dummy every library sends
        if serial in self.stand_ins or serial in self.stand_ins.values():
            return
        self.serials += 1
        n = self.serials
        prefix = serial[:2] if serial[:2].isalpha() else b"XX"
        stand_in = prefix + b"0000" + b"TUVWXYZ"[n // 1000 : n // 1000 + 1] + b"%03d" % (n % 1000)
        self.stand_ins[serial] = stand_in
        self.stand_ins.setdefault(_swapped(serial), _swapped(stand_in))

    def apply(self, raw: bytes) -> bytes:
        """``raw`` with every learnt serial replaced; a transparent frame whose CRC was valid
        gets the CRC of its new bytes."""
        out = raw
        for serial, stand_in in self.stand_ins.items():
            out = out.replace(serial, stand_in)
        if out == raw or len(out) < TRANSPARENT_PREFIX_LEN + 2 or out[7] != 0x02:
            return out
        sub = raw[TRANSPARENT_PREFIX_LEN:]
        if crc16(sub[:-2]) != int.from_bytes(sub[-2:], "big"):
            return out  # it arrived broken: it stays broken
        body = out[TRANSPARENT_PREFIX_LEN:-2]
        return out[:-2] + crc16(body).to_bytes(2, "big")

    def leftovers(self, raw: bytes) -> list[bytes]:
        """Learnt serials still present in ``raw`` (none after :meth:`apply`)."""
        return [s for s in self.stand_ins if s in raw and s not in self.stand_ins.values()]


def capture_lines(recorded: Iterable[RecordedFrame], anonymiser: Anonymiser) -> Iterator[str]:
    """The capture's ``.jsonl`` lines: one per frame, identical frames in a row counted once."""
    last: tuple[str, bytes] | None = None
    first_ts: datetime | None = None
    count = 0
    for item in recorded:
        raw = anonymiser.apply(item.raw)
        if last == (item.direction, raw):
            count += 1
            continue
        if last is not None and first_ts is not None:
            yield _line(first_ts, last[0], count, last[1])
        last, first_ts, count = (item.direction, raw), item.ts, 1
    if last is not None and first_ts is not None:
        yield _line(first_ts, last[0], count, last[1])


def _line(ts: datetime, direction: str, count: int, raw: bytes) -> str:
    return json.dumps({"ts": ts.isoformat(), "dir": direction, "count": count, "hex": raw.hex()})
