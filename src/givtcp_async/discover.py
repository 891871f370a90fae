"""Finding GivEnergy dongles on the network: a concurrent scan validated by a real protocol read.

An address counts only when it answers a real request — HR(0..59) of device 0x11, the read every
client starts with — with a well-formed response whose CRC checks and whose device, function,
base and count match. An open port alone proves nothing (cameras, other vendors' inverters and
printers listen on 8899 too), so anything else that answers is not reported.

Without explicit targets the host's own IPv4 networks are scanned (loopback and link-local
excluded); a network larger than a /22 is narrowed to the /24 around the host's address.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import json
import shutil
import socket
import struct
import subprocess
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Protocol, TypeVar

from givtcp_async.errors import GivTcpError
from givtcp_async.protocol.frames import FunctionCode, ReadRequest, ReadResponse, serial_text
from givtcp_async.protocol.stream import FrameStream
from givtcp_async.quality.pages import ascii_from_registers, is_valid_serial
from givtcp_async.registers.models import detect_model

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_TIMEOUT",
    "MAX_SCAN_ADDRESSES",
    "Dongle",
    "local_networks",
    "probe",
    "scan",
    "scan_with",
    "targets_of",
]

DEFAULT_PORT: Final = 8899
DEFAULT_TIMEOUT: Final = 1.5
DEFAULT_CONCURRENCY: Final = 128
#: Explicit targets larger than this (a /16) are refused: such a scan takes many minutes.
MAX_SCAN_ADDRESSES: Final = 65536
#: Local networks larger than this are narrowed to the /24 around the host's address.
MAX_LOCAL_PREFIX: Final = 22
_INVERTER: Final = 0x11
_SIOCGIFFLAGS: Final = 0x8913
_SIOCGIFADDR: Final = 0x8915
_SIOCGIFNETMASK: Final = 0x891B
_IFF_UP: Final = 0x1
_IFF_LOOPBACK: Final = 0x8


@dataclass(frozen=True, slots=True)
class Dongle:
    """A dongle that answered the identification read."""

    address: str
    port: int
    serial: str  # the inverter's (or EMS/Gateway's) serial, HR13-17
    model: str  # "Hybrid Gen3", or "unknown (DTC xxxx)"
    device_type_code: str
    firmware: str
    adapter_serial: str  # the dongle's own serial, from the frame header

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _identify(address: str, port: int, frame: ReadResponse) -> Dongle:
    holding = dict(enumerate(frame.values))
    serial = ascii_from_registers(frame.values[13:18])
    if not is_valid_serial(serial):
        serial = serial_text(frame.serial)
    try:
        model = detect_model(holding)
        name, dtc, firmware = model.name, model.dtc, model.firmware
    except GivTcpError:
        dtc = f"{frame.values[0]:04x}"
        name = f"unknown (DTC {dtc})"
        firmware = f"D0.{frame.values[19]}-A0.{frame.values[21]}"
    return Dongle(
        address=address,
        port=port,
        serial=serial,
        model=name,
        device_type_code=dtc,
        firmware=firmware,
        adapter_serial=serial_text(frame.adapter_serial),
    )


async def probe(
    address: str, port: int = DEFAULT_PORT, *, timeout: float = DEFAULT_TIMEOUT
) -> Dongle | None:
    """The dongle at ``address:port``, or None when nothing there speaks the protocol.

    ``timeout`` bounds the connection and, separately, the wait for the answer (the request is
    sent a second time halfway through, as a dongle may miss the first one).
    """
    request = ReadRequest(_INVERTER, FunctionCode.READ_HOLDING, 0, 60)
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address, port)
    except (OSError, TimeoutError):
        return None
    stream = FrameStream()
    try:
        writer.write(request.encode())
        loop = asyncio.get_running_loop()
        resend_at = loop.time() + timeout / 2
        deadline = loop.time() + timeout
        while (now := loop.time()) < deadline:
            wait = (resend_at if resend_at > now else deadline) - now
            try:
                async with asyncio.timeout(wait):
                    chunk = await reader.read(4096)
            except TimeoutError:
                if resend_at <= loop.time() < deadline:
                    writer.write(request.encode())
                    resend_at = deadline
                continue
            if not chunk:
                return None  # closed: not a dongle (or one that refuses us)
            for frame in stream.feed(chunk):
                if isinstance(frame, ReadResponse) and frame.shape == request.shape:
                    return _identify(address, port, frame)
            stats = stream.stats
            if stats.garbage_bytes > 1024 or stats.crc_failures + stats.malformed > 3:
                return None  # talking, but not the protocol
        return None
    except OSError:
        return None
    finally:
        writer.transport.abort()


async def scan(
    targets: Iterable[str],
    port: int = DEFAULT_PORT,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_result: Callable[[str, Dongle | None], None] | None = None,
) -> list[Dongle]:
    """Probe every target, ``concurrency`` at a time; the dongles found, by address."""
    return await scan_with(
        probe, targets, port, timeout=timeout, concurrency=concurrency, on_result=on_result
    )


class Found(Protocol):
    """What a probe finds: something at an address and port."""

    @property
    def address(self) -> str: ...

    @property
    def port(self) -> int: ...


_F = TypeVar("_F", bound=Found)


async def scan_with(
    probe_one: Callable[..., Awaitable[_F | None]],
    targets: Iterable[str],
    port: int,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_result: Callable[[str, _F | None], None] | None = None,
) -> list[_F]:
    """:func:`scan` with another probe (``probe_one(address, port, timeout=...)``): chargers."""
    queue = iter(targets)
    found: list[_F] = []

    async def worker() -> None:
        for address in queue:
            device = await probe_one(address, port, timeout=timeout)
            if device is not None:
                found.append(device)
            if on_result is not None:
                on_result(address, device)

    async with asyncio.TaskGroup() as tg:
        for _ in range(max(1, concurrency)):
            tg.create_task(worker())
    return sorted(found, key=lambda d: (ipaddress.ip_address(d.address), d.port))


# --- what to scan ----------------------------------------------------------------------------


def targets_of(networks: Sequence[ipaddress.IPv4Network]) -> list[str]:
    """Every host address of ``networks`` (each once, in order)."""
    seen: set[str] = set()
    out: list[str] = []
    for net in networks:
        hosts: Iterator[ipaddress.IPv4Address] = (
            iter(net.hosts()) if net.num_addresses > 2 else iter(net)
        )
        for host in hosts:
            text = str(host)
            if text not in seen:
                seen.add(text)
                out.append(text)
    return out


def parse_targets(texts: Sequence[str]) -> list[ipaddress.IPv4Network]:
    """CIDRs or single addresses; ValueError naming the bad one."""
    networks: list[ipaddress.IPv4Network] = []
    for text in texts:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"not an IPv4 address or CIDR: {text!r}") from None
        if not isinstance(net, ipaddress.IPv4Network):
            raise ValueError(f"only IPv4 is supported: {text!r}")
        if net.num_addresses > MAX_SCAN_ADDRESSES:
            raise ValueError(
                f"{text} has {net.num_addresses} addresses; scan at most a /16 at a time"
            )
        networks.append(net)
    return networks


def _interfaces_ip() -> list[ipaddress.IPv4Interface] | None:
    """Every IPv4 address of every interface, from iproute2 (None when it is not there)."""
    ip = shutil.which("ip")
    if ip is None:
        return None
    try:
        done = subprocess.run(
            [ip, "-j", "-4", "addr", "show", "up"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        data = json.loads(done.stdout or "[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    out: list[ipaddress.IPv4Interface] = []
    for link in data:
        if "LOOPBACK" in link.get("flags", []):
            continue
        for info in link.get("addr_info", []):
            if info.get("family") == "inet" and "local" in info and "prefixlen" in info:
                out.append(ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}"))
    return out


def _interfaces_ioctl() -> list[ipaddress.IPv4Interface]:
    """The primary IPv4 address of every interface that is up, by ioctl (Linux)."""
    out: list[ipaddress.IPv4Interface] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            packed = struct.pack("256s", name.encode()[:15])
            try:
                flags = struct.unpack("H", fcntl.ioctl(sock, _SIOCGIFFLAGS, packed)[16:18])[0]
                if not flags & _IFF_UP or flags & _IFF_LOOPBACK:
                    continue
                addr = socket.inet_ntoa(fcntl.ioctl(sock, _SIOCGIFADDR, packed)[20:24])
                mask = socket.inet_ntoa(fcntl.ioctl(sock, _SIOCGIFNETMASK, packed)[20:24])
            except OSError:
                continue  # no IPv4 address on this interface
            out.append(ipaddress.IPv4Interface(f"{addr}/{mask}"))
    return out


def local_networks() -> tuple[list[ipaddress.IPv4Network], list[str]]:
    """The host's IPv4 networks to scan, and notes about what was narrowed or skipped."""
    interfaces = _interfaces_ip()
    if interfaces is None:
        interfaces = _interfaces_ioctl()
    networks: list[ipaddress.IPv4Network] = []
    notes: list[str] = []
    for iface in interfaces:
        if iface.ip.is_loopback or iface.ip.is_link_local:
            continue
        net = iface.network
        if net.prefixlen < MAX_LOCAL_PREFIX:
            narrowed = ipaddress.IPv4Interface(f"{iface.ip}/24").network
            notes.append(f"{net} is large; scanning {narrowed} only (give a CIDR to scan more)")
            net = narrowed
        if net not in networks:
            networks.append(net)
    return networks, notes


class Shown(Protocol):
    """What progress shows of a device found."""

    @property
    def serial(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def port(self) -> int: ...


class Progress:
    """Scan progress on a stream: one rewritten line on a terminal, a few lines otherwise."""

    def __init__(self, total: int, write: Callable[[str], None], *, tty: bool) -> None:
        self.total = total
        self.done = 0
        self.found = 0
        self._write = write
        self._tty = tty
        self._next_report = 0.25

    def __call__(self, address: str, dongle: Shown | None) -> None:
        self.done += 1
        if dongle is not None:
            self.found += 1
            self._line(f"found {dongle.serial} ({dongle.model}) at {address}:{dongle.port}")
        if self._tty:
            self._write(f"\r{self.done}/{self.total} probed, {self.found} found")
        elif self.total and self.done / self.total >= self._next_report:
            self._next_report += 0.25
            self._write(f"{self.done}/{self.total} probed, {self.found} found\n")

    def _line(self, text: str) -> None:
        self._write(("\r\x1b[K" if self._tty else "") + text + "\n")

    def finish(self) -> None:
        if self._tty:
            self._write("\r\x1b[K")
