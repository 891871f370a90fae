"""Helpers for tests that talk to the simulated dongle over real TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import struct
import sys
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

from givtcp_async.protocol.frames import (
    MARKER,
    Frame,
    FunctionCode,
    ReadResponse,
    crc16,
)
from givtcp_async.protocol.stream import FrameStream
from givtcp_async.simulator.store import RegisterStore

INVERTER = 0x11
BATTERY = 0x32
INVERTER_SERIAL = b"SA1234G567"
BATTERY_SERIAL = b"BG1234G567"
HR = FunctionCode.READ_HOLDING
IR = FunctionCode.READ_INPUT


def hr_value(register: int) -> int:
    return (register * 7 + 1000) & 0xFFFF


def ir_value(register: int) -> int:
    return (register * 13 + 1) & 0xFFFF


def make_store() -> RegisterStore:
    """An inverter at 0x11 (facade 0x31) with HR 0-179 and IR 0-59, 180-239; a pack at 0x32."""
    store = RegisterStore()
    inv = store.add_device(INVERTER, INVERTER_SERIAL)
    for base in (0, 60, 120):
        inv.add_page(HR, base, [hr_value(r) for r in range(base, base + 60)])
    for base in (0, 180):
        inv.add_page(IR, base, [ir_value(r) for r in range(base, base + 60)])
    pack = store.add_device(BATTERY, BATTERY_SERIAL)
    pack.add_page(IR, 60, [ir_value(r) + 5 for r in range(60, 120)])
    store.aliases[0x31] = INVERTER
    return store


def expected_read(
    device: int, function: FunctionCode, base: int, count: int, adapter: bytes
) -> ReadResponse:
    """What the simulator sends for a read of ``make_store()`` data."""
    if device == BATTERY:
        values = tuple(ir_value(r) + 5 for r in range(base, base + count))
        serial = BATTERY_SERIAL
    else:
        fn = hr_value if function is HR else ir_value
        values = tuple(fn(r) for r in range(base, base + count))
        serial = INVERTER_SERIAL
    return ReadResponse(device, function, serial, base, values, adapter)


def raw_read_request(device: int, function: int, base: int, count: int) -> bytes:
    """A read request with any count (the codec only encodes 1..60)."""
    sub = struct.pack(">BBHH", device, function, base, count)
    sub += crc16(sub).to_bytes(2, "big")
    body = b"AB1234G567" + (8).to_bytes(8, "big") + sub
    return MARKER + struct.pack(">HBB", len(body) + 2, 1, 2) + body


class RawClient:
    """A bare TCP client: sends bytes, reads frames or exact bytes. No protocol logic."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.stream = FrameStream()
        self._frames: deque[Frame] = deque()

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes | Frame) -> None:
        self.writer.write(data if isinstance(data, bytes) else data.encode())
        await self.writer.drain()

    async def frame(self, timeout: float = 5.0) -> Frame:
        """The next whole, valid frame."""
        async with asyncio.timeout(timeout):
            while not self._frames:
                data = await self.reader.read(4096)
                if not data:
                    raise ConnectionError("closed by the simulator")
                self._frames.extend(self.stream.feed(data))
        return self._frames.popleft()

    async def exactly(self, n: int, timeout: float = 5.0) -> bytes:
        async with asyncio.timeout(timeout):
            return await self.reader.readexactly(n)

    async def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """Wait until the peer closes the socket; True once it has."""
        async with asyncio.timeout(timeout):
            try:
                while await self.reader.read(4096):
                    pass
            except ConnectionError:
                pass
        return True

    async def close(self) -> None:
        self.writer.close()
        try:
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        except (OSError, TimeoutError):
            self.writer.transport.abort()


def cli_command() -> list[str]:
    """The installed ``givtcp-async`` script (the entry point), else ``python -m givtcp_async``."""
    script = Path(sys.executable).parent / "givtcp-async"
    return [str(script)] if script.exists() else [sys.executable, "-m", "givtcp_async"]


@contextlib.asynccontextmanager
async def simulate_capture(path: Path, env: dict[str, str] | None = None) -> AsyncIterator[int]:
    """``givtcp-async simulate --capture PATH`` on a free port of 127.0.0.1; yields the port, and
    on exit stops it with SIGTERM, which it must obey with exit status 0."""
    proc = await asyncio.create_subprocess_exec(
        *cli_command(), "simulate", "--capture", str(path), "--host", "127.0.0.1", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = 0
        async with asyncio.timeout(30):
            while not port:
                line = await proc.stdout.readline()
                assert line, "simulator exited before listening"
                if line.startswith(b"{"):
                    port = int(json.loads(line)["listening"].rsplit(":", 1)[1])
        yield port
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
