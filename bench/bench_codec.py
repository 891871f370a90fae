"""Frames decoded per second over every reference capture (tests/fixtures), whole frames and
through the stream.

Run: ``.venv/bin/python -m bench.bench_codec [--seconds S]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench.common import Row, quiet_logs
from givtcp_async.errors import FrameError
from givtcp_async.protocol.frames import Frame, decode_frame
from givtcp_async.protocol.stream import FrameStream

CAPTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "captures"


def load_frames() -> tuple[list[bytes], dict[str, bytes]]:
    """Every captured frame, and each direction's bytes of each capture joined up."""
    directed = load_directed()
    streams: dict[str, bytes] = {}
    for key, raw in directed:
        streams[key] = streams.get(key, b"") + raw
    return [raw for _, raw in directed], streams


def load_directed() -> list[tuple[str, bytes]]:
    """Every captured frame with its capture's name and direction ("file:rx" or "file:tx")."""
    out: list[tuple[str, bytes]] = []
    for path in sorted(CAPTURES.glob("*/*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            out.append((f"{path.name}:{rec['dir']}", bytes.fromhex(rec["hex"])))
    return out


def peer_decode_whole(directed: list[tuple[str, bytes]]) -> Callable[[], int]:
    """givenergy-modbus 2.13.0 decoding the same frames: what the dongle sent (rx) as a
    client reads it, what clients sent (tx) as the dongle would; its read responses check the
    CRC as ours do (``_validate_check_code``)."""
    from givenergy_modbus.pdu import ClientIncomingMessage, ServerIncomingMessage

    work = [
        (ClientIncomingMessage if key.endswith(":rx") else ServerIncomingMessage, raw)
        for key, raw in directed
    ]

    def run() -> int:
        for cls, raw in work:
            with contextlib.suppress(Exception):
                cls.decode_bytes(raw)
        return len(work)

    return run


def rate(work: Callable[[], int], seconds: float) -> tuple[float, int]:
    """Frames per second of ``work`` (which returns the frames it handled), best of runs."""
    work()  # warm-up
    best = 0.0
    total = 0
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        n = work()
        elapsed = time.perf_counter() - start
        total += n
        best = max(best, n / elapsed)
        if time.perf_counter() >= deadline:
            return best, total


def measure(seconds: float) -> list[Row]:
    """Print the rates; the summary rows (whole-frame decode and 4096-byte stream chunks)."""
    directed = load_directed()
    frames, streams = load_frames()
    decoded: list[Frame] = []
    bad = 0
    for raw in frames:
        try:
            decoded.append(decode_frame(raw))
        except FrameError:
            bad += 1
    total_bytes = sum(len(f) for f in frames)
    print(
        f"corpus: {len(frames)} captured frames ({bad} with a bad CRC), "
        f"{total_bytes} bytes, {len(streams)} direction streams"
    )

    def decode_whole() -> int:
        n = 0
        for raw in frames:
            with contextlib.suppress(FrameError):
                decode_frame(raw)
            n += 1
        return n

    def stream_chunks(size: int) -> Callable[[], int]:
        chunked = [
            [blob[i : i + size] for i in range(0, len(blob), size)] for blob in streams.values()
        ]

        def run() -> int:
            n = 0
            for chunks in chunked:
                stream = FrameStream()
                for chunk in chunks:
                    n += len(stream.feed(chunk))
            return n

        return run

    def encode_all() -> int:
        for frame in decoded:
            frame.encode()
        return len(decoded)

    peer = rate(peer_decode_whole(directed), seconds)
    results = [
        ("decode_frame, whole frames", rate(decode_whole, seconds)),
        ("FrameStream, 4096-byte chunks", rate(stream_chunks(4096), seconds)),
        ("FrameStream, 64-byte chunks", rate(stream_chunks(64), seconds)),
        ("FrameStream, 1-byte chunks", rate(stream_chunks(1), seconds / 2)),
        ("encode, valid frames", rate(encode_all, seconds)),
    ]
    for label, (per_second, _) in [*results, ("givenergy-modbus 2.13.0, whole frames", peer)]:
        print(f"{label:38s} {per_second:12,.0f} frames/s  {1e6 / per_second:8.2f} µs/frame")
    ours = results[0][1][0]
    print(f"decode_frame / givenergy-modbus: {ours / peer[0]:.1f} x")
    rows = [
        Row(
            f"codec: {label} ({len(frames):,} real frames, CRC checked)"
            if not i
            else f"codec: {label}",
            f"{per_second:,.0f} frames/s ({1e6 / per_second:.1f} µs/frame)",
            f"peer {peer[0]:,.0f} frames/s; {per_second / peer[0]:.1f} x the peer",
        )
        for i, (label, (per_second, _)) in enumerate(results[:2])
    ]
    rows[0] = replace(rows[0], metric="codec.decode_vs_peer", number=ours / peer[0],
                      higher_is_better=True)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    quiet_logs(logging.CRITICAL)  # the peer logs each bad CRC it sees
    measure(args.seconds)


if __name__ == "__main__":
    main()
