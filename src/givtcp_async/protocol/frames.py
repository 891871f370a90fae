"""GivEnergy dongle frames: pure encode and decode, no I/O (SPEC §2).

Every frame starts with the 8-byte outer header ``59 59 00 01 <len:2> <unit> <main fn>``.
Main function 1 is a heartbeat; 2 is a "transparent" frame that wraps a Modbus-RTU-like
sub-frame behind a 10-byte adapter serial and an 8-byte sub-frame length field.

Serials are kept as raw ``bytes`` so that any frame re-encodes byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, NoReturn

from fastcrc.crc16 import modbus as _crc16_modbus

from givtcp_async.errors import CrcMismatch, EncodeError, MalformedFrame

MARKER: Final = b"\x59\x59\x00\x01"
HEADER_LEN: Final = 8
TRANSPARENT_PREFIX_LEN: Final = 26  # header + adapter serial + sub-frame length field
HEARTBEAT_LEN: Final = 19
MAX_FRAME_LEN: Final = 306  # header length field is at most 300 (SPEC §2.9)
MAX_READ_COUNT: Final = 60
DUMMY_ADAPTER_SERIAL: Final = b"AB1234G567"
ERROR_BIT: Final = 0x80

_MAIN_HEARTBEAT: Final = 0x01
_MAIN_TRANSPARENT: Final = 0x02


class FunctionCode(IntEnum):
    """Sub-frame function codes (byte 27)."""

    NULL = 0x00
    READ_HOLDING = 0x03
    READ_INPUT = 0x04
    WRITE_SINGLE = 0x06
    READ_METER_PRODUCT = 0x16


READ_FUNCTIONS: Final = frozenset(
    {FunctionCode.READ_HOLDING, FunctionCode.READ_INPUT, FunctionCode.READ_METER_PRODUCT}
)


# A read's function byte as the enum, without an enum call per frame.
_READ_FUNCTION: Final = {int(f): f for f in READ_FUNCTIONS}
# One compiled struct per register count a read response can carry.
_WORDS: Final = tuple(struct.Struct(f">{n}H") for n in range((MAX_FRAME_LEN - 44) // 2 + 1))
_U16_PAIR: Final = struct.Struct(">HH")


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MODBUS of ``data`` as the integer whose big-endian bytes are the wire order."""
    crc = _crc16_modbus(data)
    return ((crc & 0xFF) << 8) | (crc >> 8)


def serial_text(raw: bytes) -> str:
    """A 10-byte serial as text: NULs stripped, non-ASCII bytes replaced."""
    return raw.replace(b"\x00", b"").decode("ascii", errors="replace")


def _check_serial(name: str, raw: bytes) -> None:
    if len(raw) != 10:
        raise EncodeError(f"{name} must be 10 bytes, got {len(raw)}")


