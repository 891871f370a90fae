"""Hostile input from outside (issue 15, points 11-14 and 17): numbers, JSON, HTTP bodies and
headers, configuration files; the log file's mode and the docs page's policy."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest

from givtcp_async.cli import main as _main
from givtcp_async.config import LoggingConfig, load_config, masked
from givtcp_async.control.catalogue import CATALOGUE
from givtcp_async.errors import ConfigError, ValidationFailed
from givtcp_async.logging_setup import configure_logging, reset_logging
from tests.control_support import model_of
from tests.rest_support import rest_rig

MODEL = model_of("gen3")


# --- 14: numbers are ASCII digits with an optional decimal part; JSON keys once ---------------


@pytest.mark.parametrize(
    "raw",
    [
        "８０",  # fullwidth
        "٨٠",  # Arabic-Indic
        "+80",
        "1e2",
        '{"chargeToPercent": "1e2"}',
        '{"chargeToPercent": 1e2}',
        '{"chargeToPercent": "８０"}',
        '{"chargeToPercent": "80", "chargeToPercent": "90"}',
        '{"chargeToPercent": NaN}',
        "80.5",
    ],
)
def test_numbers_other_than_plain_decimals_and_duplicate_keys_are_refused(raw: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        CATALOGUE.resolve("setChargeTarget", raw, MODEL)
    assert err.value.errors
    assert err.value.errors[0]["field"] in ("payload", "chargeToPercent")


@pytest.mark.parametrize("raw", ["80", " 80 ", "80.0", '{"chargeToPercent": 80.0}', 80, 80.0])
def test_plain_decimals_as_home_assistant_sends_them_are_accepted(raw: object) -> None:
    _fn, payload = CATALOGUE.resolve("setChargeTarget", raw, MODEL)  # type: ignore[arg-type]
    assert payload.model_dump()["chargeToPercent"] == 80


def test_times_take_ascii_digits_only() -> None:
    for raw in ("０１:３０", "٠١٣٠"):
        with pytest.raises(ValidationFailed):
            CATALOGUE.resolve("setChargeStart1", raw, MODEL)
    _fn, payload = CATALOGUE.resolve("setChargeStart1", "01:30", MODEL)
    assert payload.model_dump()["time"] == 130


# --- 11 and 17 over REST: never a 500, bounded waiting, the docs' policy ------------------------


async def _raw_post(port: int, path: str, headers: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """A POST written byte by byte (a client library would refuse non-UTF-8 header bytes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            + headers + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )  # fmt: skip
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


async def test_rest_answers_hostile_bodies_and_headers_with_4xx(tmp_path: Path) -> None:
    async with rest_rig(tmp_path) as r:
        before = r.registers()
        # A body of Unicode whitespace only: no payload (422 naming the field), never a 500.
        for body in ("\u00a0", "\u3000", "\x1c", " \u2003\n"):
            status, answer = await r.post("setChargeTarget", raw=body.encode())
            assert status == 422, (body, answer)
            assert answer["errors"][0]["field"] == "chargeToPercent"
        # Duplicate keys and exponents are refused before anything is looked at.
        for raw in ('{"chargeToPercent": "80", "chargeToPercent": "5"}', '{"chargeToPercent":1e2}'):
            status, answer = await r.post("setChargeTarget", raw=raw)
            assert status == 400, answer
            assert answer["errors"][0]["field"] == "payload"
        # A number written in another script is not a number.
        status, answer = await r.post("setChargeTarget", {"chargeToPercent": "٨٠"})
        assert status == 422
        assert answer["errors"][0]["field"] == "chargeToPercent"
        assert r.registers() == before
        # /docs may load and run nothing but its own inline style sheet.
        async with r.session.get(r.url("docs")) as resp:
            assert resp.status == 200
            policy = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy
        assert "script-src" not in policy
    async with rest_rig(tmp_path / "token", token="a-token-of-16-chars-or-more") as r:
        port = int(r.base.rsplit(":", 1)[1])
        status, answered = await _raw_post(
            port, "/setChargeTarget", b"Authorization: Bearer \xff\xfe\x80token\r\n", b"80"
        )
        assert status == 401, answered
        assert b"Traceback" not in answered
        assert json.loads(answered)["error"] == "unauthorized"


