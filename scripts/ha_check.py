#!/usr/bin/env python3
"""A real Home Assistant against the demo: discovery accepted, entity ids, the device page.

Not part of the test suite (it needs a Home Assistant install and a browser). It starts a
mosquitto on a free 127.0.0.1 port, a Home Assistant from ``--hass`` (a venv with
``homeassistant``, ``home-assistant-frontend``, ``paho-mqtt`` and the requirements of the
integrations it loads; started with ``--skip-pip`` unless ``--pip``; checked with 2025.4.4 on
Python 3.13, earlier with 2024.1.6 on 3.11) with a fresh configuration (the MQTT integration
pointed at that broker, a user, onboarding done), and ``givtcp-async demo`` publishing to the
broker (``--env KEY=VALUE`` adds to its environment: ``GIVTCP_*`` set its configuration).
Once the entities are in, it prints a JSON report: entity counts per platform, the ids Predbat
uses that are missing, every MQTT entity's id against the one its discovery payload asks for
and against its unique id, the payloads without an entity, the Energy dashboard's validation
of the lifetime counters (after the recorder's first statistics), notifications, repairs,
discovery flows and every warning and error in Home Assistant's log; with ``--screenshot
FILE`` it takes the inverter's device page with Chromium (playwright, ``/usr/bin/chromium``).
It exits 1 on a missing Predbat id, an id not as sent, a payload without an entity, an
Energy validation issue or a log problem.

    python scripts/ha_check.py --hass /tmp/ha13 --screenshot docs/img/ha-device-page.png
"""

# Starting the broker, Home Assistant and the demo as plain processes is fine here: nothing waits
# on them inside the event loop.
# ruff: noqa: ASYNC220, ASYNC221

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt

CLIENT_ID = "http://127.0.0.1/"
# Log lines this setup causes itself (not discovery's): the venv holds every requirement.
EXPECTED = ("Skipping pip installation of required modules",)
USER, PASSWORD = "givtcp", "givtcp-async-check"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(config: Path, http_port: int, mqtt_port: int) -> None:
    (config / ".storage").mkdir(parents=True)
    (config / "configuration.yaml").write_text(
        "homeassistant:\n  name: Home\n  latitude: 51.5\n  longitude: -0.1\n"
        "  elevation: 10\n  unit_system: metric\n  time_zone: Europe/London\n"
        "  currency: GBP\n  country: GB\n"
        f"http:\n  server_host: 127.0.0.1\n  server_port: {http_port}\n"
        "frontend:\nconfig:\nhistory:\nenergy:\nlogger:\n  default: warning\n"
    )
    entry = {
        "entry_id": uuid.uuid4().hex,
        "version": 1,
        "domain": "mqtt",
        "title": "127.0.0.1",
        "data": {"broker": "127.0.0.1", "port": mqtt_port, "discovery": True},
        "options": {},
        "pref_disable_new_entities": False,
        "pref_disable_polling": False,
        "source": "user",
        "unique_id": None,
        "disabled_by": None,
    }
    store = {
        "version": 1,
        "minor_version": 1,
        "key": "core.config_entries",
        "data": {"entries": [entry]},
    }
    (config / ".storage" / "core.config_entries").write_text(json.dumps(store))
    onboarding = {
        "version": 4,
        "minor_version": 1,
        "key": "onboarding",
        "data": {"done": ["user", "core_config", "analytics", "integration"]},
    }
    (config / ".storage" / "onboarding").write_text(json.dumps(onboarding))


async def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as resp:
                    if resp.status < 500:
                        return
            await asyncio.sleep(1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


async def token(base: str) -> str:
    """An access token through Home Assistant's login flow (as the frontend gets one)."""
    async with aiohttp.ClientSession() as s:
        flow = await (
            await s.post(
                f"{base}/auth/login_flow",
                json={
                    "client_id": CLIENT_ID,
                    "handler": ["homeassistant", None],
                    "redirect_uri": CLIENT_ID,
                },
            )
        ).json()
        done = await (
            await s.post(
                f"{base}/auth/login_flow/{flow['flow_id']}",
                json={"client_id": CLIENT_ID, "username": USER, "password": PASSWORD},
            )
        ).json()
        tokens = await (
            await s.post(
                f"{base}/auth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": done["result"],
                    "client_id": CLIENT_ID,
                },
            )
        ).json()
        return str(tokens["access_token"])


async def states(base: str, bearer: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {bearer}"}) as s,
        s.get(f"{base}/api/states") as resp,
    ):
        result: list[dict[str, Any]] = await resp.json()
        return result


