"""Import a library's modules without running its package ``__init__`` files that import everything.

influxdb-client's package ``__init__`` files import every one of its ~370 API models and ~40
services (``influxdb_client``, ``.domain``, ``.service``, ``.client``, ``.client.write``), which
costs ~6 MiB of the ~16 MiB it adds to the daemon, although the InfluxDB output only writes
points (issue #16). :func:`import_with_lazy_packages` imports a module of such a library with
those packages replaced by stand-ins that have the same path (so their submodules import as
usual) and resolve each name the ``__init__`` would have imported on first access, from the
module the ``__init__`` imports it from. Only a package whose ``__init__`` is nothing but imports
(and names bound to imported names, like ``__version__ = VERSION``) is replaced; any other is
imported as it is. If the import fails with stand-ins, everything of the library imported so far
is dropped and the module is imported the ordinary way.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import types
from collections.abc import Iterable
from typing import Any

import structlog

log = structlog.get_logger(__name__)

__all__ = ["import_with_lazy_packages", "lazy_package"]


def _exports(source: str) -> dict[str, tuple[str, str]] | None:
    """``name -> (module, attribute)`` for every name the ``__init__`` binds, or None when it
    does anything but import (and alias imported names)."""
    names: dict[str, tuple[str, str]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if any(a.name == "*" for a in node.names):
                return None
            for alias in node.names:
                names[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Name)
            and node.value.id in names
        ):
            names[node.targets[0].id] = names[node.value.id]
        else:
            return None
    return names


def lazy_package(name: str) -> types.ModuleType | None:
    """Put a stand-in for package ``name`` in ``sys.modules`` (see the module docstring); None
    when ``name`` is imported already, is not a package or its ``__init__`` does more."""
    if name in sys.modules:
        return None
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or spec.submodule_search_locations is None:
        return None
    with open(spec.origin, encoding="utf-8") as file:
        exports = _exports(file.read())
    if exports is None:
        return None
    module = types.ModuleType(name)
    module.__file__ = spec.origin
    module.__path__ = list(spec.submodule_search_locations)
    module.__spec__ = spec
    module.__package__ = name

    def resolve(attr: str) -> Any:
        target = exports.get(attr)
        if target is None:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        value = getattr(importlib.import_module(target[0]), target[1])
        setattr(module, attr, value)
        return value

    module.__getattr__ = resolve  # type: ignore[method-assign]
    module.__dir__ = lambda: sorted({*module.__dict__, *exports})  # type: ignore[method-assign]
    sys.modules[name] = module
    return module


def import_with_lazy_packages(module: str, packages: Iterable[str]) -> types.ModuleType:
    """Import ``module`` with ``packages`` (outermost first) as lazy stand-ins."""
    if module in sys.modules:
        return sys.modules[module]
    root = module.split(".", 1)[0]
    try:
        for package in packages:
            lazy_package(package)
        return importlib.import_module(module)
    except (ImportError, AttributeError, OSError, SyntaxError) as err:  # it changed shape
        log.warning("lazy package import failed; importing the whole package", module=module,
                    error=repr(err))  # fmt: skip
        for name in [n for n in sys.modules if n == root or n.startswith(root + ".")]:
            del sys.modules[name]
        return importlib.import_module(module)
