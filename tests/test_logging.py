"""Logging: JSON lines off a terminal, console on one, redaction, stdlib routing, rotating file."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from givtcp_async.config import InverterConfig, LoggingConfig, MqttConfig, Settings
from givtcp_async.errors import ConfigError
from givtcp_async.logging_setup import Redactor, configure_logging, reset_logging

SECRET = "hunter2-very-secret"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        reset_logging()
        root.handlers[:] = handlers
        root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def test_json_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    configure_logging(LoggingConfig(), stream=out)
    structlog.get_logger("givtcp_async.test").info("polled", inverter="SA1234G567", registers=60)
    [line] = json_lines(out)
    assert line["event"] == "polled"
    assert line["level"] == "info"
    assert line["logger"] == "givtcp_async.test"
    assert (line["inverter"], line["registers"]) == ("SA1234G567", 60)
    assert line["timestamp"].endswith("Z")


def test_console_on_a_terminal() -> None:
    out = FakeTerminal()
    configure_logging(LoggingConfig(), stream=out)
    structlog.get_logger("givtcp_async.test").warning("dongle slow", seconds=3)
    text = out.getvalue()
    assert "dongle slow" in text
    assert "seconds" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_format_overrides_the_terminal_check() -> None:
    out = FakeTerminal()
    configure_logging(LoggingConfig(format="json"), stream=out)
    structlog.get_logger("t").info("x")
    assert json_lines(out)[0]["event"] == "x"
    plain = io.StringIO()
    configure_logging(LoggingConfig(format="console"), stream=plain)
    structlog.get_logger("t").info("shown as text")
    assert "shown as text" in plain.getvalue()
    assert not plain.getvalue().startswith("{")


def test_level_filters_both_structlog_and_stdlib() -> None:
    out = io.StringIO()
    configure_logging(LoggingConfig(level="WARNING"), stream=out)
    structlog.get_logger("a").info("hidden")
    logging.getLogger("aiohttp.client").info("hidden too")
    structlog.get_logger("a").warning("shown")
    logging.getLogger("aiomqtt").error("broker %s refused", "b1")
    lines = json_lines(out)
    assert [(r["event"], r["logger"], r["level"]) for r in lines] == [
        ("shown", "a", "warning"),
        ("broker b1 refused", "aiomqtt", "error"),
    ]


def test_calling_twice_does_not_duplicate_output(tmp_path: Path) -> None:
    out = io.StringIO()
    config = LoggingConfig(file=tmp_path / "log" / "g.log")
    configure_logging(config, stream=out)
    configure_logging(config, stream=out)
    structlog.get_logger("t").info("once")
    assert len(json_lines(out)) == 1
    ours = [h for h in logging.getLogger().handlers if (h.get_name() or "").startswith("givtcp")]
    assert len(ours) == 2
    reset_logging()
    assert not [h for h in logging.getLogger().handlers if h in ours]


def test_redactor_processor() -> None:
    redact = Redactor([SECRET, "cat"])
    event = {
        "event": f"connecting to mqtt://bob:{SECRET}@broker with {SECRET}",
        "password": "anything",
        "api_token": "tok",
        "username": "bob",
        "headers": {"Authorization": "Bearer abc", "Accept": "json"},
        "args": [f"x{SECRET}y", "category cat"],
        "note": "Authorization: Bearer abc.def and password=letmein",
        "_record": "untouched",
        "empty_password": None,
    }
    result = redact(None, "info", dict(event))
    text = json.dumps({k: v for k, v in result.items() if k != "_record"})
    assert SECRET not in text
    assert result["password"] == "***"
    assert result["api_token"] == "***"
    assert result["username"] == "bob"
    assert result["headers"] == {"Authorization": "***", "Accept": "json"}
    assert result["args"] == ["x***y", "category ***"]  # short secrets only as whole words
    assert "abc.def" not in result["note"]
    assert "letmein" not in result["note"]
    assert result["event"] == "connecting to mqtt://bob:***@broker with ***"
    assert result["_record"] == "untouched"
    assert result["empty_password"] is None


def test_secrets_from_settings_never_reach_the_output(tmp_path: Path) -> None:
    settings = Settings(
        inverters=[InverterConfig(host="h")],
        mqtt=MqttConfig(host="b", username="u", password=SecretStr(SECRET)),
        logging=LoggingConfig(file=tmp_path / "g.log"),
    )
    out = io.StringIO()
    configure_logging(settings, stream=out)
    log = structlog.get_logger("givtcp_async.mqtt")
    log.info(f"login with {SECRET}", password=SECRET, detail={"pw": SECRET})
    logging.getLogger("aiomqtt").warning("CONNACK for %s", SECRET)
    try:
        raise RuntimeError(f"auth failed for {SECRET}")
    except RuntimeError:
        log.exception("mqtt error")
    file_text = (tmp_path / "g.log").read_text(encoding="utf-8")
    for text in (out.getvalue(), file_text):
        assert SECRET not in text
        assert "auth failed for ***" in text
        assert len(text.splitlines()) >= 3


def test_console_tracebacks_are_redacted() -> None:
    out = io.StringIO()
    configure_logging(LoggingConfig(format="console"), secrets=[SECRET], stream=out)
    try:
        raise ValueError(SECRET)
    except ValueError:
        structlog.get_logger("t").exception("failed")
    assert "ValueError: ***" in out.getvalue()
    assert SECRET not in out.getvalue()


def test_rotating_file_is_written(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "givtcp-async.log"
    out = io.StringIO()
    configure_logging(LoggingConfig(file=path, max_bytes=4096, backups=2), stream=out)
    log = structlog.get_logger("givtcp_async.test")
    for i in range(200):
        log.info("poll complete", n=i, padding="x" * 40)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["givtcp-async.log", "givtcp-async.log.1", "givtcp-async.log.2"]
    assert all(p.stat().st_size <= 4096 for p in path.parent.iterdir())
    last = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert last[-1]["n"] == 199
    assert last[-1]["event"] == "poll complete"
    assert len(json_lines(out)) == 200  # the console still gets everything


def test_file_is_json_even_when_console_is_text(tmp_path: Path) -> None:
    path = tmp_path / "g.log"
    configure_logging(LoggingConfig(file=path), stream=FakeTerminal())
    logging.getLogger("aiohttp.server").warning("bind failed")
    [record] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert (record["event"], record["logger"]) == ("bind failed", "aiohttp.server")


def test_unwritable_log_file_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"logging\.file"):
        configure_logging(LoggingConfig(file=blocker / "g.log"), stream=io.StringIO())
