"""Mutation fuzzing of the frame decoder and the stream splitter.

Inputs are valid frames (from captures, or generated) mutated the ways a dongle and a network
corrupt them: bit flips, byte changes, truncation, insertion, duplication, splices of two frames,
forged length fields, and pure random bytes. The contract checked for every input:

* :func:`decode_frame` returns a frame or raises a :class:`FrameError`, nothing else;
* a decoded transparent frame re-encodes to bytes that decode to an equal frame (so its CRC is
  valid: nothing that fails its CRC is ever returned);
* :class:`FrameStream` fed the same bytes in random chunks never raises and yields only such
  frames, and its buffer stays below one frame between feeds.
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from givtcp_async.errors import FrameError
from givtcp_async.protocol.frames import (
    MARKER,
    MAX_FRAME_LEN,
    ErrorResponse,
    Frame,
    FunctionCode,
    Heartbeat,
    LanConfigBroadcast,
    ReadRequest,
    ReadResponse,
    WriteRequest,
    WriteResponse,
    decode_frame,
)
from givtcp_async.protocol.stream import FrameStream


@dataclass
class FuzzReport:
    inputs: int = 0
    decoded: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    stream_frames: int = 0
    failures: list[str] = field(default_factory=list)

    def as_text(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in self.rejected.most_common())
        return (
            f"{self.inputs} inputs: {self.decoded} decoded, {sum(self.rejected.values())} "
            f"rejected ({kinds}); stream yielded {self.stream_frames} frames; "
            f"{len(self.failures)} contract failures"
        )


def generated_frames(rng: random.Random, n: int) -> list[bytes]:
    """Valid frames of every kind with random fields."""
    out = []
    serial = b"SA1234G567"
    for _ in range(n):
        dev = rng.choice([0x11, 0x31, 0x32, 0x33, 0x01, 0x50, 0x70, 0xA0, rng.randrange(256)])
        base = rng.randrange(0, 2100)
        count = rng.randrange(1, 61)
        kind = rng.randrange(6)
        frame: Frame
        if kind == 0:
            fn = rng.choice(
                [
                    FunctionCode.READ_HOLDING,
                    FunctionCode.READ_INPUT,
                    FunctionCode.READ_METER_PRODUCT,
                ]
            )
            frame = ReadRequest(dev, fn, base, count)
        elif kind == 1:
            frame = WriteRequest(dev, base, rng.randrange(65536))
        elif kind == 2:
            values = tuple(rng.randrange(65536) for _ in range(count))
            frame = ReadResponse(dev, FunctionCode.READ_INPUT, serial, base, values)
        elif kind == 3:
            frame = WriteResponse(dev, serial, base, rng.randrange(65536))
        elif kind == 4:
            frame = ErrorResponse(dev, rng.choice([3, 4, 6]), serial, base, count)
        else:
            frame = Heartbeat(b"WF2125G000", rng.choice([1, 2]))
        out.append(frame.encode())
    return out


def mutate(rng: random.Random, seed: bytes, corpus: Sequence[bytes]) -> bytes:
    data = bytearray(seed)
    op = rng.randrange(10)
    if op == 0 and data:  # flip bits
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif op == 1 and data:  # change bytes
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif op == 2:  # truncate
        del data[rng.randrange(len(data) + 1) :]
    elif op == 3:  # insert random bytes
        i = rng.randrange(len(data) + 1)
        data[i:i] = rng.randbytes(rng.randrange(1, 20))
    elif op == 4 and data:  # duplicate a slice
        i = rng.randrange(len(data))
        j = rng.randrange(i, len(data) + 1)
        data[j:j] = data[i:j]
    elif op == 5:  # splice with another frame
        other = rng.choice(corpus)
        data = data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1) :]
    elif op == 6 and len(data) >= 6:  # forge the length field
        struct.pack_into(">H", data, 4, rng.randrange(65536))
    elif op == 7 and len(data) >= 26:  # forge the sub-frame length field
        data[18:26] = rng.randrange(2**64).to_bytes(8, "big")
    elif op == 8:  # pure noise, sometimes with a marker
        data = bytearray(rng.randbytes(rng.randrange(0, 400)))
        if rng.random() < 0.5:
            i = rng.randrange(len(data) + 1)
            data[i:i] = MARKER
    else:  # several frames glued with garbage
        data = bytearray()
        for _ in range(rng.randrange(1, 4)):
            data += rng.randbytes(rng.randrange(0, 8)) + rng.choice(corpus)
    return bytes(data)


def _check_frame(frame: Frame) -> str | None:
    if isinstance(frame, LanConfigBroadcast):
        return None
    raw = frame.encode()
    again = decode_frame(raw)
    if again != frame:
        return f"re-encoded {type(frame).__name__} decodes differently"
    return None


def fuzz(corpus: Sequence[bytes], iterations: int, seed: int = 1) -> FuzzReport:
    """Run ``iterations`` mutated inputs through the decoder and the stream splitter."""
    rng = random.Random(seed)
    report = FuzzReport()
    stream = FrameStream()
    for data in _inputs(rng, corpus, iterations):
        report.inputs += 1
        try:
            frame = decode_frame(data)
        except FrameError as err:
            report.rejected[type(err).__name__] += 1
        except Exception as err:  # noqa: BLE001 - the contract under test
            report.failures.append(f"decode_frame raised {err!r} on {data.hex()}")
        else:
            report.decoded += 1
            problem = _check_frame(frame)
            if problem:
                report.failures.append(f"{problem}: {data.hex()}")
        try:
            pos = 0
            while pos < len(data):
                step = rng.randrange(1, 200)
                for got in stream.feed(data[pos : pos + step]):
                    report.stream_frames += 1
                    problem = _check_frame(got)
                    if problem:
                        report.failures.append(f"stream: {problem}")
                pos += step
                if stream.buffered > MAX_FRAME_LEN:
                    report.failures.append(f"stream buffer grew to {stream.buffered}")
        except Exception as err:  # noqa: BLE001 - the contract under test
            report.failures.append(f"FrameStream raised {err!r} on {data.hex()}")
            stream = FrameStream()
    return report


def _inputs(rng: random.Random, corpus: Sequence[bytes], n: int) -> Iterator[bytes]:
    for _ in range(n):
        seed = rng.choice(corpus)
        data = seed
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            data = mutate(rng, data, corpus)
        yield data


# --- command payloads ----------------------------------------------------------------------

# Field names GivTCP's payloads use, so that objects often look almost right.
PAYLOAD_KEYS = (
    "chargeToPercent", "dischargeToPercent", "reservePercent", "exportToPercent", "start",
    "finish", "slot", "mode", "state", "dateTime", "duration", "chargeRate", "dischargeRate",
    "enable", "boost", "current", "rate", "value", "percent", "minutes", "",
)  # fmt: skip
_WORDS = (
    "enable", "disable", "Enable", "on", "off", "true", "false", "Eco", "Eco (Paused)",
    "Timed Demand", "Timed Export", "Cancel", "Normal", "Start", "Off", "Charge Only",
    "PauseCharge", "PauseBoth", "Disabled", "Load", "Battery", "Grid", "NaN", "inf", "-0",
    "null", "{}", "[]", "\u0000", "é", "💡", "DROP TABLE", " ",
)  # fmt: skip


def _random_time(rng: random.Random) -> str:
    h, m = rng.randrange(-2, 30), rng.randrange(-5, 75)
    return rng.choice([f"{h:02d}{m:02d}", f"{h:02d}:{m:02d}", f"{h}:{m}:{rng.randrange(70)}",
                       f"{h:02d}.{m:02d}", f"{h}h{m}", str(rng.randrange(3000))])  # fmt: skip


def random_scalar(rng: random.Random) -> object:
    """A value of the kinds GivTCP payloads carry, valid or not."""
    choice = rng.randrange(9)
    if choice == 0:
        return rng.randrange(-200, 200)
    if choice == 1:
        return str(rng.randrange(-10, 10_000))
    if choice == 2:
        return rng.choice([rng.uniform(-1e6, 1e6), 0.5, 99.9, 1e308, -0.0])
    if choice == 3:
        return rng.choice(_WORDS)
    if choice == 4:
        return _random_time(rng)
    if choice == 5:
        day, month = rng.randrange(0, 40), rng.randrange(0, 15)
        return f"{day:02d}/{month:02d}/{rng.randrange(1990, 2100)} {_random_time(rng)}"
    if choice == 6:
        return rng.choice([True, False, None])
    if choice == 7:
        return [random_scalar(rng) for _ in range(rng.randrange(3))]
    return rng.randbytes(rng.randrange(8)).decode("latin-1")


def random_payload(rng: random.Random, example: object = None) -> object:
    """A payload as MQTT or REST might carry it: none, a scalar, an object, or raw bytes.

    ``example`` (a valid payload of the function) is mutated about a third of the time, so
    that many inputs are valid or nearly so.
    """
    choice = rng.randrange(7)
    if choice == 0 and isinstance(example, dict):
        mutated = dict(example)
        key = rng.choice([*mutated, rng.choice(PAYLOAD_KEYS)])
        op = rng.randrange(3)
        if op == 0:
            mutated[key] = random_scalar(rng)
        elif op == 1:
            mutated.pop(key, None)
        else:
            mutated[rng.choice(PAYLOAD_KEYS) + rng.choice(["", "x", "_2"])] = random_scalar(rng)
        return mutated
    if choice == 1 and example is not None:
        return example
    if choice == 2:
        return None
    if choice == 3:
        return {rng.choice(PAYLOAD_KEYS): random_scalar(rng) for _ in range(rng.randrange(4))}
    if choice == 4:
        return rng.randbytes(rng.randrange(20))
    if choice == 5:
        text = rng.choice(['{"', '{"state":', '{"slot": "3", "start"', "[1,2", '"80"', "{}"])
        return text.encode()
    return random_scalar(rng)
