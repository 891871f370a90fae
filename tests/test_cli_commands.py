"""The CLI package: one module per command, each imported only when its command is chosen."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

from givtcp_async.cli import build_parser
from givtcp_async.cli.common import COMMANDS

_PROBE = """
import json, sys
from givtcp_async.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.startswith("givtcp_async."))))
"""


def _loaded(*argv: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=60
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_only_the_chosen_command_is_imported() -> None:
    loaded = _loaded("config", "check", "--help")
    commands = {f"givtcp_async.cli.{name}" for name in COMMANDS}
    assert loaded & commands == {"givtcp_async.cli.config"}
    assert "givtcp_async.daemon" not in loaded  # nor what only other commands need
    assert "givtcp_async.simulator.plant" not in loaded


def test_every_command_has_its_module() -> None:
    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "command"]
    assert list(actions[0].choices or ()) == list(COMMANDS)  # the order --help lists them
    for name in COMMANDS:
        module = importlib.import_module(f"givtcp_async.cli.{name}")
        assert callable(module.register), name
        assert callable(module.handle), name
