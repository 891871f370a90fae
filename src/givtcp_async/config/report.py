"""What the configuration tells people: error lines naming each key and its origin, and the
settings with every secret masked.

May import: pydantic only (it knows nothing of where values come from: callers pass an
``origin`` function).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from pydantic import BaseModel, SecretStr, ValidationError

SECRET_MASK: Final = "***"
#: Key names whose values are secret wherever they appear (config errors, logs).
SECRET_KEY_NAMES: Final = frozenset({"password", "token", "secret", "authorization"})

Key = tuple[str, ...]

# scheme://user:password@host: the password part
_URL_PASSWORD: Final = re.compile(r"(://[^/\s:@]*:)[^/\s@]*@")


def mask_url_password(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` replaced by ``***``."""
    return _URL_PASSWORD.sub(rf"\g<1>{SECRET_MASK}@", text)


# --- errors ----------------------------------------------------------------------------------


def is_secret_path(loc: Key) -> bool:
    """Whether a dotted key names a secret (a password, a token ...) anywhere on its path."""
    return any(part in SECRET_KEY_NAMES for part in loc)


def describe_errors(err: ValidationError, origin: Callable[[Key], str | None]) -> str:
    """One line per validation problem: the dotted key, what is wrong, the value received
    (never a secret's) and, from ``origin``, where it came from."""
    lines: list[str] = []
    for item in err.errors(include_url=False):
        loc = tuple(str(part) for part in item["loc"])
        key = ".".join(loc) or "settings"
        kind = item["type"]
        msg = item["msg"]
        if kind == "extra_forbidden":
            msg = "unknown key"
        elif loc == ("inverters",) and kind in {"missing", "too_short"}:
            msg = (
                "no inverter configured: add an [[inverters]] table with a host, or set "
                "GIVTCP_INVERTERS__0__HOST or INVERTOR_IP"
            )
        else:
            msg = msg.removeprefix("Value error, ")
        value = item.get("input")
        if (
            kind not in {"missing", "extra_forbidden"}
            and not is_secret_path(loc)
            and isinstance(value, str | int | float | bool)
        ):
            shown = json.dumps(mask_url_password(value) if isinstance(value, str) else value)
            msg += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
        source = origin(loc)
        if source is not None:
            msg += f" [from {source}]"
        lines.append(f"{key}: {msg}")
    return "\n".join(lines)


# --- presentation ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return SECRET_MASK
    if isinstance(value, str):
        return mask_url_password(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)  # paths, networks


def masked(settings: BaseModel) -> dict[str, Any]:
    """The effective settings as JSON-able data; every secret is ``"***"`` if set, else None."""
    result: dict[str, Any] = _plain(settings.model_dump())
    return result


def _secrets(value: Any) -> Iterator[str]:
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets(getattr(value, name))
    elif isinstance(value, list):
        for item in value:
            yield from _secrets(item)


def secret_values(settings: BaseModel) -> list[str]:
    """Every configured secret string (for log redaction), longest first, without empties."""
    return sorted({s for s in _secrets(settings) if s}, key=len, reverse=True)
