"""The charger coordinator against the simulated charger over real Modbus TCP: every value
published, every control's effect read back with pymodbus's own client, bad payloads refused
with nothing written, a car that charges and finishes, and a charger that is unplugged,
rebooted or unreachable."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from givtcp_async.evc.discover import probe_charger
from givtcp_async.evc.simulator import Car, ChargerSimulator
from givtcp_async.registers.evc import CABLE, EVC_FIELDS, STATES
from tests.evc_support import read_hr, running_charger, until


def _u32(regs: list[int], high: int) -> int:
    return (regs[high] << 16) | regs[high + 1]


async def test_every_value_is_published_as_the_charger_holds_it(tmp_path: Path) -> None:
    sim = ChargerSimulator(speed=0.0)
    sim.plug_in(Car())
    async with running_charger(tmp_path, sim) as (sim, coord):
        snap = await until(coord, lambda s: s.value("Charging_State") is not None)
        regs = await read_hr(sim.port, 0, 60) + await read_hr(sim.port, 60, 55)
        charger = snap.runall()["Charger"]
        held = {"Charge_Control", "Charging_Mode", "Import_Cap", "Max_Session_Energy"}
        published = {f.name for f in EVC_FIELDS} | held
        assert set(charger) == published  # every value, none unavailable
        assert charger["Charging_State"] == STATES[regs[0]] == "Charging"
        assert charger["Connection_Status"] == CABLE[regs[2]] == "Connected"
        assert charger["Current_L1"] == regs[6] / 10 == 32.0
        assert charger["Active_Power"] == _u32(regs, 12) == 7360
        assert charger["Meter_Energy"] == _u32(regs, 28) / 10
        assert charger["Charge_Limit"] == regs[36] / 10
        assert charger["Serial_Number"] == "".join(chr(r) for r in regs[38:69] if r)
        assert charger["Voltage_L1"] == regs[109] / 10 == 230.0
        assert charger["Plug_and_Go"] == ("enable" if regs[93] == 0 else "disable")
        assert charger["Charge_Control"] == "Start"
        assert charger["System_Time"].startswith(f"{regs[97]:04d}-{regs[98]:02d}-{regs[99]:02d}")
        assert coord.serial == sim.serial
        assert snap.serial == sim.serial
        assert snap.runall()["Stats"]["status"] == "online"
        json.dumps(snap.runall())


async def test_controls_take_effect_on_the_charger(tmp_path: Path) -> None:
    sim = ChargerSimulator()
    sim.plug_in(Car())
    async with running_charger(tmp_path, sim) as (sim, coord):
        await coord.wait_identified()
        await until(coord, lambda s: s.value("Charging_State") == "Charging")

        result = await coord.execute("setCurrentLimit", {"current": "16"})
        assert result.status == "ok", result.message
        assert (await read_hr(sim.port, 91, 1)) == [160]
        assert (await read_hr(sim.port, 36, 1)) == [160]  # the limit in effect
        assert [(c.register, c.old, c.new, c.verified) for c in result.registers] == [
            (91, 320, 160, True)
        ]
        snap = await until(coord, lambda s: s.value("Charge_Limit") == 16.0)
        assert snap.value("Active_Power") == 16 * 230

        result = await coord.execute("controlCharge", "Stop")  # GivTCP's MQTT name
        assert result.status == "ok", result.message
        assert (await read_hr(sim.port, 95, 1)) == [2]
        assert (await read_hr(sim.port, 0, 1)) != [4]
        await until(coord, lambda s: s.value("Charge_Control") == "Stop")
        result = await coord.execute("setChargeControl", {"mode": "Start"})
        assert result.status == "ok"
        assert (await read_hr(sim.port, 0, 1)) == [4]

        assert (await coord.execute("setChargeMode", "disable")).ok
        assert (await read_hr(sim.port, 93, 1)) == [1]
        await until(coord, lambda s: s.value("Plug_and_Go") == "disable")

        result = await coord.execute("setSystemTime", "22/07/2024 10:03:44")
        assert result.status == "ok", result.message
        clock = await read_hr(sim.port, 97, 6)
        assert clock[:5] == [2024, 7, 22, 10, 3]
        assert 44 <= clock[5] <= 50

        # Settings the daemon holds: published, and kept in the state file.
        assert (await coord.execute("setImportCap", {"current": "60"})).ok
        assert (await coord.execute("setChargingMode", {"state": "Hybrid"})).ok
        assert (await coord.execute("setMaxSessionEnergy", {"energy": "20.5"})).ok
        snap = await until(coord, lambda s: s.value("Import_Cap") == 60)
        assert snap.value("Charging_Mode") == "Hybrid"
        assert snap.value("Max_Session_Energy") == 20.5
        state = json.loads((tmp_path / "state" / f"{sim.serial}.evc.json").read_text())
        assert state["import_cap"] == 60
        assert state["user_limit"] == 16

        # Every register write was counted: 91, 95 twice, 93 and the six clock registers.
        ledger = json.loads((tmp_path / "state" / f"{sim.serial}.writes.json").read_text())
        assert ledger["total"] == 10 == sum(len(v) for _, v in sim.writes)
        assert ledger["registers"]["95"] == 2


BAD_COMMANDS: list[tuple[str, Any, str]] = [
    ("setCurrentLimit", {"current": "40"}, "current"),
    ("setCurrentLimit", {"current": "5"}, "current"),
    ("setCurrentLimit", "lots", "current"),
    ("setChargeControl", {"mode": "Pause"}, "mode"),
    ("setChargeMode", {"state": "sometimes"}, "state"),
    ("setSystemTime", {"dateTime": "30/02/2024 10:00:00"}, "dateTime"),
    ("setImportCap", {"current": "500"}, "current"),
    ("setChargingMode", {"state": "Eco"}, "state"),
    ("setMaxSessionEnergy", {"energy": "-2"}, "energy"),
    ("setCurrentLimit", {"current": "16", "slot": "1"}, "slot"),
    ("setWarpDrive", "9", "function"),
]


async def test_bad_payloads_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    async with running_charger(tmp_path) as (sim, coord):
        await coord.wait_identified()
        before = await read_hr(sim.port, 90, 13)
        for name, raw, field in BAD_COMMANDS:
            result = await coord.execute(name, raw)
            assert result.status == "rejected", (name, raw)
            assert any(e["field"] == field and e["allowed"] for e in result.errors), result.errors
        assert sim.writes == []
        assert await read_hr(sim.port, 90, 13) == before
        assert not (tmp_path / "state" / f"{sim.serial}.evc.json").exists()
        ledger = tmp_path / "state" / f"{sim.serial}.writes.json"
        assert not ledger.exists() or json.loads(ledger.read_text())["total"] == 0


async def test_write_budget_refuses_before_sending(tmp_path: Path) -> None:
    async with running_charger(tmp_path, write_budget=1) as (sim, coord):
        await coord.wait_identified()
        assert (await coord.execute("setCurrentLimit", "10")).ok
        result = await coord.execute("setCurrentLimit", "12")
        assert result.status == "rejected"
        assert result.errors[0]["field"] == "budget"
        assert sim.writes == [(91, (100,))]


async def test_a_car_charges_and_finishes(tmp_path: Path) -> None:
    # Ten simulated minutes a second: 1.5 kWh at 7.4 kW takes about 1.2 s.
    sim = ChargerSimulator(speed=600.0, plug_and_go=1)
    async with running_charger(tmp_path, sim) as (sim, coord):
        snap = await until(coord, lambda s: s.value("Charging_State") == "Idle")
        assert snap.value("Connection_Status") == "Not Connected"
        assert snap.value("Active_Power") == 0
        meter = snap.value("Meter_Energy")
        sim.plug_in(Car(capacity_kwh=10.0, soc=85.0))  # Plug and Go off: waits for Start
        await until(coord, lambda s: s.value("Charging_State") == "Connected")
        assert (await coord.execute("setChargeControl", "Start")).ok
        charging = await until(coord, lambda s: (s.value("Charge_Session_Energy") or 0) > 0.2)
        assert charging.value("Charging_State") == "Charging"
        assert charging.value("Active_Power") == 32 * 230  # current x voltage
        done = await until(coord, lambda s: s.value("Charging_State") == "End of Charging", 30)
        assert done.value("Active_Power") == 0
        assert done.value("Current_L1") == 0
        assert done.value("Charge_Session_Energy") == pytest.approx(1.5, abs=0.11)
        assert done.value("Meter_Energy") == pytest.approx(meter + 1.5, abs=0.11)
        assert done.value("Charge_Control") == "Stop"
        sim.unplug()
        gone = await until(coord, lambda s: s.value("Connection_Status") == "Not Connected")
        # GivTCP's rule: the last session's energy stays shown after the car leaves.
        assert gone.value("Charge_Session_Energy") == done.value("Charge_Session_Energy")


async def test_reboot_and_unreachable_with_the_port_lock_out(tmp_path: Path) -> None:
    sim = ChargerSimulator()
    sim.plug_in(Car())
    async with running_charger(tmp_path, sim) as (sim, coord):
        await until(coord, lambda s: s.value("Charging_State") == "Charging")
        connects = coord.conn.stats.connects
        await sim.reboot(downtime=0.2)
        await until(coord, lambda s: coord.conn.stats.connects > connects and not s.stale())
        assert coord.health().online

        pauses = coord.conn.stats.pauses  # a reboot may already have taken one
        await sim.close()  # unreachable
        stale = await until(coord, lambda s: s.values["Charging_State"].stale)
        assert stale.value("Charging_State") == "Charging"  # the last good value, marked stale
        # Three failed polls in a row: the port is left alone for the pause (GivTCP's lock-out).
        await until(coord, lambda s: coord.conn.stats.pauses > pauses)
        assert coord.conn.paused_for() > 0
        failures = coord.conn.stats.connect_failures
        result = await coord.execute("setCurrentLimit", "10")
        assert result.status == "failed"
        assert "lock-out" in result.message
        assert coord.conn.stats.connect_failures == failures  # nothing tried during the pause
        offline = await until(coord, lambda s: s.runall()["Stats"]["status"] == "offline")
        assert offline.value("Import_Cap") == 0

        await sim.start()  # back on the same port
        back = await until(coord, lambda s: s.fresh("Charging_State") is not None, 5)
        assert back.runall()["Stats"]["status"] == "online"


async def test_discover_identifies_a_charger_by_its_registers(tmp_path: Path) -> None:
    async with ChargerSimulator() as sim:
        found = await probe_charger("127.0.0.1", sim.port, timeout=1.0)
        assert found is not None
        assert (found.serial, found.state, found.evse_max_current) == (sim.serial, "Idle", 32.0)
        assert found.to_json()["kind"] == "charger"
    # A Modbus server that is not a charger: its registers do not describe one.
    other = ChargerSimulator(serial="\x01\x02")
    async with other:
        assert await probe_charger("127.0.0.1", other.port, timeout=1.0) is None
    # An open port that does not speak Modbus at all.
    silent: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda r, w: silent.append(w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:  # from Python 3.12 its exit waits for the connections to end
        assert await probe_charger("127.0.0.1", port, timeout=0.5) is None
        for writer in silent:
            writer.close()
    assert await probe_charger("127.0.0.1", port, timeout=0.5) is None  # nothing listening
