"""Tariffs: GivTCP's Energy/Rates, import counted to the day or night rate and costed, switched
by the clock or by switchRate, kept across restarts and published like every other value."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from givtcp_async.quality.gates import Reading
from givtcp_async.registers.models import detect_model
from givtcp_async.sinks.influx import snapshot_points
from givtcp_async.snapshot import Snapshot
from givtcp_async.tariffs import SPECS, TariffSettings, TariffTracker
from tests.harness import running_daemon
from tests.mqtt_support import by_entity_id, problems, state_problems, watching
from tests.rest_support import rest_rig
from tests.servers import Mosquitto
from tests.test_mqtt_service import ROOT, mqtt_settings, started

LONDON = ZoneInfo("Europe/London")
GO = TariffSettings(day_rate=0.30, night_rate=0.10, export_rate=0.15,
                    day_start=time(4, 30), night_start=time(0, 30))  # fmt: skip


def at(hour: int, minute: int = 0, day: int = 21) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=LONDON)


def seen(total: float, today: float, export: float = 0.0, soc: float = 5.0,
         ac: float = 100.0) -> dict[str, Any]:  # fmt: skip
    return {
        "Import_Energy_Total_kWh": total,
        "Import_Energy_Today_kWh": today,
        "Export_Energy_Today_kWh": export,
        "SOC_kWh": soc,
        "AC_Charge_Energy_Total_kWh": ac,
    }


def test_import_is_counted_to_the_rate_in_use_and_costed() -> None:
    t = TariffTracker(GO)
    t.observe(seen(1000.0, 0.0), at(0, 5))  # a day rate until 00:30
    assert t.rate == "Day"
    t.observe(seen(1001.0, 1.0), at(0, 25))
    t.observe(seen(1003.0, 3.0), at(1, 0))  # night from 00:30: this step is the night's
    assert t.rate == "Night"
    t.observe(seen(1007.0, 7.0, export=2.0), at(4, 40))  # day again from 04:30
    r = t.readings()
    assert r["Current_Rate_Type"] == "Day"
    assert r["Current_Rate"] == 0.30
    assert (r["Day_Energy_kWh"], r["Night_Energy_kWh"]) == (5.0, 2.0)
    assert (r["Day_Cost"], r["Night_Cost"]) == (1.5, 0.2)
    assert r["Import_Cost_Today"] == 1.7
    assert r["Import_ppkwh_Today"] == round(1.7 / 7.0, 3)
    assert r["Export_Income_Today"] == 0.3
    # GivTCP's offsets: the current rate's energy is the import total less its start.
    assert 1007.0 - r["Day_Start_Energy_kWh"] == r["Day_Energy_kWh"]
    assert r["Night_Energy_Total_kWh"] == 2.0  # the night period that ended at 04:30
    assert r["Day_Energy_Total_kWh"] == 1.0  # the day period that ended at 00:30


def test_a_new_day_starts_from_zero() -> None:
    t = TariffTracker(GO)
    t.observe(seen(1000.0, 9.0), at(22, 0))
    t.observe(seen(1002.0, 11.0), at(23, 50))
    assert t.readings()["Day_Energy_kWh"] == 2.0
    t.observe(seen(1002.5, 0.5), at(0, 10, day=22))
    r = t.readings()
    assert (r["Day_Energy_kWh"], r["Day_Cost"], r["Night_Energy_kWh"]) == (0.5, 0.15, 0.0)
    assert r["Day_Energy_Total_kWh"] == 0.0


def test_switch_rate_holds_until_the_clock_passes_a_boundary_or_for_good_when_dynamic() -> None:
    t = TariffTracker(GO)
    t.observe(seen(1000.0, 0.0), at(12, 0))
    t.switch("Night", at(12, 30))
    t.observe(seen(1001.0, 1.0), at(13, 0))
    assert (t.rate, t.readings()["Night_Energy_kWh"]) == ("Night", 1.0)
    t.observe(seen(1002.0, 2.0), at(0, 40, day=22))  # the clock moved into the night itself
    t.observe(seen(1003.0, 3.0), at(4, 40, day=22))  # and out of it: day by the clock again
    assert t.rate == "Day"

    dynamic = TariffTracker(TariffSettings(dynamic=True))
    dynamic.observe(seen(1000.0, 0.0), at(2, 0))
    assert dynamic.rate == "Day"  # dynamic: no clock, day until told otherwise
    dynamic.switch("Night", at(2, 5))
    dynamic.observe(seen(1001.0, 1.0), at(12, 0))
    assert dynamic.rate == "Night"
    with pytest.raises(ValueError, match="unknown rate"):
        dynamic.switch("Evening", at(12, 1))


def test_the_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "SA1234G567.tariff.json"
    t = TariffTracker(GO, path)
    t.observe(seen(1000.0, 0.0), at(12, 0))
    t.switch("Night", at(12, 1))
    t.observe(seen(1004.0, 4.0), at(12, 2))
    t.close(at(12, 2))
    saved = json.loads(path.read_text())
    assert saved["rate"] == "Night"
    again = TariffTracker(GO, path)
    # The import while it was down is counted to the rate then in use.
    again.observe(seen(1006.0, 6.0), at(12, 20))
    r = again.readings()
    assert (r["Current_Rate_Type"], r["Night_Energy_kWh"], r["Night_Cost"]) == ("Night", 6.0, 0.6)
    assert json.loads(path.read_text())["day"] == "2026-06-21"
    path.write_text("{not json")
    assert TariffTracker(GO, path).readings()["Night_Energy_kWh"] == 0.0  # unreadable: fresh


def test_battery_value_follows_grid_charging_every_half_hour() -> None:
    t = TariffTracker(GO)
    t.observe(seen(1000.0, 0.0, soc=2.0, ac=100.0), at(1, 0))  # night, the first half hour
    t.observe(seen(1004.0, 4.0, soc=6.0, ac=104.0), at(1, 20))  # same half hour: no change
    assert t.readings()["Battery_Value"] == 0.0
    t.observe(seen(1004.0, 4.0, soc=6.0, ac=104.0), at(1, 31))  # 4 kWh charged at 0.10
    r = t.readings()
    assert (r["Battery_Value"], r["Battery_ppkwh"]) == (0.4, round(0.4 / 6.0, 3))
    t.observe(seen(1004.0, 4.0, soc=3.0, ac=104.0), at(2, 1))  # discharged: the same price
    assert t.readings()["Battery_Value"] == round(0.4 / 6.0 * 3.0, 3)


def test_rates_are_an_influx_measurement() -> None:
    model = detect_model({0: 0x2001, 19: 308, 21: 308})
    t = TariffTracker(GO)
    t.observe(seen(1000.0, 1.0), at(12, 0))
    specs = {s.name: s for s in SPECS}
    values = {n: Reading(v, specs[n].unit) for n, v in t.readings().items()}
    snap = Snapshot("SA1234G567", model, at(12, 0), values, specs)
    lines = [line for line in snapshot_points(snap) if line.startswith("rates,")]
    assert len(lines) == 1
    assert "current_rate=0.3" in lines[0]
    assert "day_cost=0.0" in lines[0]
    assert "day_rate" not in lines[0]  # a setting, not a time series


async def test_switch_rate_over_rest_shows_at_once_and_survives_a_restart(tmp_path: Path) -> None:
    async with rest_rig(tmp_path, tariff={"dynamic": True}) as r:
        _, tree = await r.get("runAll")
        rates = tree["Energy"]["Rates"]
        assert rates["Current_Rate_Type"] == "Day"
        assert rates["Day_Rate"] == 0.155  # GivTCP's default rates
        status, body = await r.post("switchRate", {"rate": "night"})
        assert (status, body["status"]) == (200, "ok"), body
        _, tree = await r.get("runAll")
        assert tree["Energy"]["Rates"]["Current_Rate_Type"] == "Night"
        assert tree["Energy"]["Rates"]["Current_Rate"] == 0.055
        status, body = await r.post("switchRate", {"rate": "dusk"})
        assert status == 422
        assert body["errors"][0]["field"] == "rate"
    async with rest_rig(tmp_path, tariff={"dynamic": True}) as r:
        _, tree = await r.get("runAll")
        assert tree["Energy"]["Rates"]["Current_Rate_Type"] == "Night"


async def test_rates_reach_mqtt_and_home_assistant_with_givtcps_ids(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with (
        # Dynamic: the rate is Day until switched, whatever the time of the run.
        running_daemon(tmp_path, mqtt=mqtt_settings(mosquitto), tariff={"dynamic": True}) as rig,
        watching(mosquitto.port, f"{ROOT}/#", "homeassistant/#") as w,
    ):
        serial = await started(rig, w)
        base = f"{ROOT}/{serial}/Energy/Rates"
        await w.wait_topic(f"{base}/Current_Rate_Type", "Day")
        await w.wait_topic(f"{base}/Day_Rate", "0.155")
        mark = w.mark()
        await w.client.publish(f"{ROOT}/control/{serial}/switchRate", "Night")
        changed = await w.wait_topic(f"{base}/Current_Rate_Type", "Night", after=mark)
        result = await w.wait_topic(f"{ROOT}/{serial}/control/switchRate/result", after=mark)
        assert changed.seq < result.seq  # the state before the answer
        await w.sync()
        configs = w.discovered()
        by_id = by_entity_id(configs)
        low = serial.lower()
        select = by_id[f"select.givtcp_{low}_current_rate_type"]
        assert select["command_topic"] == f"{ROOT}/{serial}/control/switchRate"
        assert select["state_topic"] == f"{base}/Current_Rate_Type"
        assert {"Day", "Night"} <= set(select["options"])
        cost = by_id[f"sensor.givtcp_{low}_day_cost"]
        assert (cost["device_class"], cost["unit_of_measurement"]) == ("monetary", "GBP")
        names = {s.name for s in SPECS}
        rates = [c for c in configs.values() if c["unique_id"].split(f"{serial}_")[-1] in names]
        assert len(rates) == len(SPECS)
        latest = {s.topic: s.payload for s in w.log}
        for topic, config in configs.items():
            if config in rates:
                assert problems(topic, config) == [], topic
                platform = topic.split("/")[1]
                assert state_problems(platform, config, latest.get(config["state_topic"])) == []


def test_default_times_and_the_clock() -> None:
    cfg = TariffSettings()
    assert cfg.by_clock(at(0, 29)) == "Day"
    assert cfg.by_clock(at(0, 30)) == "Night"
    assert cfg.by_clock(at(4, 29)) == "Night"
    assert cfg.by_clock(at(4, 30)) == "Day"
    late = TariffSettings(day_start=time(7, 0), night_start=time(23, 30))
    assert late.by_clock(at(23, 45)) == "Night"
    assert late.by_clock(at(6, 59)) == "Night"
    assert late.by_clock(at(7, 0)) == "Day"
    assert late.by_clock(at(12, 0) + timedelta(hours=11)) == "Day"  # 23:00
