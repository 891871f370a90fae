"""Turn arbitrary TCP chunks into whole, CRC-valid frames (SPEC §2.9).

Resynchronises on ``59 59 00 01``; skips garbage, truncated and spliced frames; never raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from givtcp_async.errors import CrcMismatch, FrameError, MalformedFrame
from givtcp_async.protocol.frames import (
    HEADER_LEN,
    MARKER,
    Frame,
    Heartbeat,
    LanConfigBroadcast,
    decode_frame,
    frame_length,
)


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
        total = frame_length(buf, pos)
        if total is None or len(buf) - pos < total:
            return False
        try:
            decode_frame(bytes(buf[pos : pos + total]))
        except FrameError:
            return False
        return True

    def _marker_inside(self, total: int) -> bool | None:
        """Does another frame start inside the first ``total`` bytes? None: not known yet.

        Only asked for heartbeats and LAN-config broadcasts, which carry no CRC: one cut
        short by the next frame would otherwise still decode and swallow that frame's first
        bytes. A marker may straddle the end, so up to 3 bytes past ``total`` are looked at;
        when they have not arrived and the last bytes could begin a marker, the answer waits.
        (Real heartbeats end in a serial digit and type 01/02, which never begin a marker.)
        """
        buf = self._buf
        if buf.find(MARKER, 1, total + len(MARKER) - 1) > 0:
            return True
        for pos in range(max(1, total - len(MARKER) + 1), total):
            seg = bytes(buf[pos : pos + len(MARKER)])
            if len(seg) < len(MARKER) and MARKER.startswith(seg):
                return None
        return False

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
            total = frame_length(buf)
            if total is None:
                self.stats.malformed += 1
                del buf[:1]
                continue
            if len(buf) < total:
                # A truncated frame followed by a whole one would otherwise hold the whole one
                # back until enough bytes arrive to complete the (bogus) declared length.
                inner = buf.find(MARKER, 1)
                while inner > 0 and not self._valid_frame_at(inner):
                    inner = buf.find(MARKER, inner + 1)  # several frames may be cut short
                if inner > 0:
                    self.stats.truncated += 1
                    del buf[:inner]
                    continue
                break
            raw = bytes(buf[:total])
            try:
                frame = decode_frame(raw)
                if isinstance(frame, Heartbeat | LanConfigBroadcast):
                    inside = self._marker_inside(total)
                    if inside is None:
                        break
                    if inside:
                        raise MalformedFrame(f"{frame.kind} cut short by the next frame")
            except FrameError as err:
                if isinstance(err, CrcMismatch):
                    self.stats.crc_failures += 1
                else:
                    self.stats.malformed += 1
                out.append(RejectedFrame(raw, err))
                # A spliced frame: resume at the next marker that starts inside it (it may
                # run past its end), else after it, keeping the last bytes when the rest of a
                # marker that starts there has not arrived yet.
                inner = buf.find(MARKER, 1)
                if 0 < inner < total:
                    cut = inner
                elif inner < 0:
                    cut = max(1, min(total, len(buf) - (len(MARKER) - 1)))
                else:
                    cut = total
                del buf[:cut]
                continue
            self.stats.frames += 1
            out.append(frame)
            del buf[:total]
        return out