async def test_rest_bounds_the_commands_waiting_with_503_and_retry_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from givtcp_async.sinks import rest

    assert rest.MAX_WAITING_COMMANDS == 32  # as MQTT's bound
    monkeypatch.setattr(rest, "MAX_WAITING_COMMANDS", 1)  # one is enough to show the bound
    async with rest_rig(tmp_path) as r:
        r.rig.sim.faults.add("delay", seconds=1.0)  # the first command's read takes a second
        mark = r.rig.sim.mark()
        first = asyncio.ensure_future(r.post("setChargeTarget", {"chargeToPercent": "80"}))
        await r.rig.sim.wait_for(lambda e: e.kind == "request", after=mark)  # it is waiting
        async with r.session.post(r.url("setChargeTarget"), data="70") as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "5"
            assert (await resp.json())["error"] == "too many commands"
        status, body = await first
        assert status == 200, body
        assert r.hr(116) == 80  # the waiting one ran; the refused one wrote nothing


# --- 17: the log file is private ---------------------------------------------------------------


def test_log_file_and_its_rotations_are_created_0600(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "givtcp-async.log"
    old = os.umask(0o022)
    try:
        configure_logging(LoggingConfig(file=path, max_bytes=4096, backups=2))
        import structlog

        log = structlog.get_logger("test")
        for i in range(200):
            log.info("filling the log to rotate it", i=i, pad="x" * 40)
    finally:
        reset_logging()
        os.umask(old)
    files = sorted(path.parent.iterdir())
    assert len(files) == 3  # the log and two rotated files
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


# --- 12 and 13: configuration ------------------------------------------------------------------


def test_config_check_masks_a_password_inside_a_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith(("GIVTCP_", "INFLUX_", "MQTT_", "INVERTOR_")):
            monkeypatch.delenv(name)
    path = tmp_path / "c.toml"
    path.write_text(
        '[[inverters]]\nhost = "192.168.1.20"\n'
        '[influx]\nurl = "http://admin:S3cret-pw@influx.lan:8086"\nbucket = "b"\n'
    )
    assert main(["config", "check", "--config", str(path)]) == 0
    out = capsys.readouterr()
    assert "S3cret-pw" not in out.out + out.err
    assert json.loads(out.out)["influx"]["url"] == "http://admin:***@influx.lan:8086"
    settings = load_config(path, environ={})
    assert masked(settings)["influx"]["url"] == "http://admin:***@influx.lan:8086"


def test_deeply_nested_toml_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.toml"
    path.write_text('[[inverters]]\nhost = "h"\n' + "x = " + "[" * 5000 + "]" * 5000 + "\n")
    assert main(["config", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"givtcp-async: {path}: invalid configuration: nested too deeply"]


def test_errors_in_the_file_are_attributed_to_the_file_not_to_unused_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[inverters]]\nhost = "h"\nport = 70000\n[mqtt]\nhost = "b/c"\n')
    labels = {
        "inverters.0.port": "--port",
        "inverters.0.host": "--host",
        "mqtt.host": "--mqtt-host",
    }
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={}, override_labels=labels)
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert all(line.endswith(f"[from {path}]") for line in lines), lines
    # A flag that was given is still named as the origin of its own value.
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={}, overrides={"inverters.0.port": 0}, override_labels=labels)
    assert "inverters.0.port: " in str(err.value)
    assert "[from --port]" in str(err.value)


def main(argv: list[str]) -> int:
    """The CLI in this process; its logging set-up (on a captured stderr) is undone after."""
    try:
        return _main(argv)
    finally:
        reset_logging()
