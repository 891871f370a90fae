"""FrameStream: arbitrary TCP chunks in, whole CRC-valid frames out (SPEC §2.9)."""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import struct
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from givtcp_async.errors import CrcMismatch, MalformedFrame
from givtcp_async.protocol.frames import (
    MARKER,
    MAX_FRAME_LEN,
    MAX_READ_COUNT,
    ErrorResponse,
    Frame,
    FunctionCode,
    Heartbeat,
    LanConfigBroadcast,
    NullResponse,
    ReadRequest,
    ReadResponse,
    WriteRequest,
    WriteResponse,
    decode_frame,
)
from givtcp_async.protocol.stream import FrameStream, RejectedFrame
from tests.conftest import all_captures
from tests.test_frames import reference_crc

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies ------------------------------------------------------------------------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
serials = st.binary(min_size=10, max_size=10)
units = st.sampled_from([0, 1])
read_functions = st.sampled_from(
    [FunctionCode.READ_HOLDING, FunctionCode.READ_INPUT, FunctionCode.READ_METER_PRODUCT]
)

read_requests = st.builds(
    ReadRequest, u8, read_functions, u16, st.integers(1, MAX_READ_COUNT), serials, units
)
write_requests = st.builds(WriteRequest, u8, u16, u16, serials, units)
read_responses = st.builds(
    ReadResponse,
    u8,
    read_functions,
    serials,
    u16,
    st.lists(u16, max_size=131).map(tuple),  # 131 registers fill the largest frame
    serials,
    units,
)
write_responses = st.builds(WriteResponse, u8, serials, u16, u16, serials, units)
error_responses = st.builds(
    ErrorResponse, u8, st.integers(0, 0x7F), serials, u16, u16, serials, units
)
null_responses = st.builds(NullResponse, u8, st.binary(min_size=4, max_size=276), serials, units)
heartbeats = st.builds(Heartbeat, serials, u8, units)


def unambiguous(frame: Frame) -> bool:
    """False for a CRC-less frame whose last bytes could begin the next frame's marker.

    Heartbeats and LAN broadcasts carry no CRC, so the stream holds one ending in 59, 59 59
    or 59 59 00 until the next bytes show whether it was cut short by another frame (tested
    on its own below). Every such frame still round-trips through decode_frame.
    """
    if not isinstance(frame, Heartbeat | LanConfigBroadcast):
        return True
    raw = frame.encode()
    return not any(MARKER.startswith(raw[-k:]) for k in range(1, len(MARKER)))


@st.composite
def lan_configs(draw: st.DrawFn) -> LanConfigBroadcast:
    octets = st.integers(0, 255).map(str)
    ip = ".".join(draw(st.lists(octets, min_size=4, max_size=4)))
    text = f",{ip},255.255.255.0,{ip}\r\n\r\n".encode()
    body = draw(serials) + bytes(7) + text + draw(st.binary(min_size=2, max_size=2))
    raw = MARKER + struct.pack(">HBB", len(body) + 2, 1, 2) + body
    frame = decode_frame(raw)
    assert isinstance(frame, LanConfigBroadcast)
    return frame


any_frames: st.SearchStrategy[Frame] = st.one_of(
    read_requests,
    write_requests,
    read_responses,
    write_responses,
    error_responses,
    null_responses,
    heartbeats,
    lan_configs(),
)
stream_frames: st.SearchStrategy[Frame] = st.one_of(
    read_requests,
    write_requests,
    read_responses,
    write_responses,
    error_responses,
    null_responses,
    heartbeats,
    lan_configs(),
).filter(unambiguous)
garbage = st.binary(max_size=40).filter(lambda b: MARKER not in b)


# --- helpers ---------------------------------------------------------------------------------


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``data`` cut at the given positions (taken modulo its length, in order)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def feed_all(stream: FrameStream, chunks: Sequence[bytes]) -> list[Frame]:
    out: list[Frame] = []
    for chunk in chunks:
        out += stream.feed(chunk)
        assert stream.buffered < MAX_FRAME_LEN  # (e) never a whole frame's worth held
    return out


