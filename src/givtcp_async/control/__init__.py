"""Control: one catalogue of functions, validated, planned, executed, verified and accounted for.

What the daemon, MQTT and REST use::

    controller = Controller(connection, model, cache=cache, ledger=WriteLedger(path, ...),
                            memory=ControlMemory(path), clock=clock, tz=tz)
    overrides = OverrideManager(controller, path, deadman_minutes=...)
    await overrides.start()                       # after the model is detected
    result = await controller.execute("setChargeTarget", "80")   # any GivTCP payload form
    result.to_json()                              # {"function", "status", "registers", ...}
    await overrides.stop()                        # clean shutdown: restores running overrides

``CATALOGUE`` describes every function (schema, aliases, HA metadata) for REST/OpenAPI, MQTT
topics and discovery; ``CATALOGUE.resolve(name, payload, model)`` validates without executing.
"""

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
from givtcp_async.control.executor import (
    CommandResult,
    Controller,
    ControlMemory,
    RegisterChange,
    Status,
)
from givtcp_async.control.overrides import OVERRIDE_FUNCTIONS, OverrideManager
from givtcp_async.control.persist import state_file

__all__ = [
    "CATALOGUE",
    "OVERRIDE_FUNCTIONS",
    "Catalogue",
    "Clock",
    "CommandResult",
    "ControlFunction",
    "ControlMemory",
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
