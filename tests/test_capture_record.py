"""``capture record``: a full read of a plant as a capture, every serial replaced by a stand-in.

The anonymiser runs over every reference capture (each family); the command records the
simulated plant over TCP, and the file it writes decodes, holds none of the plant's serials,
and is served by ``simulate --capture``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from givtcp_async.errors import CrcMismatch, FrameError
from givtcp_async.protocol.capture import load_capture
from givtcp_async.protocol.frames import (
    TRANSPARENT_PREFIX_LEN,
    ReadResponse,
    crc16,
    decode_frame,
    serial_text,
)
from givtcp_async.recording import Anonymiser, Chunk, capture_lines, recorded_frames
from givtcp_async.simulator.plant import Plant, PlantConfig
from tests.conftest import all_captures
from tests.sim_support import simulate_capture
from tests.test_cli import clean_env, cli

FAST = clean_env(GIVTCP_INVERTERS__0__PACING="0")


def _chunks(path: Path) -> list[Chunk]:
    now = datetime.now(UTC)
    return [
        Chunk(now, rec.direction, rec.data) for rec in load_capture(path) for _ in range(rec.count)
    ]


def _swapped(serial: bytes) -> bytes:
    return b"".join(serial[i : i + 2][::-1] for i in range(0, len(serial), 2))


@pytest.mark.parametrize("path", all_captures(), ids=lambda p: p.name)
def test_every_reference_capture_anonymises_to_valid_frames(path: Path) -> None:
    frames = recorded_frames(_chunks(path))
    anonymiser = Anonymiser()
    anonymiser.learn(frames)
    serials = {s for s in anonymiser.stand_ins if s not in anonymiser.stand_ins.values()}
    assert anonymiser.serials >= 1  # every capture names at least its dongle
    for item in frames:
        out = anonymiser.apply(item.raw)
        assert len(out) == len(item.raw)
        assert not any(s in out for s in serials), item
        if item.frame is not None:  # a frame that decoded still decodes, CRC and all
            again = decode_frame(out)
            assert again.kind == item.frame.kind
            if isinstance(item.frame, ReadResponse):
                assert isinstance(again, ReadResponse)
                assert again.shape == item.frame.shape
        else:  # one that arrived broken stays broken
            with pytest.raises(FrameError):
                decode_frame(out)


def test_stand_ins_are_consistent_and_keep_the_device_prefix() -> None:
    path = next(p for p in all_captures() if p.name.startswith("hybrid_gen1"))
    frames = recorded_frames(_chunks(path))
    anonymiser = Anonymiser()
    anonymiser.learn(frames)
    responses = [
        f.frame for f in frames if isinstance(f.frame, ReadResponse) and f.direction == "rx"
    ]
    inverter = responses[0].serial
    stand_in = anonymiser.stand_ins[inverter]
    assert stand_in != inverter
    assert stand_in[:2] == inverter[:2]
    assert len(stand_in) == 10
    assert anonymiser.stand_ins[_swapped(inverter)] == _swapped(stand_in)
    renamed = {anonymiser.apply(f.raw)[TRANSPARENT_PREFIX_LEN + 2 : TRANSPARENT_PREFIX_LEN + 12]
               for f in frames if f.frame in responses}  # fmt: skip
    assert stand_in in renamed  # the same stand-in in every response of the inverter


def test_a_frame_whose_crc_was_bad_is_not_repaired() -> None:
    path = next(p for p in all_captures() if p.name.startswith("hybrid_gen1"))
    good = next(f for f in recorded_frames(_chunks(path)) if isinstance(f.frame, ReadResponse))
    broken = good.raw[:-1] + bytes([good.raw[-1] ^ 0xFF])
    anonymiser = Anonymiser()
    anonymiser.learn([good])
    with pytest.raises(CrcMismatch):
        decode_frame(anonymiser.apply(broken))
    fixed = anonymiser.apply(good.raw)
    sub = fixed[TRANSPARENT_PREFIX_LEN:]
    assert crc16(sub[:-2]) == int.from_bytes(sub[-2:], "big")


def test_identical_frames_in_a_row_are_one_line_with_a_count() -> None:
    path = next(p for p in all_captures() if p.name.startswith("hybrid_gen1"))
    frames = recorded_frames(_chunks(path))[:1] * 3
    anonymiser = Anonymiser()
    anonymiser.learn(frames)
    [line] = capture_lines(frames, anonymiser)
    record = json.loads(line)
    assert list(record) == ["ts", "dir", "count", "hex"]
    assert record["count"] == 3


# --- the command, against the simulator -----------------------------------------------------


async def test_capture_record_anonymises_a_plant_and_simulate_serves_it(tmp_path: Path) -> None:
    plant = Plant(PlantConfig(seed=7, batteries=2))
    originals = {plant.serial, plant.dongle_serial, *plant.battery_serials}
    out = tmp_path / "my-plant.jsonl"
    async with plant.simulator() as sim:
        code, stdout, err = await cli(
            "capture", "record", "--host", "127.0.0.1", "--port", str(sim.port), "--no-meters",
            "-o", str(out), cwd=tmp_path, env=FAST,
        )  # fmt: skip
    assert code == 0, err
    assert stdout == ""
    assert "serial(s) replaced by stand-ins" in err
    records = load_capture(out)
    assert {r.direction for r in records} == {"rx", "tx"}
    data = b"".join(r.data for r in records)
    for serial in originals:
        raw = serial.encode()
        assert raw not in data, serial
        assert _swapped(raw) not in data, serial
        assert serial not in out.read_text(), serial

    code, decoded, err = await cli("capture", "decode", str(out), cwd=tmp_path)
    assert code == 0, err
    items = [json.loads(line) for line in decoded.splitlines()]
    assert len(items) >= len(records)
    assert not [i for i in items if i["kind"] == "rejected"]
    responses = [i for i in items if i["kind"] == "read_response"]
    assert responses

    async with simulate_capture(out, env=FAST) as port:
        code, tree_text, err = await cli(
            "read", "--host", "127.0.0.1", "--port", str(port), "--no-meters", "--compact",
            cwd=tmp_path, env=FAST,
        )  # fmt: skip
    assert code == 0, err
    tree = json.loads(tree_text)
    shown = tree["raw"]["invertor"]["serial_number"]
    assert tree[shown]["Invertor_Serial_Number"] == shown  # GivTCP 3.5's layout: under the serial
    assert shown not in originals
    assert shown[:2] == plant.serial[:2]
    assert {serial_text(r.serial) for r in _responses(out)} == {shown}


def _responses(path: Path) -> list[ReadResponse]:
    frames = [decode_frame(r.data) for r in load_capture(path) if r.direction == "rx"]
    return [f for f in frames if isinstance(f, ReadResponse)]


async def test_capture_record_writes_nothing_when_the_inverter_cannot_be_read(
    tmp_path: Path,
) -> None:
    from tests.servers import free_port

    out = tmp_path / "none.jsonl"
    code, _, err = await cli(
        "capture", "record", "--host", "127.0.0.1", "--port", str(free_port()), "--timeout", "1",
        "-o", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert code == 1
    assert "cannot read the inverter" in err
    assert not out.exists()