def wire_image(frame: Frame) -> bytes:
    """The bytes a frame is made of on the wire from which a decode must have come.

    Heartbeats and LAN broadcasts: the whole frame. Transparent frames: the sub-frame from
    offset 26 with its CRC, computed here (the 8-byte length field is not covered by the CRC,
    so a decoded frame may have arrived with another value there).
    """
    if isinstance(frame, Heartbeat | LanConfigBroadcast):
        return frame.encode()
    if isinstance(frame, ReadRequest):
        # Decoding accepts any count seen on the wire; encode() only produces 1..60.
        sub = struct.pack(
            ">BBHH", frame.device_address, frame.function, frame.base_register, frame.register_count
        )
        return sub + reference_crc(sub)
    image = frame.encode()[26:]
    assert reference_crc(image[:-2]) == image[-2:]
    return image


# --- (a) anything in, only CRC-valid frames out, never an exception ---------------------------


@st.composite
def hostile_bytes(draw: st.DrawFn) -> bytes:
    """Random bytes, valid frames, and valid frames with bytes flipped, cut, or inserted."""
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 6))):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            parts.append(draw(st.binary(max_size=80)))
            continue
        raw = bytearray(draw(stream_frames).encode())
        if choice == 2:
            pos = draw(st.integers(0, len(raw) - 1))
            raw[pos] ^= draw(st.integers(1, 255))
        elif choice == 3:
            pos = draw(st.integers(0, len(raw)))
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=8))
            raw = raw[: draw(st.integers(1, len(raw)))]
        parts.append(bytes(raw))
    return b"".join(parts)


@PROPERTY
@given(data=hostile_bytes(), cuts=st.lists(st.integers(0, 10_000), max_size=20))
def test_any_bytes_in_any_chunking_never_raise_and_yield_only_crc_valid_frames(
    data: bytes, cuts: list[int]
) -> None:
    stream = FrameStream()
    frames = feed_all(stream, split(data, cuts))
    images: dict[bytes, int] = {}
    for frame in frames:
        image = wire_image(frame)
        images[image] = images.get(image, 0) + 1
    for image, n in images.items():
        # Each frame came from bytes in the input that carry this very (valid) CRC.
        assert data.count(image) >= n
    assert stream.stats.frames == len(frames)


@PROPERTY
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 10_000), max_size=30))
def test_random_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    stream = FrameStream()
    for frame in feed_all(stream, split(data, cuts)):
        image = wire_image(frame)
        assert image in data


# --- (b) encode then decode is the identity --------------------------------------------------


@PROPERTY
@given(frame=any_frames)
def test_encode_then_decode_is_identity(frame: Frame) -> None:
    raw = frame.encode()
    assert decode_frame(raw) == frame
    assert decode_frame(raw).encode() == raw


@PROPERTY
@given(frame=stream_frames)
def test_stream_yields_an_encoded_frame_unchanged(frame: Frame) -> None:
    stream = FrameStream()
    assert stream.feed(frame.encode()) == [frame]
    assert stream.buffered == 0


@pytest.mark.parametrize(
    "strategy",
    [
        read_requests,
        write_requests,
        read_responses,
        write_responses,
        error_responses,
        null_responses,
        heartbeats,
    ],
    ids=["read_req", "write_req", "read_resp", "write_resp", "error", "null", "heartbeat"],
)
def test_each_frame_kind_round_trips(strategy: st.SearchStrategy[Frame]) -> None:
    @settings(max_examples=60, deadline=None)
    @given(frame=strategy)
    def check(frame: Frame) -> None:
        decoded = decode_frame(frame.encode())
        assert type(decoded) is type(frame)
        assert decoded == frame

    check()


# --- (c) frames with garbage between, split anywhere -----------------------------------------


@PROPERTY
@given(
    items=st.lists(st.tuples(garbage, stream_frames), max_size=8),
    tail=garbage,
    cuts=st.lists(st.integers(0, 100_000), max_size=40),
)
def test_frames_with_garbage_between_come_out_in_order(
    items: list[tuple[bytes, Frame]], tail: bytes, cuts: list[int]
) -> None:
    frames = [f for _, f in items]
    data = b"".join(g + f.encode() for g, f in items) + tail
    stream = FrameStream()
    assert feed_all(stream, split(data, cuts)) == frames
    assert stream.stats.frames == len(frames)


