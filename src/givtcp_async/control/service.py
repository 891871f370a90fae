"""One door for every command: timed overrides to their manager, the rest to the executor.

:class:`ControlService` is what the coordinator (and ``givtcp-async write``) call; the
:class:`~givtcp_async.control.executor.Controller` never knows the overrides exist, and the
:class:`~givtcp_async.control.overrides.OverrideManager` only knows the controller as a
``PlanRunner``.
"""

from __future__ import annotations

from givtcp_async.control.executor import Controller
from givtcp_async.control.overrides import OverrideManager
from givtcp_async.control.payloads import RawPayload
from givtcp_async.control.result import CommandResult


class ControlService:
    """Routes commands of one inverter; never raises for a command that cannot be carried out."""

    def __init__(self, controller: Controller, overrides: OverrideManager | None = None) -> None:
        self.controller = controller
        self.overrides = overrides

    async def execute(self, name: str, raw: RawPayload = None) -> CommandResult:
        """Parse, validate and run one command given as GivTCP sends it."""
        resolved = self.controller.resolve(name, raw)
        if isinstance(resolved, CommandResult):
            return resolved
        fn, payload = resolved
        if fn.override and self.overrides is not None:
            return await self.overrides.handle(fn, payload)
        return await self.controller.run(fn, payload)  # refuses an override without a manager
