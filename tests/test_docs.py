"""The manual: generated reference pages match the code, and the site builds strictly.

The reference pages under docs/reference/ are written by ``python -m givtcp_async.docgen docs``;
a change to the settings, the register map, the catalogue or the REST sink that is not followed
by regenerating them fails here. The site is built with ``mkdocs build --strict`` (from
docs/requirements.txt, which scripts/test.sh installs) on a copy of the docs, so broken links
between pages fail too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Final

import pytest
from pydantic import BaseModel

from givtcp_async import docgen
from givtcp_async.config import LEGACY_VARIABLES, MqttConfig, Settings
from givtcp_async.control.catalogue import CATALOGUE
from givtcp_async.evc.controls import EVC_FUNCTIONS
from givtcp_async.sinks.openapi import build_openapi

ROOT: Final = Path(__file__).resolve().parents[1]
DOCS: Final = ROOT / "docs"
README: Final = ROOT / "README.md"
PAGES: Final = docgen.pages()


# --- generated pages ----------------------------------------------------------------------------


def test_generated_pages_match_the_code() -> None:
    stale = docgen.differences(DOCS, PAGES)
    assert stale == [], f"run: python -m givtcp_async.docgen docs ({', '.join(stale)})"


def test_a_changed_page_is_found_out_of_date(tmp_path: Path) -> None:
    docgen.write(tmp_path, PAGES)
    assert docgen.differences(tmp_path, PAGES) == []
    page = tmp_path / "reference" / "controls.md"
    page.write_text(page.read_text().replace("setChargeTarget", "setChargeTargets", 1))
    (tmp_path / "reference" / "rest.md").unlink()
    assert docgen.differences(tmp_path, PAGES) == ["reference/controls.md", "reference/rest.md"]
    assert docgen.main([str(tmp_path), "--check"], out=lambda _line: None) == 1
    assert docgen.main([str(tmp_path)], out=lambda _line: None) == 0
    assert docgen.main([str(tmp_path), "--check"], out=lambda _line: None) == 0


def test_the_reference_pages_are_in_the_site() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for rel in PAGES:
        if rel.endswith(".md"):
            assert rel in nav, rel


# --- settings: every key documented ---------------------------------------------------------------


def test_every_settings_field_has_an_attribute_docstring() -> None:
    assert docgen.undocumented() == []


def test_a_field_without_a_docstring_is_found() -> None:
    class Table(BaseModel):
        told: int = 1
        """Documented."""
        untold: int = 2

    class Top(BaseModel):
        section: Table = Table()
        """A table."""
        tables: list[Table] = []

    assert docgen.undocumented(Top) == ["section.untold", "tables", "tables.untold"]


def _keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for name, info in model.model_fields.items():
        inner = docgen._table_model(info.annotation)
        if inner is not None:
            out += _keys(inner, f"{prefix}{name}.")
        else:
            out.append((prefix.rstrip("."), name))
    return out


def test_configuration_reference_lists_every_key_its_variables_and_docstring() -> None:
    page = PAGES["reference/configuration.md"]
    sections = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^## `\[\[?([a-z.]+)\]?\]`\n(.*?)(?=^## |\Z)", page, re.M | re.S)
    }
    keys = _keys(Settings)
    assert {section for section, _ in keys} == set(sections)
    for section, name in keys:
        row = next(
            (line for line in sections[section].splitlines() if line.startswith(f"| `{name}` |")),
            None,
        )
        assert row is not None, f"{section}.{name}"
        between = "__<n>__" if section in ("inverters", "chargers") else "__"
        variable = f"GIVTCP_{section.upper().replace('.', '__')}{between}{name.upper()}"
        assert f"`{variable}`" in row, row
    for variable, _key in LEGACY_VARIABLES:
        assert f"`{variable}`" in page, variable
    port = docgen.attribute_docs(MqttConfig)["port"]
    assert port == "The broker's port."
    assert (
        f"| `port` | integer (≥ 1, ≤ 65535) | `1883` | `GIVTCP_MQTT__PORT` | `MQTT_PORT` | {port} |"
        in page
    )


# --- MQTT, controls, REST -------------------------------------------------------------------------


def test_mqtt_reference_names_topics_in_both_layouts_and_their_entities() -> None:
    page = PAGES["reference/mqtt-ha.md"]
    soc = next(line for line in page.splitlines() if line.startswith("| `Power/Power/SOC` |"))
    assert "| same | `sensor.givtcp_<serial>_soc` | sensor | battery, %, measurement |" in soc
    firmware = next(line for line in page.splitlines() if "`<serial>/Invertor_Firmware`" in line)
    assert "`Invertor_Details/Invertor_Firmware`" in firmware
    pack = page.split("## LV battery pack\n", 1)[1].split("\n## ", 1)[0]
    assert (
        "Topics under `Battery_Details/Battery_Stack_1/<pack serial>/` "
        "(`Battery_Details/<pack serial>/` in the givtcp2 layout)." in pack
    )
    assert "| `Battery_SOC` | same | `sensor.givtcp_<pack serial>_battery_soc` |" in pack
    assert "`switch.givtcp_<serial>_enable_charge_schedule`" in page
    for section in ("## Inverter", "## LV battery pack", "## Meter", "## EV charger"):
        assert section in page


def test_controls_reference_lists_every_function_alias_and_router() -> None:
    page = PAGES["reference/controls.md"]
    for fn in CATALOGUE:
        section = page.split(f"### `{fn.name}`\n", 1)[1].split("\n### ", 1)[0]
        assert f"**Writes:** {' '.join(fn.writes.split())}" in section, fn.name
        for alias in fn.aliases:
            assert f"`{alias}`" in section, alias
        for field in fn.json_schema().get("properties", {}):
            assert f"| `{field}` |" in section, (fn.name, field)
    for router in CATALOGUE.routers:
        assert f"| `{router}` |" in page
    for evc in EVC_FUNCTIONS:
        assert f"### `{evc.name}`" in page


def test_rest_reference_is_the_served_openapi_document() -> None:
    doc = json.loads(PAGES["reference/openapi.json"])
    assert doc == json.loads(json.dumps(build_openapi(CATALOGUE)))
    page = PAGES["reference/rest.md"]
    for path, item in doc["paths"].items():
        for method in item:
            assert f"| {method.upper()} | `{path}` |" in page, (method, path)


# --- the site -----------------------------------------------------------------------------------


def test_the_dev_extra_pins_what_docs_requirements_pin() -> None:
    pins = {
        line.strip()
        for line in (DOCS / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert pins
    assert all("==" in pin for pin in pins)
    assert pins <= set(dev["dev"])


def _mkdocs() -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.fail("mkdocs is missing: install the dev extra or docs/requirements.txt")


def _site_copy(tmp_path: Path) -> Path:
    """The project's mkdocs.yml, hook and docs/ copied to ``tmp_path``."""
    _mkdocs()
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(DOCS, tmp_path / "docs", ignore=shutil.ignore_patterns("notes-*.md"))
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "mkdocs_hooks.py", tmp_path / "scripts" / "mkdocs_hooks.py")
    for linked in ("Dockerfile", "config.example.toml", "repository.yaml"):
        shutil.copy(ROOT / linked, tmp_path / linked)
    for folder in ("ha-addon", "packaging", "bench", "tests"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("*.pyc"))
    return tmp_path


