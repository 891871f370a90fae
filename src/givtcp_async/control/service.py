"""One door for every command: timed overrides to their manager, the rest to the executor.

:class:`ControlService` is what the coordinator (and ``givtcp-async write``) call; the
:class:`~givtcp_async.control.executor.Controller` never knows the overrides exist, and the
:class:`~givtcp_async.control.overrides.OverrideManager` only knows the controller as a
``PlanRunner``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from givtcp_async.control.catalogue import ControlFunction
from givtcp_async.control.executor import Controller
from givtcp_async.control.overrides import OverrideManager
from givtcp_async.control.payloads import Payload, RawPayload
from givtcp_async.control.result import CommandResult, rejected

LocalAction = Callable[[ControlFunction, Payload], Awaitable[CommandResult]]


class ControlService:
    """Routes commands of one inverter; never raises for a command that cannot be carried out.

    Functions the daemon carries out itself (``ControlFunction.local``: switchRate, rebootAddon)
    go to the action registered for them (:meth:`register`); without one they are refused.
    """

    def __init__(self, controller: Controller, overrides: OverrideManager | None = None) -> None:
        self.controller = controller
        self.overrides = overrides
        self._local: dict[str, LocalAction] = {}

    def register(self, function: str, action: LocalAction) -> None:
        """Carry out the local function ``function`` with ``action``."""
        self._local[function] = action

    async def execute(self, name: str, raw: RawPayload = None) -> CommandResult:
        """Parse, validate and run one command given as GivTCP sends it."""
        resolved = self.controller.resolve(name, raw)
        if isinstance(resolved, CommandResult):
            return resolved
        fn, payload = resolved
        if fn.local:
            action = self._local.get(fn.name)
            if action is None:
                return rejected(
                    fn.name,
                    f"{fn.name} is carried out by the running daemon (givtcp-async run)",
                    [{"field": "function", "value": fn.name, "allowed": "the daemon"}],
                    at=self.controller.clock.now(),
                )
            return await action(fn, payload)
        if fn.override and self.overrides is not None:
            return await self.overrides.handle(fn, payload)
        return await self.controller.run(fn, payload)  # refuses an override without a manager
