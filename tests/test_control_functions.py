"""Every catalogue function against the simulator: the registers it changes and nothing else.

Each function runs with its example payload on the first model it is available on. Before the
run, every register of its plan is set to a different value, so every planned write really
happens; afterwards exactly those registers (and nothing else in the whole register file) hold
the planned values, the simulator saw exactly the plan's writes in order, and the result is ok
with every register verified by read-back. Timed overrides are then cancelled and everything
must be back as it was. A sweep then runs every function on every model it is available on.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from givtcp_async.control.catalogue import CATALOGUE, ControlFunction, Verify
from tests.control_support import KINDS, Rig, example_dict, model_of, preferred_kind, rig

# Every function that writes registers on some model. setPVInputMode is on none (HR1077 is an
# installer setting); switchRate and rebootAddon are the daemon's own (tests/test_tariffs.py,
# tests/test_givtcp3_functions.py).
FUNCTIONS = [fn for fn in CATALOGUE if not fn.local and preferred_kind(fn) is not None]


def _different(value: int) -> int:
    """Another value, still valid where ``value`` is (a percentage, an HHMM time, a flag)."""
    if value % 100:
        return value - 1
    return value - 41 if value else 1  # 100 -> 59, 1600 -> 1559


async def _check_function(r: Rig, fn: ControlFunction) -> None:
    example = fn.example
    writes = await r.controller.preview(fn.name, example)
    assert writes, f"{fn.name}: the example plans no write"
    for w in writes:
        r.set_hr(w.register, _different(w.value))
    before = r.snapshot()
    mark = r.sim.mark()

    result = await r.control.execute(fn.name, example)

    after = r.snapshot()
    changed = {key: after[key] for key in after if before.get(key) != after[key]}
    planned = {(0x11, 3, w.register): w.value for w in writes}
    assert result.status == "ok", (fn.name, result.message, result.errors)
    if fn.verify is Verify.NONE and r.plant is not None:
        # The plant treats HR163 as a command: it reboots and the register reads 0 again.
        assert r.plant.reboots, f"{fn.name}: the plant did not reboot"
        assert set(changed) <= set(planned)
    else:
        assert changed == planned, f"{fn.name} changed {changed}, planned {planned}"
    assert r.writes_seen(mark) == [(w.register, w.value) for w in writes]
    assert [c.register for c in result.registers] == [w.register for w in writes]
    for change in result.registers:
        assert change.written, (fn.name, change)
        assert change.old == _different(change.new)
        if fn.verify is Verify.NONE:
            assert change.echo is not None
            assert change.verified is None
            assert change.readback is None
        else:
            assert change.echo == change.new
            assert change.verified is True, (fn.name, change)
            assert change.readback == change.new
    assert result.function == fn.name
    if fn.override:
        assert result.override is not None
        assert result.override["state"] == "Running"
        assert r.manager.remaining_minutes(fn.name) == 30
        undo = await r.control.execute(fn.name, "Cancel")
        assert undo.status == "ok", undo.message
        assert r.snapshot() == before, f"{fn.name}: cancel did not restore every register"
        assert r.manager.remaining_minutes(fn.name) == 0


@pytest.mark.parametrize("fn", FUNCTIONS, ids=[f.name for f in FUNCTIONS])
async def test_function_changes_exactly_its_registers(fn: ControlFunction, tmp_path: Path) -> None:
    kind = preferred_kind(fn)
    assert kind is not None, f"{fn.name} is available on no simulated model"
    async with rig(kind, tmp_path) as r:
        await _check_function(r, fn)


@pytest.mark.parametrize("kind", KINDS)
async def test_sweep_every_available_function(kind: str, tmp_path: Path) -> None:
    """Every function available on ``kind`` works there; the unavailable ones are refused."""
    model = model_of(kind)
    async with rig(kind, tmp_path) as r:
        for fn in CATALOGUE:
            if fn.local:
                # Carried out by the running daemon: this service has no action for it.
                mark = r.sim.mark()
                result = await r.control.execute(fn.name, fn.example)
                assert (result.status, result.errors[0]["field"]) == ("rejected", "function")
                assert r.writes_seen(mark) == []
                continue
            if fn.available(model):
                await _check_function(r, fn)
                continue
            before = r.snapshot()
            mark = r.sim.mark()
            result = await r.control.execute(fn.name, fn.example)
            assert result.status == "rejected", fn.name
            assert result.errors[0]["field"] == "function"
            assert result.errors[0]["allowed"] == fn.unavailable_reason(model)
            assert r.snapshot() == before
            assert r.writes_seen(mark) == []


def test_every_function_has_an_example_that_validates() -> None:
    for fn in CATALOGUE:
        kind = preferred_kind(fn)
        assert kind is not None or fn.name == "setPVInputMode", fn.name
        fn.parse(fn.example, model_of(kind) if kind is not None else None)
        assert fn.summary
        assert fn.writes
        example_dict(fn)  # the example maps onto the payload's fields


def test_manual_lists_every_function_and_alias() -> None:
    page = Path(__file__).resolve().parents[1] / "docs" / "controls.md"
    section = page.read_text(encoding="utf-8")
    for fn in CATALOGUE:
        for name in (fn.name, *fn.aliases):
            listed = re.sub(r"\d+$", "N", name) if re.search(r"\d+$", name) else name
            assert f"`{listed}`" in section or f"`{listed}` (N" in section, name
    for router in CATALOGUE.routers:
        assert f"`{router}`" in section, router
