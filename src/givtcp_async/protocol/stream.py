"""Turn arbitrary TCP chunks into whole, CRC-valid frames (SPEC §2.9).

Resynchronises on ``59 59 00 01``; skips garbage, truncated and spliced frames; never raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from givtcp_async.errors import CrcMismatch, FrameError
from givtcp_async.protocol.frames import HEADER_LEN, MARKER, Frame, decode_frame, frame_length


@dataclass(slots=True)
class StreamStats:
    """Counters of what the stream decoder saw."""

    frames: int = 0
    crc_failures: int = 0
    malformed: int = 0
    truncated: int = 0
    garbage_bytes: int = 0


@dataclass(frozen=True, slots=True)
class RejectedFrame:
    """A whole frame that failed to decode (CRC or layout); never carries values."""

    raw: bytes
    error: FrameError


class FrameStream:
    """Incremental frame decoder.

    Between calls the buffer holds less than one frame (at most ``MAX_FRAME_LEN`` bytes):
    anything that cannot start a frame is dropped at once.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.stats = StreamStats()

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame (after a reconnect)."""
        self._buf.clear()

    def feed(self, data: bytes) -> list[Frame]:
        """The valid frames completed by ``data``, in order."""
        return [f for f in self.feed_detailed(data) if not isinstance(f, RejectedFrame)]

    def _valid_frame_at(self, pos: int) -> bool:
        """True if a complete frame that decodes cleanly starts at ``pos``."""
        buf = self._buf
        total = frame_length(bytes(buf[pos : pos + HEADER_LEN]))
        if total is None or len(buf) - pos < total:
            return False
        try:
            decode_frame(bytes(buf[pos : pos + total]))
        except FrameError:
            return False
        return True

    def feed_detailed(self, data: bytes) -> list[Frame | RejectedFrame]:
        """Valid frames and rejected whole frames completed by ``data``, in stream order."""
        buf = self._buf
        buf += data
        out: list[Frame | RejectedFrame] = []
        while True:
            start = buf.find(MARKER)
            if start < 0:
                keep = min(len(buf), len(MARKER) - 1)  # a marker may straddle two chunks
                self.stats.garbage_bytes += len(buf) - keep
                del buf[: len(buf) - keep]
                break
            if start:
                self.stats.garbage_bytes += start
                del buf[:start]
            if len(buf) < HEADER_LEN:
                break
            total = frame_length(bytes(buf[:HEADER_LEN]))
            if total is None:
                self.stats.malformed += 1
                del buf[:1]
                continue
            if len(buf) < total:
                # A truncated frame followed by a whole one would otherwise hold the whole one
                # back until enough bytes arrive to complete the (bogus) declared length.
                inner = buf.find(MARKER, 1)
                if inner > 0 and self._valid_frame_at(inner):
                    self.stats.truncated += 1
                    del buf[:inner]
                    continue
                break
            raw = bytes(buf[:total])
            try:
                frame = decode_frame(raw)
            except FrameError as err:
                if isinstance(err, CrcMismatch):
                    self.stats.crc_failures += 1
                else:
                    self.stats.malformed += 1
                out.append(RejectedFrame(raw, err))
                # A spliced frame: resume at the next marker inside it, else after it.
                inner = buf.find(MARKER, 1, total)
                del buf[: inner if inner > 0 else total]
                continue
            self.stats.frames += 1
            out.append(frame)
            del buf[:total]
        return out
