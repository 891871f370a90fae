"""Log output: structlog for our events; the same handlers for stdlib ones (aiohttp, aiomqtt).

Console output is coloured key=value lines when stderr is a terminal and JSON lines otherwise
(``logging.format`` overrides the choice). With ``logging.file`` set, JSON lines also go to a
size-rotated file. Every line passes through :class:`Redactor` twice: values of secret-named keys
and the configured secret strings are replaced in the event before rendering, and the rendered
text is scrubbed again so tracebacks and reprs cannot leak them either.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Iterable, Mapping
from io import StringIO
from typing import Any, Final, TextIO

import structlog
from structlog.typing import EventDict, ExceptionRenderer, ExcInfo, Processor, WrappedLogger

from givtcp_async.config import SECRET_MASK, LoggingConfig, Settings, secret_values
from givtcp_async.errors import ConfigError

__all__ = ["Redactor", "configure_logging", "reset_logging"]

_HANDLER_PREFIX: Final = "givtcp_async."
#: Secrets this short are only replaced as whole words, so logs stay readable.
_SHORT_SECRET: Final = 4

_SECRET_KEY: Final = re.compile(
    r"password|passwd|token|secret|authori[sz]ation|api_?key|credential", re.IGNORECASE
)
_TEXT_PATTERNS: Final = (
    # scheme://user:password@host
    (re.compile(r"(://[^/\s:@]+:)[^/\s@]+@"), rf"\g<1>{SECRET_MASK}@"),
    # Authorization: Bearer abc / "authorization": "Basic abc"
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer\s+|basic\s+)?)[^\s\"',;}]+"),
        rf"\g<1>{SECRET_MASK}",
    ),
    # password=abc, token: abc, "secret": "abc"
    (
        re.compile(r"(?i)\b((?:password|passwd|token|secret)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&}]+"),
        rf"\g<1>{SECRET_MASK}",
    ),
)


class Redactor:
    """Removes secrets from log events and rendered lines (also usable as a structlog processor)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        parts = [
            re.escape(s) if len(s) >= _SHORT_SECRET else rf"(?<!\w){re.escape(s)}(?!\w)"
            for s in values
        ]
        self._secrets = re.compile("|".join(parts)) if parts else None

    def redact_text(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(SECRET_MASK, text)
        for pattern, replacement in _TEXT_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def redact_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return {
                k: (
                    SECRET_MASK
                    if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "")
                    else self.redact_value(v)
                )
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.redact_value(v) for v in value)
        return value

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        for key, value in list(event_dict.items()):
            if key.startswith("_"):  # structlog's own bookkeeping (_record, _from_structlog)
                continue
            if _SECRET_KEY.search(key) and value not in (None, ""):
                event_dict[key] = SECRET_MASK
            else:
                event_dict[key] = self.redact_value(value)
        return event_dict

    def scrub_rendered(self, logger: WrappedLogger, method_name: str, rendered: Any) -> Any:
        """Final processor: scrub the rendered line itself."""
        return self.redact_text(rendered) if isinstance(rendered, str) else rendered


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file readable by its owner only (0600), the rotated ones too: a log holds
    the command audit and the inverter's details."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)  # an older file created with the umask is tightened too
        return os.fdopen(fd, self.mode, encoding=self.encoding, errors=self.errors)


def _exception_formatter(redactor: Redactor) -> ExceptionRenderer:
    def render(sio: TextIO, exc_info: ExcInfo) -> None:
        buf = StringIO()
        structlog.dev.plain_traceback(buf, exc_info)
        sio.write(redactor.redact_text(buf.getvalue()))

    return render


def _shared_processors() -> list[Processor]:
    return [
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _formatter(*, json_lines: bool, colors: bool, redactor: Redactor) -> logging.Formatter:
    renderer: Processor
    tail: list[Processor]
    if json_lines:
        tail = [structlog.processors.format_exc_info]
        renderer = structlog.processors.JSONRenderer()
    else:
        tail = []
        renderer = structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=_exception_formatter(redactor)
        )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            redactor,
            renderer,
            redactor.scrub_rendered,
        ],
    )


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _remove_our_handlers(root: logging.Logger) -> None:
    for handler in list(root.handlers):
        if (handler.get_name() or "").startswith(_HANDLER_PREFIX):
            root.removeHandler(handler)
            handler.close()


def configure_logging(
    config: LoggingConfig | Settings,
    *,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> Redactor:
    """Set up structlog and the stdlib root logger from ``config``; safe to call again.

    Given the whole :class:`Settings`, its secrets are redacted automatically; ``secrets`` adds
    more. ``stream`` defaults to ``sys.stderr``. Returns the redactor in use. Raises ConfigError
    if the log file cannot be opened.
    """
    if isinstance(config, Settings):
        secrets = [*secrets, *secret_values(config)]
        config = config.logging
    stream = sys.stderr if stream is None else stream
    redactor = Redactor(secrets)
    tty = _is_tty(stream)
    json_lines = config.format == "json" or (config.format == "auto" and not tty)
    colors = tty and not os.environ.get("NO_COLOR")

    handlers: list[logging.Handler] = []
    console = logging.StreamHandler(stream)
    console.set_name(_HANDLER_PREFIX + "console")
    console.setFormatter(_formatter(json_lines=json_lines, colors=colors, redactor=redactor))
    handlers.append(console)
    if config.file is not None:
        try:
            config.file.parent.mkdir(parents=True, exist_ok=True)
            file_handler = _PrivateRotatingFileHandler(
                config.file,
                maxBytes=config.max_bytes,
                backupCount=config.backups,
                encoding="utf-8",
            )
        except OSError as err:
            raise ConfigError(f"logging.file: cannot open {config.file}: {err.strerror}") from None
        file_handler.set_name(_HANDLER_PREFIX + "file")
        file_handler.setFormatter(_formatter(json_lines=True, colors=False, redactor=redactor))
        handlers.append(file_handler)

    root = logging.getLogger()
    _remove_our_handlers(root)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(config.level)
    # pydantic-settings can dump every source's raw values (secrets included) at DEBUG.
    logging.getLogger("pydantic_settings").setLevel(max(logging.INFO, root.level))
    logging.captureWarnings(True)

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
        # Module-level loggers may be created before this runs; don't let them freeze an old setup.
        cache_logger_on_first_use=False,
    )
    return redactor


def reset_logging() -> None:
    """Undo :func:`configure_logging`: remove its handlers and restore structlog's defaults."""
    _remove_our_handlers(logging.getLogger())
    logging.captureWarnings(False)
    structlog.reset_defaults()
