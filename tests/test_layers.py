"""The package's layers: no import circles, and no import from a lower floor to a higher one.

Every module's imports are read with :mod:`ast` (nothing is imported, so nothing runs), including
those inside functions and ``if TYPE_CHECKING:`` blocks: a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

PACKAGE: Final = "givtcp_async"
SRC: Final = Path(__file__).resolve().parents[1] / "src" / PACKAGE

# Lowest first. A module may import from its own floor and the floors below, never above. A name
# is a module or a package (then every module in it); the longest matching name decides.
FLOORS: Final[tuple[tuple[str, ...], ...]] = (
    ("givtcp_async", "errors", "backoff", "systemd", "latest"),  # version, errors, small helpers
    ("protocol",),  # frames and the byte stream: knows nothing of registers
    ("registers", "quality"),  # the register map (data) and the data-quality rules
    # reading a plant (and an EV charger over its own Modbus TCP link)
    (
        "cache",
        "connection",
        "reader",
        "assemble",
        "snapshot",
        "layout",
        "evc",
        "evc.connection",
        "evc.snapshot",
    ),
    # commands; remembered scans
    (
        "control",
        "tariffs",
        "scan_memory",
        "evc.payloads",
        "evc.state",
        "evc.controls",
        "evc.policy",
    ),
    ("config", "logging_setup"),  # settings models and sources
    ("ports",),  # what the outputs see of an inverter
    ("coordinator", "evc.coordinator"),  # one inverter (or charger): poll, snapshot, commands
    ("sinks",),  # outputs: MQTT, REST, InfluxDB, metrics
    ("daemon",),  # composes coordinators and sinks
    # tools; docgen writes the manual's reference pages from the map, settings and sinks
    ("simulator", "testing", "discover", "recording", "evc.simulator", "evc.discover", "docgen"),
    ("cli", "__main__"),  # the command line
)
# Arrows that the floors allow but the design does not: the outputs see inverters only
# through ports.InverterView, never the coordinator itself.
FORBIDDEN: Final[tuple[tuple[str, str], ...]] = (
    ("sinks", "coordinator"),
    ("sinks", "evc.coordinator"),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: Final = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The module of ours that ``name`` (a module, or an attribute of one) refers to."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports_of(module: str) -> set[str]:
    """The modules of ours that ``module`` imports anywhere in its text."""
    path = MODULES[module]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package_of(module, path).split(".")
                base = ".".join([*package[: len(package) - node.level + 1], base]).strip(".")
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name) if name.startswith(PACKAGE) else None
            if target is not None and target != module:
                found.add(target)
    return found


GRAPH: Final = {module: imports_of(module) for module in MODULES}


def _room(module: str) -> tuple[int, str] | None:
    """(floor, room name) of a module: the longest room name that contains it."""
    short = module.removeprefix(PACKAGE + ".") if module != PACKAGE else PACKAGE
    best: tuple[int, str] | None = None
    for floor, rooms in enumerate(FLOORS):
        for room in rooms:
            if (short == room or short.startswith(room + ".")) and (
                best is None or len(room) > len(best[1])
            ):
                best = (floor, room)
    return best


def _cycles() -> Iterator[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = [0]

    def visit(node: str) -> Iterator[list[str]]:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(GRAPH[node]):
            if nxt not in index:
                yield from visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                yield sorted(component)

    for node in sorted(GRAPH):
        if node not in index:
            yield from visit(node)


def _is_package_reexport(importer: str, imported: str) -> bool:
    """A package ``__init__`` gathering its own modules is not a circle with them."""
    return MODULES[importer].name == "__init__.py" and imported.startswith(importer + ".")


def test_every_module_has_a_floor() -> None:
    homeless = [m for m in MODULES if _room(m) is None]
    assert not homeless, f"give these modules a floor in tests/test_layers.py FLOORS: {homeless}"


def test_no_import_circles() -> None:
    circles = []
    for component in _cycles():
        members = set(component)
        # Drop the package -> own module arrows and look again: only real circles remain.
        inner = {
            m: {t for t in GRAPH[m] & members if not _is_package_reexport(m, t)} for m in members
        }
        if _has_cycle(inner):
            circles.append(component)
    assert not circles, f"import circles: {circles}"


def _has_cycle(graph: dict[str, set[str]]) -> bool:
    state: dict[str, int] = {}

    def walk(node: str) -> bool:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1 or (nxt not in state and walk(nxt)):
                return True
        state[node] = 2
        return False

    return any(node not in state and walk(node) for node in sorted(graph))


def test_no_import_goes_up_a_floor() -> None:
    upward = []
    for module, targets in sorted(GRAPH.items()):
        here = _room(module)
        assert here is not None
        for target in sorted(targets):
            there = _room(target)
            assert there is not None
            if there[0] > here[0]:
                upward.append(f"{module} ({here[1]}) -> {target} ({there[1]})")
    assert not upward, "imports from a lower floor to a higher one:\n" + "\n".join(upward)


@pytest.mark.parametrize(("importer", "imported"), FORBIDDEN)
def test_forbidden_arrows(importer: str, imported: str) -> None:
    bad = [
        f"{module} -> {target}"
        for module, targets in sorted(GRAPH.items())
        if (room := _room(module)) is not None and room[1] == importer
        for target in sorted(targets)
        if (there := _room(target)) is not None and there[1] == imported
    ]
    assert not bad, f"{importer} may not import {imported}: {bad}"


def test_the_walk_sees_lazy_and_type_only_imports() -> None:
    # The CLI imports almost everything inside its functions; the walk must see those arrows.
    cli = {t for m, ts in GRAPH.items() if m.split(".")[:2] == ["givtcp_async", "cli"] for t in ts}
    assert "givtcp_async.daemon" in cli
    assert "givtcp_async.ports" in GRAPH["givtcp_async.sinks.rest"]


def test_each_package_says_what_it_is_for() -> None:
    for module, path in MODULES.items():
        if path.name != "__init__.py" or module == PACKAGE:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc, f"{module}: its __init__ needs a docstring (what the room is for)"
        assert "May import" in doc, f"{module}: its docstring must say what it may import"