def _build(project: Path) -> subprocess.CompletedProcess[str]:
    # Not -q: mkdocs then drops the warnings before --strict counts them.
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(project / "site")],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def test_the_site_builds_strictly_and_leaves_helpers_notes_out(tmp_path: Path) -> None:
    project = _site_copy(tmp_path)
    (project / "docs" / "notes-somebranch.md").write_text(
        "# Notes\n\nNot in the nav, and a [link](nowhere.md) that goes nowhere.\n"
    )
    result = _build(project)
    assert result.returncode == 0, result.stderr
    site = project / "site"
    assert (site / "reference" / "mqtt-ha" / "index.html").is_file()
    assert (site / "reference" / "openapi.json").is_file()
    assert (site / "img" / "dashboard.png").is_file()
    assert not (site / "notes-somebranch").exists()
    # a link to a repository file outside docs/ is kept as its path
    assert "<code>Dockerfile</code>" in (site / "deployment" / "index.html").read_text()


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    project = _site_copy(tmp_path)
    page = project / "docs" / "mqtt.md"
    page.write_text(page.read_text() + "\nSee [the lost page](lost.md).\n")
    result = _build(project)
    assert result.returncode != 0
    assert "lost.md" in result.stderr


def test_a_link_to_a_missing_repository_file_fails_the_build(tmp_path: Path) -> None:
    project = _site_copy(tmp_path)
    page = project / "docs" / "deployment.md"
    page.write_text(page.read_text() + "\nSee [the unit](../packaging/gone.service).\n")
    result = _build(project)
    assert result.returncode != 0
    assert "packaging/gone.service" in result.stderr


# --- the front page -------------------------------------------------------------------------------


def test_readme_is_a_front_page_with_working_links() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text) < 15_000
    assert "givtcp-async demo" in text
    assert "scripts/test.sh" in text
    assert "docs/img/dashboard.png" in text
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert len(local) >= 10
    for link in local:
        assert (ROOT / link).exists(), link