@PROPERTY
@given(frames=st.lists(stream_frames, min_size=1, max_size=6), seed=st.integers(0, 2**32))
def test_byte_at_a_time_equals_all_at_once(frames: list[Frame], seed: int) -> None:
    data = b"".join(f.encode() for f in frames)
    assert FrameStream().feed(data) == frames
    one_by_one = feed_all(FrameStream(), [data[i : i + 1] for i in range(len(data))])
    assert one_by_one == frames
    rng = random.Random(seed)
    cuts = [rng.randrange(len(data)) for _ in range(rng.randrange(1, 12))]
    assert feed_all(FrameStream(), split(data, cuts)) == frames


# --- (d) truncated and spliced frames --------------------------------------------------------


@PROPERTY
@given(
    cut_frames=st.lists(st.tuples(stream_frames, st.floats(0, 1)), min_size=1, max_size=3),
    good=st.lists(stream_frames, min_size=1, max_size=3),
    cuts=st.lists(st.integers(0, 100_000), max_size=20),
)
def test_truncated_frames_followed_by_valid_ones_yield_the_valid_ones(
    cut_frames: list[tuple[Frame, float]], good: list[Frame], cuts: list[int]
) -> None:
    prefix = b""
    for frame, fraction in cut_frames:
        raw = frame.encode()
        # At least the marker, strictly shorter than the frame. (A fragment of 1-3 bytes is
        # a stray byte, not a frame: a heartbeat cut at 18 bytes and completed by one stray
        # byte is a valid heartbeat, and nothing without a CRC can tell them apart.)
        prefix += raw[: len(MARKER) + int(fraction * (len(raw) - 1 - len(MARKER)))]
    data = prefix + b"".join(f.encode() for f in good)
    stream = FrameStream()
    assert feed_all(stream, split(data, cuts)) == good


@PROPERTY
@given(
    frame=stream_frames,
    fraction=st.floats(0, 1),
    after=st.lists(stream_frames, max_size=2),
    cuts=st.lists(st.integers(0, 100_000), max_size=20),
)
def test_spliced_frame_yields_the_whole_one(
    frame: Frame, fraction: float, after: list[Frame], cuts: list[int]
) -> None:
    raw = frame.encode()
    spliced = raw[: int(fraction * (len(raw) - 1))] + raw  # what the SPLICE fault sends
    data = spliced + b"".join(f.encode() for f in after)
    assert feed_all(FrameStream(), split(data, cuts)) == [frame, *after]


def test_truncated_heartbeat_does_not_swallow_the_next_frame() -> None:
    hb = Heartbeat(b"WF2125G000", 1).encode()
    request = ReadRequest(0x11, FunctionCode.READ_INPUT, 0, 60)
    for keep in range(1, len(hb)):
        stream = FrameStream()
        out = stream.feed_detailed(hb[:keep] + request.encode())
        assert [f for f in out if not isinstance(f, RejectedFrame)] == [request], keep
        if keep >= 8:
            assert stream.stats.malformed >= 1


def test_heartbeat_ending_like_a_marker_waits_for_the_next_bytes() -> None:
    hb = Heartbeat(b"WF2125G000", 0x59)
    stream = FrameStream()
    assert stream.feed(hb.encode()) == []  # could be cut short by a frame starting "59 ..."
    assert stream.buffered == 19
    assert stream.feed(b"\x00") == [hb]  # not a marker: it was a whole heartbeat
    hb2 = Heartbeat(b"WF2125G000", 0x59)
    request = ReadRequest(0x11, FunctionCode.READ_INPUT, 0, 60)
    stream = FrameStream()
    assert stream.feed(hb2.encode()) == []
    assert stream.feed(request.encode()[1:]) == [request]  # it was cut short after all


def test_garbage_then_frame_counts_the_garbage() -> None:
    request = ReadRequest(0x11, FunctionCode.READ_INPUT, 0, 60)
    stream = FrameStream()
    assert stream.feed(b"\x00" * 100) == []
    assert stream.buffered <= 3
    assert stream.feed(b"\x59\x59" + request.encode()) == [request]
    assert stream.stats.garbage_bytes == 102


