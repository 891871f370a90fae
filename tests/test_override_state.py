"""What runs, shown everywhere: the timed overrides' state in runAll, MQTT and Home Assistant.

GivTCP publishes ``Control/Force_Charge`` (``Running`` / ``Normal``) and ``Force_Charge_Num``
(minutes left) for each timed override; Home Assistant's select shows the first and a number the
second. Here both follow the override manager at once (start, cancel), and a running override is
shown again by the next daemon after one that died while it ran.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from givtcp_async.control.overrides import OverrideManager
from givtcp_async.simulator.plant import PlantConfig
from tests.harness import running_daemon
from tests.mqtt_support import by_entity_id, problems, watching
from tests.servers import Mosquitto
from tests.test_mqtt_service import ROOT, mqtt_settings, started

FROZEN = PlantConfig(speed=0)
NAMES = ("Force_Charge", "Force_Export", "Temp_Pause_Charge", "Temp_Pause_Discharge")


def control(tree: dict[str, Any]) -> dict[str, Any]:
    group: dict[str, Any] = tree["Control"]
    return group


async def test_override_state_is_published_with_givtcps_entities(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with (
        running_daemon(tmp_path, plant_config=FROZEN, mqtt=mqtt_settings(mosquitto)) as rig,
        watching(mosquitto.port, f"{ROOT}/#", "homeassistant/#") as w,
    ):
        serial = await started(rig, w)
        base = f"{ROOT}/{serial}/Control"
        coord = rig.coordinator
        assert coord.snapshot is not None
        first = control(coord.snapshot.runall())
        for name in NAMES:
            assert (first[name], first[f"{name}_Num"]) == ("Normal", 0)
            await w.wait_topic(f"{base}/{name}", "Normal")
            await w.wait_topic(f"{base}/{name}_Num", "0")

        mark = w.mark()
        await w.client.publish(f"{ROOT}/{serial}/control/forceCharge", "30")
        # The state goes out before the answer (read-your-writes), the answer says so too.
        running = await w.wait_topic(f"{base}/Force_Charge", "Running", after=mark)
        minutes = await w.wait_topic(f"{base}/Force_Charge_Num", "30", after=mark)
        result = await w.wait_topic(f"{ROOT}/{serial}/control/forceCharge/result", after=mark)
        assert running.seq < result.seq
        assert minutes.seq < result.seq
        assert json.loads(result.payload)["override"]["state"] == "Running"
        ends = datetime.fromisoformat(json.loads(result.payload)["override"]["restore_at"])
        assert timedelta(minutes=29) < ends - coord.now() <= timedelta(minutes=30)
        assert coord.snapshot is not None
        assert control(coord.snapshot.runall())["Force_Charge"] == "Running"
        assert control(coord.snapshot.runall())["Force_Export"] == "Normal"

        mark = w.mark()
        await w.client.publish(f"{ROOT}/{serial}/control/forceCharge", "Cancel")
        await w.wait_topic(f"{base}/Force_Charge", "Normal", after=mark)
        await w.wait_topic(f"{base}/Force_Charge_Num", "0", after=mark)
        cancelled = await w.result(f"{ROOT}/{serial}/control/forceCharge/result", after=mark)
        assert cancelled["status"] == "ok"

        # Home Assistant: GivTCP's ids; the select and the number show the state.
        await w.sync()
        configs = w.discovered()
        by_id = by_entity_id(configs)
        low = serial.lower()
        for name in NAMES:
            slug = name.lower()
            select = by_id[f"select.givtcp_{low}_{slug}"]
            assert select["unique_id"] == f"GivTCP_{serial}_{name}"
            assert select["state_topic"] == f"{base}/{name}"
            # Only what the command takes is offered; the read-back "Running" shows as no choice
            # (the _Num number tells the minutes left).
            assert {"Normal", "Cancel", "30"} <= set(select["options"])
            assert "Running" not in select["options"]
            assert "Running" in select["value_template"]
            number = by_id[f"number.givtcp_{low}_{slug}_num"]
            assert number["unique_id"] == f"GivTCP_{serial}_{name}_Num"
            assert number["state_topic"] == f"{base}/{name}_Num"
            assert number["command_topic"] == select["command_topic"]
            assert (number["min"], number["max"], number["unit_of_measurement"]) == (0, 1439, "min")
        for topic, config in configs.items():
            assert problems(topic, config) == [], topic


async def test_a_running_override_is_shown_again_after_a_restart(tmp_path: Path) -> None:
    # The first daemon dies while the override runs (its state file is what it left: a clean
    # stop would have restored and ended the override); the next one takes it up, running.
    async with running_daemon(tmp_path, plant_config=FROZEN) as rig:
        await rig.first_snapshot()
        result = await rig.coordinator.execute("forceExport", "60")
        assert result.status == "ok", result.message
        started_at = rig.coordinator.now()
        state_file = next((tmp_path / "state").glob("*.overrides.json"))
        left_behind = state_file.read_text()
    state_file.write_text(left_behind)
    assert list(json.loads(left_behind)["overrides"]) == ["forceExport"]

    async with running_daemon(tmp_path, plant_config=FROZEN) as rig:
        snap = await rig.first_snapshot()
        state = control(snap.runall())
        assert state["Force_Export"] == "Running"
        left = (started_at + timedelta(minutes=60) - rig.coordinator.now()).total_seconds() / 60
        assert 0 < state["Force_Export_Num"] - left <= 1
        assert state["Force_Charge"] == "Normal"
        overrides = rig.coordinator.overrides
        assert isinstance(overrides, OverrideManager)
        assert list(overrides.active()) == ["forceExport"]