async def ws_calls(base: str, bearer: str, *calls: dict[str, Any]) -> list[Any]:
    """The results of ``calls`` over the websocket API, in order."""
    results: list[Any] = []
    async with aiohttp.ClientSession() as s, s.ws_connect(f"{base}/api/websocket") as ws:
        await ws.receive_json()
        await ws.send_json({"type": "auth", "access_token": bearer})
        await ws.receive_json()
        for n, call in enumerate(calls, 1):
            await ws.send_json({"id": n, **call})
            reply = await ws.receive_json()
            if not reply.get("success"):
                raise RuntimeError(f"{call['type']}: {reply.get('error')}")
            results.append(reply["result"])
    return results


async def device_id(base: str, bearer: str, name: str) -> str:
    """The device registry id of the device called ``name``."""
    (devices,) = await ws_calls(base, bearer, {"type": "config/device_registry/list"})
    for device in devices:
        if device.get("name") == name:
            return str(device["id"])
    raise RuntimeError(f"no device {name!r}")


async def retained_topics(port: int) -> dict[str, bytes]:
    """The retained discovery payloads of our node on the broker, by topic (they all arrive at
    once on subscribing: a quiet second ends the read)."""
    out: dict[str, bytes] = {}
    async with aiomqtt.Client("127.0.0.1", port, identifier="ha-check") as client:
        await client.subscribe("homeassistant/+/GivEnergy/+/config")
        with contextlib.suppress(TimeoutError):
            while True:
                async with asyncio.timeout(1.0):
                    message = await anext(client.messages)
                if message.payload:
                    out[message.topic.value] = bytes(message.payload)
    return out


async def discovery_configs(port: int) -> dict[str, dict[str, Any]]:
    """Every entity config the retained discovery payloads hold, by unique id, with ``platform``
    added: a per-entity payload as it is, a device payload's components each with the device."""
    configs: dict[str, dict[str, Any]] = {}
    for topic, payload in (await retained_topics(port)).items():
        body = json.loads(payload)
        platform = topic.split("/")[1]
        if platform == "device":
            for comp in body.get("cmps", {}).values():
                if len(comp) > 1:  # a component of its platform alone is a removal
                    config = {**comp, "dev": body["dev"], "platform": comp["p"]}
                    configs[str(config["uniq_id"])] = config
        else:
            body["platform"] = platform
            configs[str(body.get("uniq_id", body.get("unique_id")))] = body
    return configs


def slug(text: str) -> str:
    """Home Assistant's slugify for ASCII text: lower case, other runs to one underscore."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def id_check(registry: list[dict[str, Any]], configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every MQTT entity's id against the one its payload asks for on this version (``object_id``
    where sent, else the device's name and the entity's) and against the platform and the unique
    id in lower case (GivTCP's rule, but for the battery stack's ``givtcp_battery_stack_1_*``)."""
    mqtt = {e["unique_id"]: e for e in registry if e["platform"] == "mqtt"}
    names = {
        str(c.get("dev", {}).get("ids", [""])[0]): c["dev"]["name"]
        for c in configs.values()
        if "name" in c.get("dev", {})
    }
    not_as_sent, not_givtcp = [], []
    for unique, entry in sorted(mqtt.items()):
        domain = entry["entity_id"].split(".")[0]
        config = configs.get(unique)
        if config is not None:
            object_id = config.get("obj_id", config.get("object_id"))
            if object_id is None:
                device = names.get(str(config["dev"]["ids"][0]), "")
                object_id = slug(f"{device} {config['name']}")
            if entry["entity_id"] != f"{domain}.{object_id}":
                not_as_sent.append(f"{entry['entity_id']} (sent: {object_id})")
        if entry["entity_id"] != f"{domain}.{slug(unique)}":
            not_givtcp.append(f"{entry['entity_id']} (unique id {unique})")
    return {
        "registry_entries": len(mqtt),
        "disabled": sum(e["disabled_by"] is not None for e in mqtt.values()),
        "discovery_payloads": len(configs),
        "payloads_without_entity": sorted(set(configs) - set(mqtt)),
        "ids_not_as_sent": not_as_sent,
        "ids_not_from_unique_id": not_givtcp,
    }