def test_marker_split_across_chunks() -> None:
    request = WriteRequest(0x11, 20, 1)
    raw = request.encode()
    for i in range(1, 8):
        stream = FrameStream()
        assert stream.feed(b"junk" + raw[:i]) == []
        assert stream.feed(raw[i:]) == [request]


def test_bad_crc_is_rejected_counted_and_reported() -> None:
    good = ReadRequest(0x11, FunctionCode.READ_INPUT, 0, 60).encode()
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])
    stream = FrameStream()
    out = stream.feed_detailed(bad + good)
    assert len(out) == 2
    rejected = out[0]
    assert isinstance(rejected, RejectedFrame)
    assert rejected.raw == bad
    assert isinstance(rejected.error, CrcMismatch)
    assert out[1] == decode_frame(good)
    assert stream.stats.crc_failures == 1
    assert stream.stats.frames == 1


def test_insane_header_is_skipped() -> None:
    good = WriteRequest(0x11, 20, 1).encode()
    insane = MARKER + b"\x00\x1c\x07\x02" + bytes(20)  # unit id 7
    stream = FrameStream()
    assert stream.feed(insane + good) == [decode_frame(good)]
    assert stream.stats.malformed >= 1


def test_reset_forgets_a_partial_frame() -> None:
    raw = ReadRequest(0x11, FunctionCode.READ_INPUT, 0, 60).encode()
    stream = FrameStream()
    assert stream.feed(raw[:20]) == []
    assert stream.buffered == 20
    stream.reset()
    assert stream.buffered == 0
    assert stream.feed(raw) == [decode_frame(raw)]


def test_malformed_whole_frame_is_reported_without_values() -> None:
    good = ReadResponse(0x11, FunctionCode.READ_INPUT, b"SA1234G567", 0, (1, 2, 3)).encode()
    sub = bytearray(good[26:-2])
    sub[14:16] = (9).to_bytes(2, "big")  # announces 9 registers, carries 3
    raw = good[:26] + bytes(sub) + reference_crc(bytes(sub))
    out = FrameStream().feed_detailed(raw)
    assert len(out) == 1
    assert isinstance(out[0], RejectedFrame)
    assert isinstance(out[0].error, MalformedFrame)


# --- every capture through the stream --------------------------------------------------------


@pytest.mark.parametrize("path", all_captures(), ids=lambda p: p.name)
def test_capture_replays_through_the_stream_in_random_chunkings(path: Path) -> None:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    expected: dict[str, list[Frame]] = {"rx": [], "tx": []}
    crc_bad = {"rx": 0, "tx": 0}
    data = {"rx": b"", "tx": b""}
    for rec in records:
        raw = bytes.fromhex(rec["hex"])
        data[rec["dir"]] += raw
        try:
            expected[rec["dir"]].append(decode_frame(raw))
        except CrcMismatch:
            crc_bad[rec["dir"]] += 1
    rng = random.Random(path.name)
    for direction in ("rx", "tx"):
        blob = data[direction]
        for _ in range(5):
            cuts = [rng.randrange(len(blob) + 1) for _ in range(rng.randrange(0, 400))]
            stream = FrameStream()
            assert feed_all(stream, split(blob, cuts)) == expected[direction]
            assert stream.stats.crc_failures == crc_bad[direction]
            assert stream.buffered == 0
        # And byte by byte, the hardest chunking of all.
        stream = FrameStream()
        assert feed_all(stream, [blob[i : i + 1] for i in range(len(blob))]) == expected[direction]


def test_captures_with_garbage_between_frames() -> None:
    rng = random.Random(7)
    for path in all_captures():
        frames: list[Frame] = []
        blob = b""
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            raw = bytes.fromhex(rec["hex"])
            with contextlib.suppress(CrcMismatch):
                frames.append(decode_frame(raw))
            # No 0x59 in the junk, so it can never hold or complete a marker.
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 30)))
            blob += junk.replace(b"\x59", b"\x58") + raw
        cuts = [rng.randrange(len(blob) + 1) for _ in range(200)]
        assert feed_all(FrameStream(), split(blob, cuts)) == frames, path.name
