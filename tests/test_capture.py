"""Capture files: parsing both line formats, describing frames, and `capture decode`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from givtcp_async.errors import CaptureFormatError
from givtcp_async.protocol.capture import (
    CaptureRecord,
    decode_records,
    describe,
    load_capture,
    parse_line,
    read_capture,
)
from givtcp_async.protocol.frames import (
    ErrorResponse,
    FunctionCode,
    Heartbeat,
    ReadRequest,
    ReadResponse,
    WriteRequest,
    WriteResponse,
    decode_frame,
)
from givtcp_async.protocol.stream import FrameStream
from tests.conftest import CAPTURES, all_captures
from tests.test_frames import EXPECTED_CAPTURE_REJECTIONS

AIO = CAPTURES / "aio_a" / "aio_arm612_5min.jsonl"
GEN1 = CAPTURES / "hybrid_2_bat_a" / "hybrid_gen1_arm449_0x11_poll_10min.jsonl"
REQUEST = ReadRequest(0x11, FunctionCode.READ_INPUT, 0, 60)

# --- line parsing ----------------------------------------------------------------------------


def test_jsonl_line() -> None:
    hexed = REQUEST.encode().hex()
    rec = parse_line(
        json.dumps({"ts": "2026-05-29T07:55:09Z", "dir": "TX", "count": 3, "hex": hexed}), 7
    )
    assert rec == CaptureRecord(7, "2026-05-29T07:55:09Z", "tx", 3, REQUEST.encode())


def test_jsonl_line_defaults() -> None:
    rec = parse_line('{"dir": "rx", "hex": "5959"}', 1)
    assert rec == CaptureRecord(1, None, "rx", 1, b"\x59\x59")


@pytest.mark.parametrize(
    "hexed",
    [
        "59590001001c0102414231323334473536370000000000000008 11040000003cf28b",
        "59:59:00:01:00:1c:01:02:41:42:31:32:33:34:47:35:36:37:00:00:00:00:00:00:00:08:"
        "11:04:00:00:00:3c:f2:8b",
        "59590001001C010241423132333447353637000000000000000811040000003CF28B",
    ],
)
def test_plain_text_line(hexed: str) -> None:
    rec = parse_line(f"  12.345 rx {hexed}\n", 4)
    assert rec == CaptureRecord(4, "12.345", "rx", 1, REQUEST.encode())


@pytest.mark.parametrize("text", ["", "   ", "\n", "# a comment", "   # indented comment"])
def test_blank_and_comment_lines_are_skipped(text: str) -> None:
    assert parse_line(text, 1) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "invalid JSON"),
        ('{"dir": "rx", "hex": "5959"', "invalid JSON"),
        ('["rx", "5959"]', "expected '<timestamp> <rx|tx> <hex>'"),
        ('{"hex": "5959"}', "needs 'dir' and 'hex'"),
        ('{"dir": "rx"}', "needs 'dir' and 'hex'"),
        ('{"dir": "up", "hex": "5959"}', "dir must be rx or tx"),
        ('{"dir": "rx", "hex": "5959", "count": 0}', "count must be a positive integer"),
        ('{"dir": "rx", "hex": "5959", "count": "2"}', "count must be a positive integer"),
        ('{"dir": "rx", "hex": "595"}', "not a hex string"),
        ('{"dir": "rx", "hex": "zz"}', "not a hex string"),
        ('{"dir": "rx", "hex": ""}', "not a hex string"),
        ("12.3 rx", "expected '<timestamp> <rx|tx> <hex>'"),
        ("12.3 sideways 5959", "expected '<timestamp> <rx|tx> <hex>'"),
        ("5959000100", "expected '<timestamp> <rx|tx> <hex>'"),
        ("12.3 tx 59 5g", "not a hex string"),
    ],
)
def test_bad_lines_raise_with_the_line_number(text: str, reason: str) -> None:
    with pytest.raises(CaptureFormatError) as info:
        parse_line(text, 42)
    message = str(info.value)
    assert message.startswith("line 42: ")
    assert reason in message
    assert "\n" not in message


def test_read_capture_names_the_first_bad_line() -> None:
    lines = [
        "# header",
        f"1.0 tx {REQUEST.encode().hex()}",
        "",
        "2.0 rx nothex",
        "3.0 rx 5959",
    ]
    records = read_capture(lines)
    first = next(records)
    assert first.line == 2
    with pytest.raises(CaptureFormatError, match=r"^line 4: "):
        next(records)


def test_non_utf8_file_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "binary.txt"
    path.write_bytes(b"1.0 tx 5959\n2.0 rx \xff\xfe\n")
    with pytest.raises(CaptureFormatError, match="not UTF-8"):
        load_capture(path)


@pytest.mark.parametrize("path", all_captures(), ids=lambda p: p.name)
def test_every_shared_capture_loads_line_for_line(path: Path) -> None:
    lines = path.read_text().splitlines()
    records = load_capture(path)
    assert len(records) == len(lines)
    for rec, line in zip(records, lines, strict=True):
        obj = json.loads(line)
        assert rec.direction == obj["dir"]
        assert rec.count == obj["count"]
        assert rec.ts == obj["ts"]
        assert rec.data == bytes.fromhex(obj["hex"])


# --- describing frames -----------------------------------------------------------------------


def test_decode_records_describes_every_captured_frame() -> None:
    rejected: set[tuple[str, int]] = set()
    total = 0
    for path in all_captures():
        rel = str(path.relative_to(CAPTURES))
        records = load_capture(path)
        items = list(decode_records(records))
        # One description per line: every line is one whole frame.
        assert [i["line"] for i in items] == [r.line for r in records]
        for item, rec in zip(items, records, strict=True):
            total += 1
            assert item["direction"] == rec.direction
            assert item["count"] == rec.count
            assert item["ts"] == rec.ts
            if item["kind"] == "rejected":
                assert item["crc_ok"] is False
                assert "values" not in item
                rejected.add((rel, rec.line))
                continue
            frame = decode_frame(rec.data)
            assert item["kind"] == frame.kind
            if isinstance(frame, ReadResponse):
                assert item["crc_ok"] is True
                assert item["device_address"] == frame.device_address
                assert item["function"] == int(frame.function)
                assert item["base_register"] == frame.base_register
                assert item["register_count"] == frame.register_count
                assert item["values"] == list(frame.values)
                assert item["serial"] == frame.serial.decode()
                assert item["adapter_serial"] == frame.adapter_serial.decode()
    assert rejected == EXPECTED_CAPTURE_REJECTIONS
    assert total == 1639


def test_describe_each_kind() -> None:
    serial = b"SA1234G567"
    assert describe(REQUEST) == {
        "kind": "read_request",
        "crc_ok": True,
        "adapter_serial": "AB1234G567",
        "device_address": 0x11,
        "function": 4,
        "base_register": 0,
        "register_count": 60,
    }
    assert describe(WriteRequest(0x11, 20, 1))["register"] == 20
    assert describe(WriteResponse(0x11, serial, 20, 1)) == {
        "kind": "write_response",
        "crc_ok": True,
        "adapter_serial": "AB1234G567",
        "device_address": 0x11,
        "function": 6,
        "serial": "SA1234G567",
        "register": 20,
        "value": 1,
    }
    err = describe(ErrorResponse(0x11, 3, b"CH2414G000", 1100, 60))
    assert err["function"] == 0x83
    assert err["request_function"] == 3
    assert err["serial"] == "CH2414G000"
    assert (err["base_register"], err["register_count"]) == (1100, 60)
    hb = describe(Heartbeat(b"WF2125G000", 2))
    assert hb == {
        "kind": "heartbeat",
        "crc_ok": None,
        "adapter_serial": "WF2125G000",
        "adapter_type": 2,
    }
    resp = describe(ReadResponse(0x32, FunctionCode.READ_INPUT, serial, 60, (1, 2)))
    assert resp["values"] == [1, 2]
    assert resp["register_count"] == 2


def test_describe_rejected_frame_carries_no_values() -> None:
    raw = ReadResponse(0x11, FunctionCode.READ_INPUT, b"SA1234G567", 0, (7,) * 60).encode()
    bad = raw[:-2] + b"\x00\x00"
    [item] = FrameStream().feed_detailed(bad)
    out = describe(item)
    assert out["kind"] == "rejected"
    assert out["crc_ok"] is False
    assert out["claimed_kind"] == "read_response"
    assert out["device_address"] == 0x11
    assert out["length"] == len(bad)
    assert "values" not in out


def test_frames_split_across_lines_and_several_per_line() -> None:
    a = REQUEST.encode()
    b = WriteRequest(0x11, 20, 1).encode()
    resp = ReadResponse(0x11, FunctionCode.READ_INPUT, b"SA1234G567", 0, (5,) * 60).encode()
    lines = [
        f"1 tx {(a + b).hex()}",  # two frames on one line
        f"2 rx {resp[:50].hex()}",  # one frame over two lines,
        f"3 tx {a[:10].hex()}",  # interleaved with the other direction's partial frame
        f"4 rx {resp[50:].hex()}",
    ]
    items = list(decode_records(read_capture(lines)))
    assert [(i["line"], i["direction"], i["kind"]) for i in items] == [
        (1, "tx", "read_request"),
        (1, "tx", "write_request"),
        (4, "rx", "read_response"),
        (None, "tx", "incomplete"),
    ]
    assert items[-1]["length"] == 10


# --- the command line, as a real process -----------------------------------------------------


def cli() -> list[str]:
    script = Path(sys.executable).parent / "givtcp-async"
    return [str(script)] if script.exists() else [sys.executable, "-m", "givtcp_async"]


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli(), *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def parse_output(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_cli_capture_decode_prints_one_json_object_per_frame() -> None:
    proc = run_cli("capture", "decode", str(AIO))
    assert proc.returncode == 0, proc.stderr
    items = parse_output(proc.stdout)
    lines = AIO.read_text().splitlines()
    assert len(items) == len(lines)
    for item, line in zip(items, lines, strict=True):
        obj = json.loads(line)
        assert item["direction"] == obj["dir"]
        assert item["ts"] == obj["ts"]
        if item["kind"] == "rejected":
            assert item["crc_ok"] is False
            continue
        frame = decode_frame(bytes.fromhex(obj["hex"]))
        assert item["kind"] == frame.kind
        if isinstance(frame, ReadResponse):
            assert item["crc_ok"] is True
            assert item["device_address"] == frame.device_address
            assert item["function"] == int(frame.function)
            assert item["base_register"] == frame.base_register
            assert item["register_count"] == frame.register_count
            assert item["values"] == list(frame.values)
            assert item["serial"] == frame.serial.decode()
            assert item["adapter_serial"] == "WJ2414G000"
    kinds = [i["kind"] for i in items]
    assert kinds[0] == "rejected"  # line 1 is a CRC failure
    assert kinds.count("error_response") == 1
    error = next(i for i in items if i["kind"] == "error_response")
    # The serial is the serial, not an "exception code 67".
    assert error["serial"] == "CH2414G000"
    assert (error["function"], error["base_register"], error["register_count"]) == (
        0x83,
        1100,
        60,
    )
    heartbeats = [i for i in items if i["kind"] == "heartbeat"]
    assert {h["direction"] for h in heartbeats} == {"rx", "tx"}
    assert all(h["crc_ok"] is None for h in heartbeats)


def test_cli_capture_decode_direction_filter_and_stdin() -> None:
    text = GEN1.read_text()
    proc = run_cli("capture", "decode", "-", "--direction", "tx", stdin=text)
    assert proc.returncode == 0, proc.stderr
    items = parse_output(proc.stdout)
    tx_lines = [json.loads(line) for line in text.splitlines() if '"dir": "tx"' in line]
    assert len(items) == len(tx_lines) == 21
    requests = [i for i in items if i["kind"] == "read_request"]
    assert len(requests) == 20
    for req, line in zip(items, tx_lines, strict=True):
        frame = decode_frame(bytes.fromhex(line["hex"]))
        assert req["direction"] == "tx"
        assert req["kind"] == frame.kind
        if isinstance(frame, ReadRequest):
            assert req["crc_ok"] is True
            assert "values" not in req
            assert req["device_address"] == frame.device_address
            assert req["function"] == int(frame.function)
            assert (req["base_register"], req["register_count"]) == (
                frame.base_register,
                frame.register_count,
            )


def test_cli_capture_decode_plain_text_file(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    resp = ReadResponse(0x32, FunctionCode.READ_INPUT, b"BG2134G007", 60, tuple(range(60)))
    path.write_text(
        f"# plain capture\n0.000 tx {REQUEST.encode().hex()}\n0.250 rx {resp.encode().hex()}\n"
    )
    proc = run_cli("capture", "decode", str(path))
    assert proc.returncode == 0, proc.stderr
    req_item, resp_item = parse_output(proc.stdout)
    assert req_item["kind"] == "read_request"
    assert req_item["line"] == 2
    assert resp_item["values"] == list(range(60))
    assert resp_item["device_address"] == 0x32
    assert resp_item["serial"] == "BG2134G007"


def test_cli_nonexistent_file_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    proc = run_cli("capture", "decode", str(missing))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1
    assert str(missing) in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"dir": "rx", "hex": "5959"}\nnot a capture line\n', "line 2"),
        (b"1 tx 5959\n\n3 rx 59zz\n", "line 3"),
        (b"1 tx 5959\n2 rx \xff\xfe\n", "not UTF-8"),
    ],
    ids=["plain-garbage", "bad-hex", "binary"],
)
def test_cli_bad_line_exits_2_with_one_line(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    proc = run_cli("capture", "decode", str(path))
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert expected in proc.stderr
    assert proc.stderr.startswith("givtcp-async: ")
