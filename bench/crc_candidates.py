"""CRC-16/MODBUS implementations compared on every captured sub-frame (how fastcrc was chosen).

Each candidate computes the CRC of every sub-frame of the shared captures (device address to the
last data byte, ~126 bytes on average); each must agree with a bit-by-bit reference on every one.
Candidates that are not installed are skipped: pymodbus and fastcrc are dependencies; install
``anycrc crcmod crc`` to see the others.

Run: ``.venv/bin/python -m bench.crc_candidates``
"""

from __future__ import annotations

import importlib.util
import timeit
from collections.abc import Callable
from functools import partial

from bench.bench_codec import load_frames
from tests.test_frames import reference_crc

Crc = Callable[[bytes], int]


def reference(data: bytes) -> int:
    """The tests' bit-by-bit CRC (wire order: low byte first) as an integer."""
    return int.from_bytes(reference_crc(data), "little")


def _entry(i: int) -> int:
    for _ in range(8):
        i = (i >> 1) ^ 0xA001 if i & 1 else i >> 1
    return i


_TABLE = [_entry(i) for i in range(256)]


def table(data: bytes) -> int:
    """A 256-entry table in pure Python."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def candidates() -> dict[str, Crc]:
    """Every available candidate, as a function giving the CRC (low byte first on the wire)."""
    found: dict[str, Crc] = {"pure-Python table": table}
    if importlib.util.find_spec("pymodbus"):
        from pymodbus.framer.rtu import FramerRTU

        def pymodbus(data: bytes) -> int:
            crc = int(FramerRTU.compute_CRC(data))
            return ((crc & 0xFF) << 8) | (crc >> 8)

        found["pymodbus FramerRTU.compute_CRC"] = pymodbus
    if importlib.util.find_spec("fastcrc"):
        from fastcrc import crc16

        found["fastcrc (Rust)"] = crc16.modbus
    if importlib.util.find_spec("anycrc"):
        import anycrc  # type: ignore[import-not-found]

        found["anycrc (C)"] = anycrc.Model("CRC16-MODBUS").calc
    if importlib.util.find_spec("crcmod"):
        import crcmod.predefined  # type: ignore[import-not-found]

        found["crcmod (C extension)"] = crcmod.predefined.mkCrcFun("modbus")
    if importlib.util.find_spec("crc"):
        from crc import Calculator, Crc16  # type: ignore[import-not-found]

        found["crc (pure Python)"] = Calculator(Crc16.MODBUS.value, optimized=True).checksum
    return found


def _all(crc: Crc, subs: list[bytes]) -> list[int]:
    return [crc(s) for s in subs]


def main() -> None:
    frames, _ = load_frames()
    subs = [raw[26:-2] for raw in frames if len(raw) > 28 and raw[7] == 2]
    want = [reference(s) for s in subs]
    size = sum(map(len, subs)) / len(subs)
    print(f"{len(subs)} sub-frames, {size:.0f} bytes on average")
    for name, crc in candidates().items():
        if [crc(s) for s in subs] != want:
            print(f"{name:32s} DISAGREES with the reference")
            continue
        runs = 3 if name.startswith("crc (") else 20
        best = min(timeit.repeat(partial(_all, crc, subs), number=1, repeat=runs))
        print(f"{name:32s} {best / len(subs) * 1e6:8.2f} µs per sub-frame")


if __name__ == "__main__":
    main()
