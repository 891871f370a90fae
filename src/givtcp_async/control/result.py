"""The outcome of a control command: :class:`CommandResult` and its registers.

Shared by everything that runs or answers commands (executor, timed overrides, the control
service, MQTT and REST), so none of them imports another to speak of results. May import:
pydantic only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Status = Literal["ok", "rejected", "failed", "partial"]


@dataclass(frozen=True, slots=True)
class RegisterChange:
    """One register of a plan and what happened to it."""

    register: int
    old: int | None  # value read fresh before writing
    new: int  # value the plan wanted
    written: bool  # a write was sent and echoed
    echo: int | None = None
    readback: int | None = None
    verified: bool | None = None  # read-back equals new; None = not checked
    note: str = ""


class CommandResult(BaseModel):
    """The outcome of one command."""

    model_config = ConfigDict(frozen=True)

    function: str
    status: Status
    message: str
    payload: dict[str, Any] | None = None
    registers: tuple[RegisterChange, ...] = ()
    errors: tuple[dict[str, Any], ...] = ()
    override: dict[str, Any] | None = None
    at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def written(self) -> list[int]:
        """Registers a write was sent to and echoed."""
        return [r.register for r in self.registers if r.written]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def rejected(
    function: str,
    message: str,
    errors: Iterable[Mapping[str, Any]] = (),
    *,
    payload: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> CommandResult:
    """A result refusing ``function`` before anything was sent."""
    return CommandResult(
        function=function,
        status="rejected",
        message=message,
        errors=tuple(dict(e) for e in errors),
        payload=dict(payload) if payload is not None else None,
        at=at,
    )


def state_error(err: Exception) -> dict[str, Any]:
    """The error entry of a command refused because its write count or pending restore cannot
    be made durable (the state directory is full, read-only or unwritable)."""
    return {"field": "state_dir", "value": str(err), "allowed": "a writable state directory"}
