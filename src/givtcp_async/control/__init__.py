"""Control: one catalogue of functions, validated, planned, executed, verified and accounted for.

What the coordinator (and ``givtcp-async write``) use::

    controller = Controller(connection, model, cache=cache, ledger=WriteLedger(path, ...),
                            memory=ControlMemory(path), clock=clock, tz=tz)
    overrides = OverrideManager(controller, path, deadman_minutes=...)
    control = ControlService(controller, overrides)
    await overrides.start()                       # after the model is detected
    result = await control.execute("setChargeTarget", "80")   # any GivTCP payload form
    result.to_json()                              # {"function", "status", "registers", ...}
    await overrides.stop()                        # clean shutdown: restores running overrides

Modules: ``catalogue`` (every function), ``payloads`` (their validation), ``layout`` and
``allowlist`` (registers per model, what may be written), ``result`` (``CommandResult``),
``executor`` (``Controller``: plan, write, verify), ``overrides`` (timed overrides over a
``PlanRunner``), ``service`` (``ControlService``: routes a command to one of the two),
``accounting`` (write budget), ``persist`` (state files), ``clock``.

May import: the connection, cache, registers, protocol and errors below it; never the
coordinator, config, sinks or daemon above it.

``CATALOGUE`` describes every function (schema, aliases, HA metadata) for REST/OpenAPI, MQTT
topics and discovery; ``CATALOGUE.resolve(name, payload, model)`` validates without executing.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from givtcp_async.control.accounting import WriteLedger
    from givtcp_async.control.catalogue import (
        CATALOGUE,
        Catalogue,
        ControlFunction,
        FunctionUnavailable,
        HaMeta,
        PlanContext,
        Platform,
        Verify,
        Write,
    )
    from givtcp_async.control.clock import Clock, ManualClock, SystemClock
    from givtcp_async.control.executor import Controller, ControlMemory
    from givtcp_async.control.overrides import OVERRIDE_FUNCTIONS, OverrideManager
    from givtcp_async.control.persist import state_file
    from givtcp_async.control.result import CommandResult, RegisterChange, Status
    from givtcp_async.control.service import ControlService

# The package's names are imported on first use: a process that never controls anything (or not
# yet: the daemon at start-up) does not load the catalogue and its payload models.
_HOME = {
    "WriteLedger": "accounting",
    **dict.fromkeys(("CATALOGUE", "Catalogue", "ControlFunction", "FunctionUnavailable",
                     "HaMeta", "PlanContext", "Platform", "Verify", "Write"), "catalogue"),
    **dict.fromkeys(("Clock", "ManualClock", "SystemClock"), "clock"),
    **dict.fromkeys(("Controller", "ControlMemory"), "executor"),
    **dict.fromkeys(("OVERRIDE_FUNCTIONS", "OverrideManager"), "overrides"),
    "state_file": "persist",
    **dict.fromkeys(("CommandResult", "RegisterChange", "Status"), "result"),
    "ControlService": "service",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "CATALOGUE",
    "OVERRIDE_FUNCTIONS",
    "Catalogue",
    "Clock",
    "CommandResult",
    "ControlFunction",
    "ControlMemory",
    "ControlService",
    "Controller",
    "FunctionUnavailable",
    "HaMeta",
    "ManualClock",
    "OverrideManager",
    "PlanContext",
    "Platform",
    "RegisterChange",
    "Status",
    "SystemClock",
    "Verify",
    "Write",
    "WriteLedger",
    "state_file",
]
