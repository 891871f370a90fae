"""Run a program as its production install would: only its runtime dependencies importable.

The development environment also holds the test and dev tools (pytest, hypothesis, schemathesis
and what they pull in, such as ``rich``). Some libraries import an optional package merely
because it is there: structlog loads ``rich`` (about 18 MiB) for tracebacks the daemon never
renders. A memory figure of the daemon must not carry that, so the benchmarks start it through
:func:`launcher`: every top-level module of an installed distribution outside the program's
runtime dependency closure is made unimportable (``sys.modules[name] = None``, which is how a
missing package behaves), before the program starts.
"""

from __future__ import annotations

import os
import re
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z0-9._-]+")


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def runtime_closure(distribution: str) -> frozenset[str]:
    """``distribution`` and everything its requirements (no extras) install, recursively."""
    seen: set[str] = set()
    todo = [distribution]
    while todo:
        name = _key(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for req in dist.requires or []:
            spec, _, marker = req.partition(";")
            extras = re.search(r"\[([^\]]*)\]", spec)
            if marker and "extra" in marker:
                continue  # an optional extra of that package
            match = _NAME.match(spec.strip())
            if match:
                todo.append(match.group(0))
                if extras:  # "influxdb-client[async]": the extra's requirements too
                    todo += _extra_requirements(match.group(0), extras.group(1).split(","))
    return frozenset(seen)


def _extra_requirements(name: str, extras: list[str]) -> list[str]:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return []
    out = []
    for req in dist.requires or []:
        spec, _, marker = req.partition(";")
        if any(re.search(rf"extra\s*==\s*['\"]{re.escape(e.strip())}['\"]", marker)
               for e in extras):  # fmt: skip
            match = _NAME.match(spec.strip())
            if match:
                out.append(match.group(0))
    return out


def _top_level(dist: metadata.Distribution) -> set[str]:
    text = dist.read_text("top_level.txt")
    if text:
        return {line.strip() for line in text.splitlines() if line.strip()}
    names = set()
    for file in dist.files or []:
        parts = Path(str(file)).parts
        if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] == "..":
            continue
        top = parts[0].removesuffix(".py")
        if top.isidentifier():
            names.add(top.split(".")[0])
    return names


def hidden_modules(distribution: str) -> list[str]:
    """Top-level modules a production install of ``distribution`` would not have."""
    keep = runtime_closure(distribution)
    kept: set[str] = set()
    other: set[str] = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        (kept if _key(name) in keep else other).update(_top_level(dist))
    return sorted(other - kept - set(sys.stdlib_module_names) - {"bench", "tests"})


def launcher(distribution: str, code: str) -> list[str]:
    """``python -c`` arguments that hide what ``distribution`` does not need, then run ``code``.

    The names are worked out here: the child's memory carries no metadata scan.
    """
    hidden = hidden_modules(distribution)
    return [sys.executable, "-c",
            f"import sys; sys.modules.update(dict.fromkeys({hidden!r})); {code}"]  # fmt: skip


# The daemon's command line, as the installed ``givtcp-async`` script runs it.
CLI = (
    "import sys; from givtcp_async.cli import main; sys.argv[0] = 'givtcp-async'; sys.exit(main())"
)
ROOT = Path(__file__).resolve().parents[1]  # the working directory the launcher needs


def passed_on() -> dict[str, str]:
    """The environment a measured process inherits besides its own: ``PYTHONPATH``, so that the
    same benchmarks can measure another checkout (``PYTHONPATH=<checkout>/src``)."""
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": path} if path else {}