NO_PRICE = {"entity_energy_price": None, "number_energy_price": None}
ENERGY_SOURCES = {
    "grid_in": "import_energy_total_kwh",
    "grid_out": "export_energy_total_kwh",
    "solar": "pv_energy_total_kwh",
    "battery_in": "battery_charge_energy_total_kwh",
    "battery_out": "battery_discharge_energy_total_kwh",
}


async def energy_check(base: str, bearer: str, serial: str, wait: float) -> Any:
    """The Energy dashboard's own validation of the sensors docs/home-assistant.md names, once
    the recorder has their long-term statistics (compiled every 5 minutes; up to ``wait``
    seconds, else it reports ``statistics_not_defined``)."""
    ids = {k: f"sensor.givtcp_{serial}_{v}" for k, v in ENERGY_SOURCES.items()}
    prefs = {
        "type": "energy/save_prefs",
        "energy_sources": [
            {
                "type": "grid",
                "flow_from": [{"stat_energy_from": ids["grid_in"], **NO_PRICE, "stat_cost": None}],
                "flow_to": [
                    {"stat_energy_to": ids["grid_out"], **NO_PRICE, "stat_compensation": None}
                ],
                "cost_adjustment_day": 0,
            },
            {"type": "solar", "stat_energy_from": ids["solar"]},
            {
                "type": "battery",
                "stat_energy_from": ids["battery_out"],
                "stat_energy_to": ids["battery_in"],
            },
        ],
        "device_consumption": [],
    }
    await ws_calls(base, bearer, prefs)
    deadline = time.monotonic() + wait
    while True:
        (result,) = await ws_calls(base, bearer, {"type": "energy/validate"})
        issues = [i["type"] for source in result["energy_sources"] for i in source]
        if "statistics_not_defined" not in issues or time.monotonic() > deadline:
            return result
        await asyncio.sleep(10)


async def screenshot(base: str, device: str, path: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"]
        )
        page = await browser.new_page(viewport={"width": 1400, "height": 1800})
        await page.goto(f"{base}/")
        # The login form renders after its script loads: fill it once its fields are there.
        await page.wait_for_selector("input[name=username]", timeout=240_000)
        await page.fill("input[name=username]", USER)
        await page.fill("input[name=password]", PASSWORD)
        await page.keyboard.press("Enter")
        await page.wait_for_url(lambda url: "/auth/authorize" not in url, timeout=240_000)
        await page.wait_for_selector("home-assistant-main", state="attached", timeout=240_000)
        # Navigate inside the app (a reload would drop the session's tokens).
        await page.evaluate(
            "path => { history.pushState(null, '', path);"
            " window.dispatchEvent(new CustomEvent('location-changed')); }",
            f"/config/devices/device/{device}",
        )
        # The device page is ready once its cards name the entities (a slow machine takes a
        # while to load the frontend).
        await page.wait_for_selector("text=Target SOC", timeout=240_000)
        await page.wait_for_timeout(3000)
        path.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(path), full_page=True)
        await browser.close()


def start_demo(log_path: Path, rest_port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [
                str(Path(sys.executable).parent / "givtcp-async"),
                "demo",
                "--port",
                str(rest_port),
                "--mqtt-host",
                "127.0.0.1",
            ],
            stdout=log,
            stderr=log,
            env=env,
        )


async def second_phase(
    procs: list[subprocess.Popen[bytes]],
    work: Path,
    base: str,
    bearer: str,
    mqtt_port: int,
    rest_port: int,
    settle: float,
    env: dict[str, str],
) -> dict[str, Any]:
    """The demo stopped and started again with ``env`` (another discovery format, say), the
    same Home Assistant watching: what changed in its entity registry, what its log said."""
    demo = procs.pop()
    demo.send_signal(signal.SIGTERM)
    demo.wait(timeout=20)
    (before,) = await ws_calls(base, bearer, {"type": "config/entity_registry/list"})
    mark = len((work / "hass.log").read_text(errors="replace").splitlines())
    procs.append(start_demo(work / "demo2.log", rest_port, env))
    await asyncio.sleep(settle)
    (after,) = await ws_calls(base, bearer, {"type": "config/entity_registry/list"})
    old = {e["unique_id"]: e["entity_id"] for e in before if e["platform"] == "mqtt"}
    new = {e["unique_id"]: e["entity_id"] for e in after if e["platform"] == "mqtt"}
    found = [s for s in await states(base, bearer) if "givtcp" in s["entity_id"]]
    enabled = {e["entity_id"] for e in after if e["platform"] == "mqtt" and not e["disabled_by"]}
    lines = (work / "hass.log").read_text(errors="replace").splitlines()[mark:]
    topics = await retained_topics(mqtt_port)
    fmt = env.get("GIVTCP_MQTT__DISCOVERY_FORMAT", "device")
    return {
        "env": {k: v for k, v in env.items() if k.startswith("GIVTCP_")},
        "registry_entries": len(new),
        "entity_ids_changed": sorted(
            f"{old[u]} -> {new[u]}" for u in old.keys() & new.keys() if old[u] != new[u]
        ),
        "entries_removed": sorted(old[u] for u in old.keys() - new.keys()),
        "entries_added": sorted(new[u] for u in new.keys() - old.keys()),
        "unavailable": sorted(
            s["entity_id"]
            for s in found
            if s["state"] == "unavailable" and s["entity_id"] in enabled
        ),
        "retained_configs": dict(Counter(t.split("/")[1] for t in topics)),
        "retained_other_format": sum(
            (t.split("/")[1] == "device") != (fmt == "device") for t in topics
        ),
        "log_problems": [
            line
            for line in lines
            if (" WARNING " in line or " ERROR " in line) and not any(e in line for e in EXPECTED)
        ][:20],
    }


