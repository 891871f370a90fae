"""Frames decoded per second over every reference capture (tests/fixtures), whole frames and
through the stream.

Run: ``.venv/bin/python -m bench.bench_codec [--seconds S]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Row
from givtcp_async.errors import FrameError
from givtcp_async.protocol.frames import Frame, decode_frame
from givtcp_async.protocol.stream import FrameStream

CAPTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "captures"


def load_frames() -> tuple[list[bytes], dict[str, bytes]]:
    """Every captured frame, and each direction's bytes of each capture joined up."""
    frames: list[bytes] = []
    streams: dict[str, bytes] = {}
    for path in sorted(CAPTURES.glob("*/*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            raw = bytes.fromhex(rec["hex"])
            frames.append(raw)
            key = f"{path.name}:{rec['dir']}"
            streams[key] = streams.get(key, b"") + raw
    return frames, streams


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

    results = [
        ("decode_frame, whole frames", rate(decode_whole, seconds)),
        ("FrameStream, 4096-byte chunks", rate(stream_chunks(4096), seconds)),
        ("FrameStream, 64-byte chunks", rate(stream_chunks(64), seconds)),
        ("FrameStream, 1-byte chunks", rate(stream_chunks(1), seconds / 2)),
        ("encode, valid frames", rate(encode_all, seconds)),
    ]
    for label, (per_second, _) in results:
        print(f"{label:32s} {per_second:12,.0f} frames/s  {1e6 / per_second:8.2f} µs/frame")
    return [
        Row(f"codec: {label}", f"{per_second:,.0f} frames/s ({1e6 / per_second:.0f} µs/frame)")
        for label, (per_second, _) in results[:2]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    measure(args.seconds)


if __name__ == "__main__":
    main()
