"""Predbat's REST client, replayed against the daemon and the simulated Gen3 plant.

Predbat (springfall2008/batpred, apps/predbat/inverter.py, REST mode) reads ``/readData`` at start
and checks every setting it sends: POST, then GET ``/runAll`` at once and compare one field; on a
mismatch it sleeps 2 s and POSTs again, up to five times. The requests below are the ones it
makes (bodies as it sends them: JSON, numbers as numbers), and the checks the fields it reads
back (docs/migration.md, "Predbat over REST"). Every change must show in the very next GET, so
each costs exactly one POST.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from tests.rest_support import RestRig, rest_rig

Check = Callable[[dict[str, Any]], bool]
RETRIES: Final = 5


def at(tree: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a runAll tree (None when it is missing), as Predbat reads."""
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def equals(path: str, expected: Any) -> Check:
    return lambda tree: at(tree, path) == expected


def window(kind: str, start: str, end: str, slot: int | None = None) -> Check:
    """A slot's start and end as Predbat compares them: ``HH:MM:SS``."""
    tail = f"_{slot}" if slot is not None else ""
    paths = (f"Timeslots.{kind}_start_time_slot{tail}", f"Timeslots.{kind}_end_time_slot{tail}")
    return lambda tree: (at(tree, paths[0]), at(tree, paths[1])) == (f"{start}:00", f"{end}:00")


def near(path: str, expected: float, tolerance: float) -> Check:
    def check(tree: dict[str, Any]) -> bool:
        value = at(tree, path)
        return isinstance(value, int | float) and abs(value - expected) <= tolerance

    return check


async def predbat_set(r: RestRig, route: str, body: dict[str, Any], check: Check) -> int:
    """POST as Predbat does until the next GET /runAll shows the change; the POSTs it took."""
    for attempt in range(1, RETRIES + 1):
        status, _ = await r.post(route, body)
        assert status == 200, (route, body, status)
        status, tree = await r.get("runAll")
        assert status == 200
        assert "Control" in tree
        if check(tree):
            return attempt
    raise AssertionError(f"{route} {body}: not shown after {RETRIES} POSTs")


async def test_every_predbat_setting_shows_in_the_very_next_runall(tmp_path: Path) -> None:
    async with rest_rig(tmp_path) as r:
        status, data = await r.get("readData")
        assert status == 200
        assert "Control" in data
        # rest_v3: a version starting with 3 switches on Predbat's GivTCP 3 paths.
        assert str(at(data, "Stats.GivTCP_Version")).startswith("3")
        # What it reads at start instead of assuming 7500 W, 20 degC and an unknown serial.
        serial = at(data, "raw.invertor.serial_number")
        assert serial == r.rig.coordinator.serial
        assert at(data, f"{serial}.Invertor_Max_Inv_Rate") == 5000
        assert at(data, "raw.invertor.firmware_version") == at(data, f"{serial}.Invertor_Firmware")
        assert isinstance(at(data, "raw.invertor.battery_nominal_capacity"), float)
        assert at(data, "raw.invertor.soc_force_adjust") == 0  # calibration detection: off
        assert isinstance(at(data, "raw.invertor.discharge_target_soc_1"), int)
        assert isinstance(at(data, "raw.invertor.model"), str)
        assert isinstance(at(data, "Battery_Details.Battery_Stack_1.BMS_Temperature"), float)
        max_rate = r.rig.coordinator.model.battery_max_power  # type: ignore[union-attr]
        assert max_rate
        # Each switch is flipped away from where the plant starts and back.
        charge = at(data, "Control.Enable_Charge_Schedule")
        other = {"enable": "disable", "disable": "enable"}
        steps: list[tuple[str, dict[str, Any], Check]] = [
            ("enableChargeTarget", {"state": "enable"},
             equals("Control.Enable_Charge_Target", "enable")),
            ("setChargeTarget", {"chargeToPercent": 85}, equals("Control.Target_SOC", 85)),
            ("setBatteryReserve", {"reservePercent": 20},
             equals("Control.Battery_Power_Reserve", 20)),
            ("setChargeRate", {"chargeRate": 1500},
             near("Control.Battery_Charge_Rate", 1500, max_rate / 12)),
            ("setDischargeRate", {"dischargeRate": 2000},
             near("Control.Battery_Discharge_Rate", 2000, max_rate / 25)),
            ("setChargeSlot1", {"start": "02:30", "finish": "05:00"},
             window("Charge", "02:30", "05:00", 1)),
            ("enableChargeSchedule", {"state": other[charge]},
             equals("Control.Enable_Charge_Schedule", other[charge])),
            ("enableChargeSchedule", {"state": charge},
             equals("Control.Enable_Charge_Schedule", charge)),
            ("setDischargeSlot1", {"start": "16:30", "finish": "19:30"},
             window("Discharge", "16:30", "19:30", 1)),
            ("setBatteryMode", {"mode": "Timed Export"}, equals("Control.Mode", "Timed Export")),
            ("setBatteryMode", {"mode": "Eco"}, equals("Control.Mode", "Eco")),
            ("setBatteryPauseMode", {"state": "PauseCharge"},
             equals("Control.Battery_pause_mode", "PauseCharge")),
            ("setPauseSlot", {"start": "00:00", "finish": "23:59"},
             window("Battery_pause", "00:00", "23:59")),
            ("setDischargeTarget", {"dischargeToPercent": 15, "slot": 1},
             equals("Control.Discharge_Target_SOC_1", 15)),
            # Eco (above) left the discharge schedule off.
            ("enableDischargeSchedule", {"state": "enable"},
             equals("Control.Enable_Discharge_Schedule", "enable")),
        ]  # fmt: skip
        routes = {route for route, _, _ in steps}
        assert len(routes) == 13  # every function Predbat uses over REST
        for route, body, check in steps:
            assert not check((await r.get("runAll"))[1]), (route, "already shows the change")
            assert await predbat_set(r, route, body, check) == 1, (route, body)