async def run(
    hass: Path,
    shot: Path | None,
    settle: float,
    statistics_wait: float,
    demo_env: dict[str, str],
    pip: bool,
    then_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="ha-check-"))
    http_port, mqtt_port, rest_port = free_port(), free_port(), free_port()
    (work / "mosquitto.conf").write_text(
        f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
    )
    config = work / "config"
    write_config(config, http_port, mqtt_port)
    python = str(hass / "bin" / "python")
    subprocess.run(
        [
            python,
            "-m",
            "homeassistant",
            "--script",
            "auth",
            "-c",
            str(config),
            "add",
            USER,
            PASSWORD,
        ],
        check=True,
        capture_output=True,
    )
    procs: list[subprocess.Popen[bytes]] = []
    base = f"http://127.0.0.1:{http_port}"
    try:
        procs.append(
            subprocess.Popen(
                ["mosquitto", "-c", str(work / "mosquitto.conf")], stderr=subprocess.DEVNULL
            )
        )
        with (work / "hass.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        python,
                        "-m",
                        "homeassistant",
                        "-c",
                        str(config),
                        *([] if pip else ["--skip-pip"]),
                    ],
                    stdout=log,
                    stderr=log,
                )
            )
        await wait_http(f"{base}/manifest.json", 300)
        env = {**os.environ, **demo_env, "GIVTCP_MQTT__PORT": str(mqtt_port)}
        procs.append(start_demo(work / "demo.log", rest_port, env))
        await asyncio.sleep(settle)
        bearer = await token(base)
        found = [s for s in await states(base, bearer) if "givtcp" in s["entity_id"]]
        ids = {s["entity_id"] for s in found}
        serial = "sa2347g000"
        # Every id Predbat's template uses (/work/shared/reference/predbat.md), then others.
        predbat = [
            *(
                f"sensor.givtcp_{serial}_{name}"
                for name in (
                    "soc_kwh",
                    "load_energy_today_kwh",
                    "import_energy_today_kwh",
                    "export_energy_today_kwh",
                    "pv_energy_today_kwh",
                    "battery_power",
                    "pv_power",
                    "load_power",
                    "grid_power",
                    "battery_capacity_kwh",
                    "invertor_time",
                    "battery_charge_energy_today_kwh",
                    "battery_discharge_energy_today_kwh",
                )
            ),
            *(
                f"number.givtcp_{serial}_{name}"
                for name in (
                    "battery_charge_rate",
                    "battery_discharge_rate",
                    "battery_power_reserve",
                    "target_soc",
                    "discharge_target_soc_1",
                )
            ),
            *(
                f"select.givtcp_{serial}_{name}"
                for name in (
                    "mode",
                    "charge_start_time_slot_1",
                    "charge_end_time_slot_1",
                    "discharge_start_time_slot_1",
                    "discharge_end_time_slot_1",
                    "battery_pause_mode",
                    "battery_pause_start_time_slot",
                    "battery_pause_end_time_slot",
                )
            ),
            *(
                f"switch.givtcp_{serial}_{name}"
                for name in (
                    "enable_charge_target",
                    "enable_charge_schedule",
                    "enable_discharge_schedule",
                    "real_time_control",
                )
            ),
            f"button.givtcp_{serial}_reboot_invertor",
            "sensor.givtcp_battery_stack_1_bms_temperature",
            "sensor.givtcp_dz2348g101_battery_soc",
            # Ids Home Assistant derives itself (no id sent): the device's name and the entity's.
            f"sensor.givtcp_{serial}_pv_power_string_1",
            "sensor.givtcp_dz2348g101_battery_voltage",
            # Sent as default_entity_id and object_id: not derivable from the name.
            f"sensor.givtcp_{serial}_invertor_temperature",
        ]
        (registry,) = await ws_calls(base, bearer, {"type": "config/entity_registry/list"})
        ids_report = id_check(registry, await discovery_configs(mqtt_port))
        notes, repairs, flows = await ws_calls(
            base,
            bearer,
            {"type": "persistent_notification/get"},
            {"type": "repairs/list_issues"},
            {"type": "config_entries/flow/progress"},
        )
        energy = await energy_check(base, bearer, serial, statistics_wait)
        log_lines = (work / "hass.log").read_text(errors="replace").splitlines()
        problems = [
            line
            for line in log_lines
            if (" WARNING " in line or " ERROR " in line) and not any(e in line for e in EXPECTED)
        ]
        report: dict[str, Any] = {
            "home_assistant": subprocess.run(
                [python, "-c", "import homeassistant.const as c;print(c.__version__)"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip(),
            "entities": len(found),
            "by_platform": dict(Counter(s["entity_id"].split(".")[0] for s in found)),
            "unavailable": sum(s["state"] == "unavailable" for s in found),
            "predbat_ids_missing": [i for i in predbat if i not in ids],
            "ids": ids_report,
            "energy_validation": energy,
            "notifications": [n.get("title") or n.get("message") for n in notes],
            "repairs": [f"{i['domain']}: {i['translation_key']}" for i in repairs["issues"]],
            "discovery_flows": [f"{f['handler']} ({f['context'].get('source')})" for f in flows],
            "log_problems": problems[:20],
            "work": str(work),
        }
        if then_env:
            report["then"] = await second_phase(
                procs, work, base, bearer, mqtt_port, rest_port, settle, {**env, **then_env}
            )
        if shot is not None:
            device = await device_id(base, bearer, "GivTCP SA2347G000")
            await screenshot(base, device, shot)
            report["screenshot"] = str(shot)
        return report
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hass", type=Path, default=Path("/tmp/ha"), help="venv with Home Assistant"
    )
    parser.add_argument("--screenshot", type=Path, help="PNG of the inverter's device page")
    parser.add_argument("--settle", type=float, default=45.0, help="seconds for discovery")
    parser.add_argument(
        "--statistics-wait",
        type=float,
        default=330.0,
        help="seconds to wait for the energy sensors' statistics before the Energy validation",
    )
    parser.add_argument(
        "--time-entities",
        default="select",
        choices=("auto", "select", "time"),
        help="the demo's mqtt.time_entities (select: Home Assistant before 2026.5); "
        "short for --env GIVTCP_MQTT__TIME_ENTITIES=...",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a variable for the demo's environment (repeatable; GIVTCP_* set its config)",
    )
    parser.add_argument(
        "--then-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="then restart the demo with this variable too (repeatable), and report what "
        "changed in Home Assistant (e.g. GIVTCP_MQTT__DISCOVERY_FORMAT=device after =entity)",
    )
    parser.add_argument(
        "--pip",
        action="store_true",
        help="let Home Assistant install missing requirements (default: --skip-pip)",
    )
    args = parser.parse_args()
    demo_env = {"GIVTCP_MQTT__TIME_ENTITIES": args.time_entities}
    then_env: dict[str, str] = {}
    for into, items in ((demo_env, args.env), (then_env, args.then_env)):
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key:
                parser.error(f"{item!r}: expected KEY=VALUE")
            into[key] = value
    report = asyncio.run(
        run(
            args.hass,
            args.screenshot,
            args.settle,
            args.statistics_wait,
            demo_env,
            args.pip,
            then_env,
        )
    )
    print(json.dumps(report, indent=2))
    failed = (
        report["predbat_ids_missing"]
        or report["log_problems"]
        or report["ids"]["ids_not_as_sent"]
        or report["ids"]["payloads_without_entity"]
        or any(report["energy_validation"]["energy_sources"])
    )
    then = report.get("then")
    if then is not None:
        failed = failed or any(
            then[k]
            for k in (
                "entity_ids_changed", "entries_removed", "entries_added", "unavailable",
                "retained_other_format", "log_problems",
            )
        )  # fmt: skip
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
