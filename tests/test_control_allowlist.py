"""The write allow-list (SPEC §4.9) per model, and every catalogue plan staying inside it."""

from __future__ import annotations

import pytest

from givtcp_async.control.allowlist import allowed_registers, check_writes, refusal
from givtcp_async.control.catalogue import CATALOGUE, PlanContext
from givtcp_async.errors import WriteNotAllowed
from tests.control_support import KINDS, START, TZ, model_of

# Installer tier and destructive registers of SPEC §4.9 (single-phase and HR300 block).
INSTALLER = [*range(63, 84), 101, 102, 115, 162, 174, 201, 300, 302, 303, *range(305, 311),
             312, 315, 316, *range(321, 331), *range(332, 352)]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_every_plan_of_every_available_function_is_allowed(kind: str) -> None:
    model = model_of(kind)
    allowed = allowed_registers(model)
    ctx = PlanContext(model=model, now=START.astimezone(TZ), registers={55: 200, 110: 20})
    for fn in CATALOGUE:
        if not fn.available(model):
            continue
        writes = fn.plan(fn.parse(fn.example, model), ctx)
        check_writes(model, ((w.register, w.value) for w in writes))
        assert {w.register for w in writes} <= set(allowed), fn.name


@pytest.mark.parametrize("kind", KINDS)
def test_never_installer_destructive_or_the_disputed_slot_registers(kind: str) -> None:
    allowed = allowed_registers(model_of(kind))
    for reg in (*INSTALLER, 31, 32, 13, 0, 1016, 5003, 5004):
        assert reg not in allowed, (kind, reg)


def test_reboot_only_with_100() -> None:
    model = model_of("gen1")
    assert refusal(model, 163, 100) is None
    for value in (0, 1, 2, 3, 101, 200):
        assert refusal(model, 163, value) == {"field": "HR163", "value": value, "allowed": "100"}
        assert refusal(model, 163, value, restore=True) is not None


def test_model_specific_tiers() -> None:
    gen1, gen3, ac = model_of("gen1"), model_of("gen3"), model_of("ac")
    three, ems = model_of("three"), model_of("ems")
    for reg in (311, 313, 314, 317):
        assert reg in allowed_registers(ac)
        assert reg not in allowed_registers(gen1)
        assert reg not in allowed_registers(gen3)
    for reg in (318, 319, 320):
        assert reg not in allowed_registers(gen1)
        assert reg in allowed_registers(gen3)
    for reg in (242, 243, 244, 245, 246, 299):
        assert reg not in allowed_registers(gen1)
        assert reg in allowed_registers(gen3)
    assert {1005, 1078, *range(1108, 1117), *range(1118, 1124)} <= set(allowed_registers(three))
    assert 94 not in allowed_registers(three)
    assert 242 not in allowed_registers(three)  # slots 1-2 live in the HR1100 block there
    assert set(allowed_registers(ems)) == {*range(35, 41), 2040, *range(2044, 2072)}


def test_value_rules() -> None:
    gen3 = model_of("gen3")
    assert refusal(gen3, 110, 3) is not None
    assert refusal(gen3, 110, 4) is None
    assert refusal(gen3, 94, 1260) is not None
    assert refusal(gen3, 94, 1259) is None
    assert refusal(gen3, 94, 60, restore=True) is None
    assert refusal(gen3, 29, 2) is not None
    assert refusal(gen3, 36, 13) is not None
    with pytest.raises(WriteNotAllowed) as err:
        check_writes(gen3, [(116, 80), (31, 1), (111, 101)])
    assert [p["field"] for p in err.value.problems] == ["HR31", "HR111"]  # type: ignore[attr-defined]
