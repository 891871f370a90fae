"""Wire-capture files: reading them and describing their frames as JSON-ready dicts.

Two line formats are accepted:

* JSONL as in ``shared/captures``: ``{"ts": ..., "dir": "rx"|"tx", "count": n, "hex": "5959..."}``
* plain text: ``<timestamp> <rx|tx> <hex>`` (the hex may contain spaces or colons).

``rx`` is dongle to client, ``tx`` client to dongle. A line may hold a whole frame, several,
or part of one: each direction is run through its own :class:`FrameStream`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from givtcp_async.errors import CaptureFormatError, CrcMismatch
from givtcp_async.protocol.frames import (
    ErrorResponse,
    Frame,
    Heartbeat,
    LanConfigBroadcast,
    NullResponse,
    ReadRequest,
    ReadResponse,
    WriteRequest,
    WriteResponse,
    serial_text,
)
from givtcp_async.protocol.stream import FrameStream, RejectedFrame

_HEX_JUNK = re.compile(r"[\s:]")
_HEX = re.compile(r"^[0-9a-fA-F]*$")


@dataclass(frozen=True, slots=True)
class CaptureRecord:
    """One line of a capture: when, which direction, how often, which bytes."""

    line: int
    ts: str | None
    direction: str
    count: int
    data: bytes


def _parse_hex(text: str, line: int) -> bytes:
    cleaned = _HEX_JUNK.sub("", text)
    if not cleaned or len(cleaned) % 2 or not _HEX.match(cleaned):
        raise CaptureFormatError(f"line {line}: not a hex string")
    return bytes.fromhex(cleaned)


def parse_line(text: str, line: int) -> CaptureRecord | None:
    """One capture line, or None for a blank line or a ``#`` comment."""
    text = text.strip()
    if not text or text.startswith("#"):
        return None
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise CaptureFormatError(f"line {line}: invalid JSON ({err.msg})") from err
        if not isinstance(obj, dict) or "hex" not in obj or "dir" not in obj:
            raise CaptureFormatError(f"line {line}: JSON line needs 'dir' and 'hex'")
        direction = str(obj["dir"]).lower()
        if direction not in ("rx", "tx"):
            raise CaptureFormatError(f"line {line}: dir must be rx or tx, got {obj['dir']!r}")
        count = obj.get("count", 1)
        if not isinstance(count, int) or count < 1:
            raise CaptureFormatError(f"line {line}: count must be a positive integer")
        ts = obj.get("ts")
        return CaptureRecord(
            line,
            None if ts is None else str(ts),
            direction,
            count,
            _parse_hex(str(obj["hex"]), line),
        )
    parts = text.split(None, 2)
    if len(parts) != 3 or parts[1].lower() not in ("rx", "tx"):
        raise CaptureFormatError(f"line {line}: expected '<timestamp> <rx|tx> <hex>'")
    return CaptureRecord(line, parts[0], parts[1].lower(), 1, _parse_hex(parts[2], line))


def read_capture(lines: Iterable[str]) -> Iterator[CaptureRecord]:
    """Parse capture lines in order; raises :class:`CaptureFormatError` on a bad line."""
    it = iter(lines)
    number = 0
    while True:
        try:
            text = next(it)
        except StopIteration:
            return
        except UnicodeDecodeError as err:
            # A text file decodes in chunks, so the bad byte may lie a few lines further on.
            raise CaptureFormatError(f"line {number + 1} or later: not UTF-8 text") from err
        number += 1
        record = parse_line(text, number)
        if record is not None:
            yield record


def load_capture(path: Path) -> list[CaptureRecord]:
    """Every record of a capture file."""
    with path.open(encoding="utf-8") as fh:
        return list(read_capture(fh))


def describe(frame: Frame | RejectedFrame) -> dict[str, Any]:
    """A JSON-ready summary of a frame (or of a rejected one, without values)."""
    if isinstance(frame, RejectedFrame):
        err = frame.error
        out: dict[str, Any] = {"kind": "rejected", "crc_ok": False, "error": str(err)}
        if isinstance(err, CrcMismatch):
            out.update(
                claimed_kind=err.kind,
                device_address=err.device_address,
                function=err.function,
            )
        else:
            out["crc_ok"] = None
        out["adapter_serial"] = serial_text(frame.raw[8:18]) if len(frame.raw) >= 18 else None
        out["length"] = len(frame.raw)
        return out
    out = {"kind": frame.kind, "crc_ok": True}
    if isinstance(frame, Heartbeat):
        out.update(
            adapter_serial=serial_text(frame.adapter_serial),
            adapter_type=frame.adapter_type,
            crc_ok=None,
        )
        return out
    if isinstance(frame, LanConfigBroadcast):
        out.update(adapter_serial=serial_text(frame.adapter_serial), text=frame.text, crc_ok=None)
        return out
    out["adapter_serial"] = serial_text(frame.adapter_serial)
    out["device_address"] = frame.device_address
    if isinstance(frame, ReadRequest):
        out.update(
            function=int(frame.function),
            base_register=frame.base_register,
            register_count=frame.register_count,
        )
    elif isinstance(frame, WriteRequest):
        out.update(function=6, register=frame.register, value=frame.value)
    elif isinstance(frame, ReadResponse):
        out.update(
            function=int(frame.function),
            serial=serial_text(frame.serial),
            base_register=frame.base_register,
            register_count=frame.register_count,
            values=list(frame.values),
        )
    elif isinstance(frame, WriteResponse):
        out.update(
            function=6, serial=serial_text(frame.serial), register=frame.register, value=frame.value
        )
    elif isinstance(frame, ErrorResponse):
        out.update(
            function=frame.function | 0x80,
            request_function=frame.function,
            serial=serial_text(frame.serial),
            base_register=frame.field1,
            register_count=frame.field2,
        )
    elif isinstance(frame, NullResponse):
        out["function"] = 0
    return out


def decode_records(records: Iterable[CaptureRecord]) -> Iterator[dict[str, Any]]:
    """Describe every frame in a capture, in order, with line, timestamp, direction and count."""
    streams = {"rx": FrameStream(), "tx": FrameStream()}
    for rec in records:
        for item in streams[rec.direction].feed_detailed(rec.data):
            desc = describe(item)
            yield {
                "line": rec.line,
                "ts": rec.ts,
                "direction": rec.direction,
                "count": rec.count,
                **desc,
            }
    for direction, stream in streams.items():
        if stream.buffered:
            yield {
                "line": None,
                "ts": None,
                "direction": direction,
                "count": 1,
                "kind": "incomplete",
                "crc_ok": None,
                "length": stream.buffered,
            }
