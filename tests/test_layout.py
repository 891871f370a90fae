"""The output layout: GivTCP 3.5's tree by default, GivTCP 2.4's on request, one module for both.

The register map keeps its canonical groups; :mod:`givtcp_async.layout` places every value, and
runAll, MQTT, Home Assistant's state topics and the dashboard all follow it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from givtcp_async import __version__
from givtcp_async.config import load_config
from givtcp_async.errors import ConfigError
from givtcp_async.layout import TreeLayout, device_paths, group, parse_layout, render
from givtcp_async.quality.gates import Reading
from givtcp_async.registers import BCU_FIELDS, DERIVED
from givtcp_async.registers.catalog import ALL_INVERTER_FIELDS, fields_for
from givtcp_async.registers.models import detect_model
from givtcp_async.registers.schema import Derived, Field, Source
from givtcp_async.snapshot import DeviceSnapshot, Snapshot
from tests.rest_support import rest_rig

ENV = {"GIVTCP_INVERTERS__0__HOST": "192.0.2.1"}
AIO = detect_model({0: 0x8001, 19: 610, 21: 610})
GEN3 = detect_model({0: 0x2001, 19: 308, 21: 308})


@pytest.mark.parametrize(
    ("text", "layout"),
    [("givtcp3", TreeLayout.GIVTCP3), ("3.5", TreeLayout.GIVTCP3), (" V3 ", TreeLayout.GIVTCP3),
     ("givtcp2", TreeLayout.GIVTCP2), ("2.4", TreeLayout.GIVTCP2), ("2", TreeLayout.GIVTCP2)],
)  # fmt: skip
def test_layout_names_as_users_write_them(text: str, layout: TreeLayout) -> None:
    assert parse_layout(text) is layout
    settings = load_config(environ={**ENV, "GIVTCP_DATA__LAYOUT": text})
    assert settings.data.layout is layout


def test_a_layout_that_does_not_exist_is_refused_naming_the_key() -> None:
    assert load_config(environ=ENV).data.layout is TreeLayout.GIVTCP3
    with pytest.raises(ConfigError) as err:
        load_config(environ={**ENV, "GIVTCP_DATA__LAYOUT": "givtcp4"})
    assert "data.layout" in str(err.value)
    assert "GIVTCP_DATA__LAYOUT" in str(err.value)


def test_givtcp3_forms_of_the_values_givtcp_3_prints_as_text() -> None:
    three, two = TreeLayout.GIVTCP3, TreeLayout.GIVTCP2
    assert render(three, "Modbus_Version", 1.4) == "1.40"
    assert render(three, "Meter_Type", "EM115") == "Em115"
    assert render(three, "Meter_Type", 7) == 7  # an unknown code stays a number
    assert render(three, "Battery_Type", "Lithium") == "Lithium"
    assert render(three, "Battery_Calibration_Status", "Set Lower Limit") == "Set_lower_limit"
    assert render(three, "Invertor_Type", "Hybrid Gen3", GEN3) == "Hybrid_gen3"
    assert render(three, "Invertor_Type", "All in One", AIO) == "All_in_one"
    assert render(three, "SOC", 55) == 55
    for name, value in (("Modbus_Version", 1.4), ("Meter_Type", "EM115")):
        assert render(two, name, value) == value


def _device(source: Source, address: int, serial: str, **values: Any) -> DeviceSnapshot:
    specs = {f.name: f for f in fields_for(AIO, source=source)}
    return DeviceSnapshot(address, serial, {n: Reading(v) for n, v in values.items()}, specs)


def test_hv_modules_fill_their_stacks_and_the_bams_counts_sit_in_battery_details() -> None:
    stacks = (
        _device(Source.BCU, 0x70, "BX0001", Stack_Module_Count=2, Stack_Voltage=300.1),
        _device(Source.BCU, 0x71, "BX0002", Stack_Module_Count=1, Stack_Voltage=301.2),
    )
    modules = tuple(
        _device(Source.BMU, 0x50 + i, f"HX000{i}", Battery_Cell_1_Voltage=3.3) for i in range(3)
    )
    bams = _device(Source.BAMS, 0xA0, "", BCU_Count=2)
    devices = (*stacks, *modules, bams)
    paths = device_paths(TreeLayout.GIVTCP3, devices)
    assert paths[0x70] == ("Battery_Details", "Battery_Stack_1")
    assert paths[0x71] == ("Battery_Details", "Battery_Stack_2")
    assert [paths[0x50 + i][1] for i in range(3)] == [
        "Battery_Stack_1",
        "Battery_Stack_1",
        "Battery_Stack_2",
    ]
    assert paths[0xA0] == ("Battery_Details",)
    snap = Snapshot("CH2345G001", AIO, datetime(2026, 1, 1, tzinfo=UTC), {}, {},
                    batteries=devices)  # fmt: skip
    tree = snap.runall()["Battery_Details"]
    assert tree["BCU_Count"] == 2
    assert tree["Battery_Stack_2"]["Stack_Voltage"] == 301.2
    assert tree["Battery_Stack_2"]["HX0002"]["Battery_Cell_1_Voltage"] == 3.3
    old = device_paths(TreeLayout.GIVTCP2, devices)
    assert old[0x70] == ("Battery_Details", "BX0001")
    assert old[0x51] == ("Battery_Details", "HX0001")


@pytest.mark.parametrize("layout", list(TreeLayout))
async def test_the_dashboard_shows_fields_that_the_runall_tree_has(
    tmp_path: Path, layout: TreeLayout
) -> None:
    async with rest_rig(tmp_path, data={"layout": layout.value}) as r:
        status, html = await r.get("")
        assert status == 200
        fields = set(re.findall(r'data-field="([^"]+)"', html))
        assert len(fields) > 20
        _, tree = await r.get("runAll")
        serial = str(r.rig.coordinator.serial)
        # The page shows every family's values (it hides what the model has not): each one it
        # names is a value of the register map, at its runAll path in this layout.
        details = "/".join(group(layout, ("Invertor_Details",), serial))
        specs: list[Field | Derived] = [*ALL_INVERTER_FIELDS, *DERIVED]
        known = {"/".join((*group(layout, s.path, serial), s.name)) for s in specs}
        stack = {f"Battery_Details/Battery_Stack_1/{f.name}" for f in BCU_FIELDS}
        known |= stack | set(leaf_paths(tree))  # and the controls' own state (Force_Charge)
        unknown = {p for p in fields if p.replace("@details", details) not in known}
        assert unknown == set()
        # The single-phase plant's own: everything of the power flow and battery is in runAll.
        shown_here = re.findall(
            r'data-field="((?:Power/(?:Power|Flows)|Energy/Today)/[^"]+)"', html
        )
        for path in ("Power/Flows/Solar_to_House", "Power/Power/SOC", "Power/Power/PV_Power",
                     "Energy/Today/PV_Energy_Today_kWh"):  # fmt: skip
            assert path in shown_here
            node: Any = tree
            for part in path.split("/"):
                node = node.get(part) if isinstance(node, dict) else None
            assert node is not None, path
        details = {TreeLayout.GIVTCP3: serial, TreeLayout.GIVTCP2: "Invertor_Details"}[layout]
        assert tree[details]["Invertor_Serial_Number"] == serial
        # The version tells clients (Predbat) which GivTCP's answers these are, and what answers.
        release = {TreeLayout.GIVTCP3: "3.5.0", TreeLayout.GIVTCP2: "2.4.9"}[layout]
        assert tree["Stats"]["GivTCP_Version"] == f"{release} (givtcp-async {__version__})"
        assert tree["Stats"]["status"] == "online"


def leaf_paths(tree: dict[str, Any], prefix: str = "") -> list[str]:
    """Every leaf path of a runAll tree."""
    out: list[str] = []
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else key
        out.extend(leaf_paths(value, path) if isinstance(value, dict) else [path])
    return out
