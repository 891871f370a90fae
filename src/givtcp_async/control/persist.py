"""Small JSON state files, written atomically (temporary file, fsync, rename, fsync directory).

A reader never sees a half-written file: either the previous version or the new one. Failures
(a full disk, a read-only or unwritable directory) are logged here, with the path, and raised as
:class:`~givtcp_async.errors.StateError` for the caller to refuse what depended on them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import structlog

from givtcp_async.errors import StateError

log = structlog.get_logger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def state_file(state_dir: Path, key: str, kind: str) -> Path:
    """``<state_dir>/<key>.<kind>.json`` with ``key`` (usually the inverter serial) made safe."""
    safe = _UNSAFE.sub("_", key) or "inverter"
    return state_dir / f"{safe}.{kind}.json"


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def write_json(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically and durably; :class:`StateError`
    (logged) when it cannot be, the previous file then left as it was."""
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    try:
        _write_durably(path, text)
    except OSError as err:
        log.error("could not save state", path=str(path), error=_reason(err))
        raise StateError(f"cannot save {path}: {_reason(err)}") from err


def _write_durably(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def check_state_dir(state_dir: Path) -> None:
    """Raise :class:`StateError` (one line) unless files can be created, written, synced and
    removed in ``state_dir`` (created if missing): the daemon and ``write`` check it at start."""
    probe = state_dir / ".givtcp-async-probe.json"
    try:
        _write_durably(probe, "{}\n")
        probe.unlink()
    except OSError as err:
        raise StateError(f"control.state_dir: {state_dir} is not writable: {_reason(err)}") from err


def read_json(path: Path) -> Any | None:
    """The file's JSON, or None when it does not exist. A corrupt file is kept aside, not lost."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:  # unreadable: what it holds (a pending restore?) must not be guessed
        log.error("could not read state", path=str(path), error=_reason(err))
        raise StateError(f"cannot read {path}: {_reason(err)}") from err
    except UnicodeDecodeError:
        text = ""  # not text at all: kept aside below like any corrupt file
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        aside = path.with_suffix(path.suffix + ".corrupt")
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        log.error("state file is not valid JSON; moved aside", path=str(path), aside=str(aside))
        return None