def _check_u16(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise EncodeError(f"{name} must fit 16 bits, got {value}")


def _check_u8(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise EncodeError(f"{name} must fit 8 bits, got {value}")


def _header(length: int, unit_id: int, main_function: int) -> bytes:
    return MARKER + struct.pack(">HBB", length, unit_id, main_function)


def _transparent(adapter_serial: bytes, unit_id: int, sub_without_crc: bytes) -> bytes:
    """Wrap a sub-frame (CRC appended here) in the transparent outer frame."""
    _check_serial("adapter_serial", adapter_serial)
    _check_u8("unit_id", unit_id)
    # Only sizes the decoder accepts: sub-frame >= 8 bytes, whole frame <= MAX_FRAME_LEN.
    size = TRANSPARENT_PREFIX_LEN + len(sub_without_crc) + 2
    if len(sub_without_crc) < 6 or size > MAX_FRAME_LEN:
        raise EncodeError(f"frame of {size} bytes is outside 34..{MAX_FRAME_LEN}")
    sub = sub_without_crc + crc16(sub_without_crc).to_bytes(2, "big")
    # The 8-byte field after the adapter serial is the sub-frame's length (SPEC §2.2, §7 #1).
    body = adapter_serial + len(sub).to_bytes(8, "big") + sub
    return _header(len(body) + 2, unit_id, _MAIN_TRANSPARENT) + body


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Heartbeat request (dongle to client) or reply (client to dongle): same shape."""

    adapter_serial: bytes
    adapter_type: int
    unit_id: int = 1

    kind = "heartbeat"

    def encode(self) -> bytes:
        _check_serial("adapter_serial", self.adapter_serial)
        _check_u8("adapter_type", self.adapter_type)
        _check_u8("unit_id", self.unit_id)
        return (
            _header(13, self.unit_id, _MAIN_HEARTBEAT)
            + self.adapter_serial
            + bytes([self.adapter_type])
        )


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """Read ``count`` registers from ``base`` with FC 3, 4 or 0x16."""

    device_address: int
    function: FunctionCode
    base_register: int
    register_count: int
    adapter_serial: bytes = DUMMY_ADAPTER_SERIAL
    unit_id: int = 1

    kind = "read_request"

    def encode(self) -> bytes:
        if self.function not in READ_FUNCTIONS:
            raise EncodeError(f"function {self.function:#04x} is not a read")
        if not 1 <= self.register_count <= MAX_READ_COUNT:
            raise EncodeError(f"register_count must be 1..{MAX_READ_COUNT}")
        _check_u8("device_address", self.device_address)
        _check_u16("base_register", self.base_register)
        sub = struct.pack(
            ">BBHH", self.device_address, self.function, self.base_register, self.register_count
        )
        return _transparent(self.adapter_serial, self.unit_id, sub)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """What a matching response carries: (device, function, base, count)."""
        return (self.device_address, int(self.function), self.base_register, self.register_count)


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """Write one holding register (FC 6)."""

    device_address: int
    register: int
    value: int
    adapter_serial: bytes = DUMMY_ADAPTER_SERIAL
    unit_id: int = 1

    kind = "write_request"
    function = FunctionCode.WRITE_SINGLE

    def encode(self) -> bytes:
        _check_u8("device_address", self.device_address)
        _check_u16("register", self.register)
        _check_u16("value", self.value)
        sub = struct.pack(">BBHH", self.device_address, 6, self.register, self.value)
        return _transparent(self.adapter_serial, self.unit_id, sub)

    @property
    def shape(self) -> tuple[int, int, int]:
        """What a matching echo carries: (device, 6, register)."""
        return (self.device_address, 6, self.register)


@dataclass(frozen=True, slots=True)
class ReadResponse:
    """Registers ``base_register .. base_register + len(values) - 1`` of one device."""

    device_address: int
    function: FunctionCode
    serial: bytes
    base_register: int
    values: tuple[int, ...]
    adapter_serial: bytes = DUMMY_ADAPTER_SERIAL
    unit_id: int = 1

    kind = "read_response"

    @property
    def register_count(self) -> int:
        return len(self.values)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.device_address, int(self.function), self.base_register, len(self.values))

    def encode(self) -> bytes:
        if self.function not in READ_FUNCTIONS:
            raise EncodeError(f"function {self.function:#04x} is not a read")
        _check_u8("device_address", self.device_address)
        _check_u16("base_register", self.base_register)
        _check_serial("serial", self.serial)
        for v in self.values:
            _check_u16("register value", v)
        sub = (
            struct.pack(">BB", self.device_address, self.function)
            + self.serial
            + struct.pack(
                f">HH{len(self.values)}H", self.base_register, len(self.values), *self.values
            )
        )
        return _transparent(self.adapter_serial, self.unit_id, sub)


@dataclass(frozen=True, slots=True)
class WriteResponse:
    """Echo of a single-register write; ``value`` is what the register now holds."""

    device_address: int
    serial: bytes
    register: int
    value: int
    adapter_serial: bytes = DUMMY_ADAPTER_SERIAL
    unit_id: int = 1

    kind = "write_response"
    function = FunctionCode.WRITE_SINGLE

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.device_address, 6, self.register)

    def encode(self) -> bytes:
        _check_u8("device_address", self.device_address)
        _check_u16("register", self.register)
        _check_u16("value", self.value)
        _check_serial("serial", self.serial)
        sub = (
            struct.pack(">BB", self.device_address, 6)
            + self.serial
            + struct.pack(">HH", self.register, self.value)
        )
        return _transparent(self.adapter_serial, self.unit_id, sub)


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """Error frame: function byte with bit 7 set and *no* exception code (SPEC §2.4).

    ``field1``/``field2`` echo base and count for reads, register and value for writes.
    """

    device_address: int
    function: int  # the request's function code, without the error bit
    serial: bytes
    field1: int
    field2: int
    adapter_serial: bytes = DUMMY_ADAPTER_SERIAL
    unit_id: int = 1

    kind = "error_response"

    def encode(self) -> bytes:
        _check_u8("device_address", self.device_address)
        if not 0 <= self.function < ERROR_BIT:
            raise EncodeError(f"function must be 0..0x7f (no error bit), got {self.function}")
        _check_u16("field1", self.field1)
        _check_u16("field2", self.field2)
        _check_serial("serial", self.serial)
        sub = (
            struct.pack(">BB", self.device_address, self.function | ERROR_BIT)
            + self.serial
            + struct.pack(">HH", self.field1, self.field2)
        )
        return _transparent(self.adapter_serial, self.unit_id, sub)


@dataclass(frozen=True, slots=True)
class NullResponse:
    """Unprompted function-0 frame sent by the dongle now and then; carries nothing."""

    device_address: int
    body: bytes = bytes(134)  # zero serial + 62 zero words
    adapter_serial: bytes = DUMMY_ADAPTER_SERIAL
    unit_id: int = 1

    kind = "null_response"
    function = FunctionCode.NULL

    def encode(self) -> bytes:
        _check_u8("device_address", self.device_address)
        sub = bytes([self.device_address, 0]) + self.body
        return _transparent(self.adapter_serial, self.unit_id, sub)


@dataclass(frozen=True, slots=True)
class LanConfigBroadcast:
    """LAN-configuration broadcast of some WO-prefix dongles (recognised, then ignored)."""

    adapter_serial: bytes
    text: str
    raw: bytes = field(repr=False)

    kind = "lan_config"
    unit_id = 1

    def encode(self) -> bytes:
        return self.raw


Frame = (
    Heartbeat
    | ReadRequest
    | WriteRequest
    | ReadResponse
    | WriteResponse
    | ErrorResponse
    | NullResponse
    | LanConfigBroadcast
)
Request = ReadRequest | WriteRequest
Response = ReadResponse | WriteResponse | ErrorResponse


def frame_length(header: bytes | bytearray, pos: int = 0) -> int | None:
    """Total frame length announced by the 8-byte header at ``pos``, or None if it is not sane."""
    if len(header) - pos < HEADER_LEN or not header.startswith(MARKER, pos):
        return None
    length = (header[pos + 4] << 8) | header[pos + 5]
    unit_id, main = header[pos + 6], header[pos + 7]
    if unit_id > 1:
        return None
    if main == _MAIN_HEARTBEAT:
        return HEARTBEAT_LEN if length == HEARTBEAT_LEN - 6 else None
    if main == _MAIN_TRANSPARENT and 28 <= length <= MAX_FRAME_LEN - 6:
        return length + 6
    return None


def is_lan_config(frame: bytes) -> bool:
    """True for the LAN-config broadcast (bytes 18-24 zero, byte 25 = ',', then ASCII text).

    The text check matters: any transparent frame with a 44-byte sub-frame (a 13-register read
    response, say) has the same bytes 18-25, but its function byte (27) is never printable.
    """
    return (
        len(frame) > 26
        and frame[25] == 0x2C
        and frame[7] == _MAIN_TRANSPARENT
        and frame[18:25] == bytes(7)
        and all(0x20 <= b < 0x7F or b in (0x0A, 0x0D) for b in frame[26:-2])
    )


def classify(sub: bytes) -> str:
    """Frame kind of a transparent sub-frame (CRC included), judged by function and size."""
    fn = sub[1]
    n = len(sub)
    if fn & ERROR_BIT:
        return "error_response"
    if fn == 0:
        return "null_response"
    if fn in READ_FUNCTIONS:
        return "read_request" if n == 8 else "read_response"
    if fn == 6:
        return "write_request" if n == 8 else "write_response"
    return "unknown"


def decode_frame(frame: bytes) -> Frame:
    """Decode one whole frame.

    Raises :class:`MalformedFrame` for anything that is not a known frame and
    :class:`CrcMismatch` when the sub-frame CRC fails (nothing is decoded from it then).
    """
    total = frame_length(frame)
    if total is None:
        raise MalformedFrame(f"bad header {frame[:HEADER_LEN].hex()}")
    n = len(frame)
    if n != total:
        raise MalformedFrame(f"length field says {total} bytes, got {n}")
    unit_id = frame[6]
    if frame[7] == _MAIN_HEARTBEAT:
        return Heartbeat(bytes(frame[8:18]), frame[18], unit_id)
    adapter = bytes(frame[8:18])
    if frame[25] == 0x2C and is_lan_config(frame):
        text = frame[25:-2].decode("ascii", errors="replace").strip(",\r\n")
        return LanConfigBroadcast(adapter_serial=adapter, text=text, raw=bytes(frame))
    n -= TRANSPARENT_PREFIX_LEN  # the sub-frame's length, CRC included
    if n < 8:
        raise MalformedFrame("sub-frame shorter than 8 bytes")
    # The CRC over a sub-frame followed by its own (low byte first) CRC is 0.
    if _crc16_modbus(memoryview(frame)[TRANSPARENT_PREFIX_LEN:]):
        _crc_mismatch(frame)
    device, fn = frame[26], frame[27]
    if fn == 0:
        return NullResponse(device, bytes(frame[28:-2]), adapter, unit_id)
    read = _READ_FUNCTION.get(fn)
    if n == 8:  # a request: device, function, two words, CRC
        if read is not None:
            first, second = _U16_PAIR.unpack_from(frame, 28)
            return ReadRequest(device, read, first, second, adapter, unit_id)
        if fn == 6:
            first, second = _U16_PAIR.unpack_from(frame, 28)
            return WriteRequest(device, first, second, adapter, unit_id)
    if n < 18:
        kind = classify(frame[TRANSPARENT_PREFIX_LEN:])
        raise MalformedFrame(f"{kind} sub-frame of {n} bytes is too short")
    serial = bytes(frame[28:38])
    if read is not None:
        base, count = _U16_PAIR.unpack_from(frame, 38)
        n_values = (n - 18) // 2
        if (n - 18) % 2 or count != n_values:
            raise MalformedFrame(f"read response announces {count} registers, carries {n_values}")
        values = _WORDS[n_values].unpack_from(frame, 42)
        return ReadResponse(device, read, serial, base, values, adapter, unit_id)
    if fn & ERROR_BIT:
        if n != 18:
            raise MalformedFrame(f"error response sub-frame of {n} bytes, expected 18")
        f1, f2 = _U16_PAIR.unpack_from(frame, 38)
        return ErrorResponse(device, fn & ~ERROR_BIT & 0xFF, serial, f1, f2, adapter, unit_id)
    if fn == 6:
        if n != 18:
            raise MalformedFrame(f"write echo sub-frame of {n} bytes, expected 18")
        reg, value = _U16_PAIR.unpack_from(frame, 38)
        return WriteResponse(device, serial, reg, value, adapter, unit_id)
    raise MalformedFrame(f"unknown sub-frame function {fn:#04x}")


def _crc_mismatch(frame: bytes) -> NoReturn:
    sub = frame[TRANSPARENT_PREFIX_LEN:]
    wire = (sub[-2] << 8) | sub[-1]
    computed = crc16(sub[:-2])
    kind = classify(sub)
    raise CrcMismatch(
        f"CRC mismatch on {kind} from {sub[0]:#04x}: wire {wire:04x}, computed {computed:04x}",
        kind=kind,
        device_address=sub[0],
        function=sub[1],
        crc_wire=wire,
        crc_computed=computed,
    )
