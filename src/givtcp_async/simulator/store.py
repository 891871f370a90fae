"""The simulated plant's register file: banks per device address, organised in 60-register pages.

A read is answered when every page it touches exists (missing registers inside a page read 0);
otherwise the device answers with an error frame, as real inverters do for blocks they lack.
Devices that do not exist at all stay silent (the request times out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from givtcp_async.protocol.capture import CaptureRecord
from givtcp_async.protocol.frames import (
    MAX_READ_COUNT,
    ErrorResponse,
    FunctionCode,
    ReadResponse,
    WriteResponse,
)
from givtcp_async.protocol.stream import FrameStream

PAGE = 60

# A write hook sees (device, register, value) before the write lands. It returns the value to
# store (possibly changed), or None to refuse the write with an error frame.
WriteHook = Callable[[int, int, int], int | None]


def page_of(register: int) -> int:
    return register - register % PAGE


def pages_for(base: int, count: int) -> set[int]:
    return {page_of(r) for r in range(base, base + count)}


@dataclass(slots=True)
class SimDevice:
    """One answering device address: its serial and its register banks."""

    address: int
    serial: bytes
    banks: dict[int, dict[int, int]] = field(default_factory=dict)  # function -> reg -> value
    pages: dict[int, set[int]] = field(default_factory=dict)  # function -> page bases present

    def add_page(self, function: FunctionCode, base: int, values: Iterable[int] = ()) -> None:
        """Declare the page(s) holding ``base`` present and store ``values`` from ``base`` on."""
        vals = list(values)
        self.pages.setdefault(int(function), set()).update(pages_for(base, max(1, len(vals))))
        bank = self.banks.setdefault(int(function), {})
        for i, v in enumerate(vals):
            bank[base + i] = v

    def has(self, function: int, base: int, count: int) -> bool:
        return pages_for(base, count) <= self.pages.get(function, set())

    def get(self, function: int, register: int) -> int:
        return self.banks.get(function, {}).get(register, 0)

    def set(self, function: int, register: int, value: int) -> None:
        self.banks.setdefault(function, {})[register] = value & 0xFFFF


@dataclass(slots=True)
class RegisterStore:
    """Every device of the simulated plant.

    ``aliases`` maps facade addresses (0x31/0x32 on Gen1 and AC-coupled units) to the device
    whose register file they show. ``write_hooks`` let a plant model react to writes.
    """

    devices: dict[int, SimDevice] = field(default_factory=dict)
    aliases: dict[int, int] = field(default_factory=dict)
    write_hooks: list[WriteHook] = field(default_factory=list)
    inverter_address: int = 0x11

    def device(self, address: int) -> SimDevice | None:
        return self.devices.get(self.aliases.get(address, address))

    def add_device(self, address: int, serial: bytes) -> SimDevice:
        dev = self.devices.get(address)
        if dev is None:
            dev = self.devices[address] = SimDevice(address, serial)
        return dev

    def holding(self, register: int, address: int | None = None) -> int:
        dev = self.device(self.inverter_address if address is None else address)
        return 0 if dev is None else dev.get(FunctionCode.READ_HOLDING, register)

    def input(self, register: int, address: int | None = None) -> int:
        dev = self.device(self.inverter_address if address is None else address)
        return 0 if dev is None else dev.get(FunctionCode.READ_INPUT, register)

    def read(
        self, address: int, function: FunctionCode, base: int, count: int
    ) -> ReadResponse | ErrorResponse | None:
        """The device's answer to a read, or None when nothing answers at that address."""
        dev = self.device(address)
        if dev is None:
            return None
        if count > MAX_READ_COUNT or count < 1 or not dev.has(function, base, count):
            return ErrorResponse(address, int(function), dev.serial, base, count)
        bank = dev.banks.get(int(function), {})
        values = tuple(bank.get(r, 0) for r in range(base, base + count))
        return ReadResponse(address, function, dev.serial, base, values)

    def write(
        self, address: int, register: int, value: int
    ) -> WriteResponse | ErrorResponse | None:
        """Apply a single-register write and return the echo (the value now held)."""
        dev = self.device(address)
        if dev is None:
            return None
        fn = int(FunctionCode.READ_HOLDING)
        if not dev.has(fn, register, 1):
            return ErrorResponse(
                address, int(FunctionCode.WRITE_SINGLE), dev.serial, register, value
            )
        stored: int | None = value
        for hook in self.write_hooks:
            stored = hook(dev.address, register, value if stored is None else stored)
            if stored is None:
                return ErrorResponse(
                    address, int(FunctionCode.WRITE_SINGLE), dev.serial, register, value
                )
        assert stored is not None
        dev.set(fn, register, stored)
        return WriteResponse(address, dev.serial, register, dev.get(fn, register))

    def snapshot(self) -> dict[tuple[int, int, int], int]:
        """Every stored register as {(device, function, register): value}."""
        return {
            (addr, fn, reg): value
            for addr, dev in self.devices.items()
            for fn, bank in dev.banks.items()
            for reg, value in bank.items()
        }

    @classmethod
    def from_capture(cls, records: Iterable[CaptureRecord]) -> RegisterStore:
        """Seed a store from the dongle-to-client frames of a capture.

        Every valid read response declares its page present and stores its values (the last
        one seen wins); error responses leave their page absent.
        """
        store = cls()
        stream = FrameStream()
        for rec in records:
            if rec.direction != "rx":
                continue
            for frame in stream.feed(rec.data):
                if isinstance(frame, ReadResponse):
                    dev = store.add_device(frame.device_address, frame.serial)
                    dev.add_page(frame.function, frame.base_register, frame.values)
                elif isinstance(frame, WriteResponse):
                    dev = store.add_device(frame.device_address, frame.serial)
                    dev.add_page(FunctionCode.READ_HOLDING, frame.register, [frame.value])
        return store
