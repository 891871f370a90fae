"""OpenAPI 3.1 description of the REST API, generated from the control catalogue, and /docs.

Every control function, alias and slot router is one ``POST`` operation whose request body is
the function's pydantic payload schema (JSON object) or a plain-text value; the data routes are
described by hand, except the runAll tree, whose schema follows from the register map
(:mod:`givtcp_async.sinks.runall_schema`). When EV chargers are served, their routes are in it
too: ``/getEVCCache`` (the charger's tree, from the charger's register map) and one ``POST``
operation per charger function and alias (:data:`givtcp_async.evc.controls.EVC_FUNCTIONS`),
with the function's payload schema. :func:`docs_html` renders the document as one
self-contained page (no scripts, no external assets).
"""

from __future__ import annotations

import copy
import html
import json
from collections.abc import Mapping
from typing import Any, Final, Protocol

from pydantic import AliasChoices

from givtcp_async import __version__
from givtcp_async.control.catalogue import Catalogue, ControlFunction, Router
from givtcp_async.control.payloads import Payload
from givtcp_async.control.result import CommandResult
from givtcp_async.evc.controls import EVC_FUNCTIONS, EvcFunction
from givtcp_async.layout import TreeLayout
from givtcp_async.registers.evc import ALL_SPECS as EVC_SPECS
from givtcp_async.registers.models import Model
from givtcp_async.sinks.runall_schema import response_schema as runall_response_schema
from givtcp_async.sinks.runall_schema import runall_schemas, tree_schema, value_schema

JSON: Final = "application/json"
TEXT: Final = "text/plain"

GROUP_TITLES: Final = {
    "data": "Data",
    "charge": "Charging",
    "discharge": "Discharging",
    "battery": "Battery and modes",
    "slots": "Time slots",
    "rates": "Charge and discharge rates",
    "overrides": "Timed overrides",
    "system": "System",
    "three_phase": "Three-phase inverters",
    "ems": "EMS plants",
    "aliases": "GivTCP aliases",
    "evc": "EV charger",
}
EVC_CACHE: Final = "EvcCache"

_ERROR: Final = {
    "type": "object",
    "description": "An error that is not a command result.",
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
    },
    "required": ["error", "message"],
    "additionalProperties": True,
}

_HEALTH: Final = {
    "type": "object",
    "properties": {
        "status": {"enum": ["ok", "stale"]},
        "version": {"type": "string"},
        "inverters": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "serial": {"type": ["string", "null"]},
                    "name": {"type": "string"},
                    "online": {"type": "boolean"},
                    "connected": {"type": "boolean"},
                    "detected": {"type": "boolean"},
                    "last_good_poll": {"type": ["string", "null"], "format": "date-time"},
                    "last_good_poll_age_seconds": {"type": ["number", "null"]},
                    "stale_after_seconds": {"type": "number"},
                    "consecutive_failures": {"type": "integer"},
                },
                "required": ["serial", "name", "online", "last_good_poll_age_seconds"],
            },
        },
    },
    "required": ["status", "inverters"],
}

_STATUS_TEXT: Final = {
    200: "The command was carried out (status ok): every planned value is on the inverter.",
    400: "The body could not be read as a payload (not UTF-8, not JSON, a JSON array).",
    401: "A bearer token is configured and the request did not carry it.",
    403: "A browser request from another site (Origin does not match Host) without the token.",
    404: "No such function (or inverter).",
    405: "Control functions are called with POST.",
    413: "The body is too large.",
    422: "The payload was refused (errors name the field, the value and what is allowed), or "
    "the function is not available on this inverter. Nothing was written.",
    429: "The daily write budget is used up. Nothing was written.",
    502: "The inverter did not carry the command out (failed: nothing changed) or only part "
    "of it (partial: `written` lists exactly what was written).",
    503: "The inverter is not reachable (not connected or not detected yet).",
}


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                v.replace("#/$defs/", "#/components/schemas/")
                if k == "$ref" and isinstance(v, str)
                else _rewrite_refs(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def _hoist(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Move a pydantic schema's ``$defs`` into the components, rewriting the references."""
    schema = copy.deepcopy(schema)
    for name, sub in schema.pop("$defs", {}).items():
        components.setdefault(name, _rewrite_refs(sub))
    return _rewrite_refs(schema)  # type: ignore[no-any-return]


def result_schema(components: dict[str, Any]) -> dict[str, Any]:
    schema = _hoist(CommandResult.model_json_schema(mode="serialization"), components)
    props = schema.setdefault("properties", {})
    props["result"] = {"type": "string", "description": "The message (GivTCP's key)."}
    props["serial"] = {"type": ["string", "null"], "description": "The inverter addressed."}
    props["written"] = {
        "type": "array",
        "description": "Registers written and echoed by this command, in order.",
        "items": {
            "type": "object",
            "properties": {"register": {"type": "integer"}, "value": {"type": "integer"}},
            "required": ["register", "value"],
        },
    }
    return schema


class _Described(Protocol):
    """What :func:`example_body` needs of a function (inverter or charger)."""

    @property
    def example(self) -> Any: ...

    @property
    def payload(self) -> type[Payload]: ...


def example_body(fn: _Described) -> dict[str, Any]:
    """The catalogue example as a JSON object using the schema's field names."""
    ex = fn.example
    if ex is None:
        return {}
    if not isinstance(ex, Mapping):
        key = fn.payload.scalar_field
        return {key: ex} if key else {}
    out: dict[str, Any] = {}
    for key, value in ex.items():
        name = key
        for field_name, info in fn.payload.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices) and key in alias.choices:
                name = str(alias.choices[0]) if alias.choices else field_name
        out[name] = value
    return out


def _body(schema: dict[str, Any], example: Mapping[str, Any], required: bool) -> dict[str, Any]:
    plain = next(iter(example.values()), None) if len(example) == 1 else None
    content: dict[str, Any] = {JSON: {"schema": schema, "example": dict(example)}}
    content[TEXT] = {
        "schema": {
            "type": "string",
            "description": "A plain value for the payload's one field (GivTCP's MQTT form).",
        }
    }
    if plain is not None:
        content[TEXT]["example"] = str(plain)
    return {"required": required, "content": content}


def _response_components() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code, text in _STATUS_TEXT.items():
        ref = "Error" if code in (401, 403, 404, 405, 413) else "CommandResult"
        schema = {"$ref": f"#/components/schemas/{ref}"}
        out[f"Control{code}"] = {"description": text, "content": {JSON: {"schema": schema}}}
    return out


def _responses(*, auth: bool) -> dict[str, Any]:
    return {
        str(code): {"$ref": f"#/components/responses/Control{code}"}
        for code in _STATUS_TEXT
        if code != 401 or auth
    }


def _operation(
    name: str,
    summary: str,
    description: str,
    schema: tuple[str, dict[str, Any]],
    example: Mapping[str, Any],
    tag: str,
    *,
    auth: bool,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One control operation; ``schema`` is the payload's component name and schema."""
    ref, body = schema
    required = bool(body.get("required"))
    op: dict[str, Any] = {
        "operationId": name,
        "summary": summary,
        "description": description,
        "tags": [tag],
        "requestBody": _body({"$ref": f"#/components/schemas/{ref}"}, example, required),
        "responses": _responses(auth=auth),
    }
    if auth:
        op["security"] = [{"bearerAuth": []}]
    if extra:
        op.update(extra)
    return op


def _router_schema(router: Router, first: ControlFunction, slots: int) -> dict[str, Any]:
    schema = copy.deepcopy(first.json_schema())
    schema["title"] = router.name
    schema["properties"] = {
        "slot": {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": slots},
                {"type": "string", "pattern": r"^\d+$"},
            ],
            "description": f"slot number 1-{slots} (as many as the model has)",
            "x-allowed": f"1-{slots}",
        },
        **schema.get("properties", {}),
    }
    schema["required"] = ["slot", *schema.get("required", [])]
    schema["description"] = (
        f"{router.name} with the slot in the payload: the same as {router.target}N. "
        + str(first.json_schema().get("description", ""))
    )
    return schema


def _data_paths() -> dict[str, Any]:
    runall = {
        "description": "The latest snapshot in GivTCP's runAll layout (RunAll; with units=true "
        "RunAllWithUnits): every value of the register map at its path, with its unit and "
        "range.",
        "content": {JSON: {"schema": runall_response_schema()}},
    }
    no_data = {
        "description": "No snapshot yet (the inverter has not been read since start).",
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    unknown = {
        "description": "No inverter with that serial or name.",
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    bad = {
        "description": "A query parameter has a value that is not allowed.",
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    units = {
        "name": "units",
        "in": "query",
        "required": False,
        "description": "true: every value as {value, unit} (RunAllWithUnits).",
        "schema": {"type": "string", "enum": ["true", "false", "1", "0"]},
    }
    serial = {
        "name": "serial",
        "in": "path",
        "required": True,
        "description": "Inverter serial (or configured name); unprefixed routes address the "
        "first inverter.",
        "schema": {"type": "string"},
    }
    paths: dict[str, Any] = {}
    for route in ("runAll", "readData", "getCache"):
        summary = "Latest data" if route == "runAll" else f"Latest data ({route}: GivTCP alias)"
        paths[f"/{route}"] = {
            "get": {
                "operationId": f"get_{route}",
                "summary": summary,
                "description": "The latest snapshot of the first inverter, as GivTCP's runAll "
                "(never triggers a read).",
                "tags": ["data"],
                "parameters": [units],
                "responses": {"200": runall, "400": bad, "503": no_data},
            }
        }
        paths[f"/{{serial}}/{route}"] = {
            "get": {
                "operationId": f"get_{route}_of",
                "summary": f"{summary}, of one inverter",
                "tags": ["data"],
                "parameters": [serial, units],
                "responses": {"200": runall, "400": bad, "404": unknown, "503": no_data},
            }
        }
    views = {
        "showdata": ("The latest data as a page (GivTCP 3's /showdata)", "text/html",
                     {"type": "string"}, True),
        "fullCache": ("The last snapshots' values by path, oldest first (GivTCP 3's "
                      "/fullCache; up to 10)", JSON,
                      {"type": "object", "additionalProperties": {"type": "array"}}, False),
        "api": ("Every route with its method, use and payload (GivTCP's api.json)", JSON,
                {"type": "object"}, False),
    }  # fmt: skip
    for route, (summary, media, schema, waits) in views.items():
        ok = {"description": summary + ".", "content": {media: {"schema": schema}}}
        responses: dict[str, Any] = {"200": ok, **({"503": no_data} if waits else {})}
        paths[f"/{route}"] = {
            "get": {
                "operationId": f"get_{route}",
                "summary": summary,
                "tags": ["data"],
                "responses": responses,
            }
        }
        paths[f"/{{serial}}/{route}"] = {
            "get": {"operationId": f"get_{route}_of", "summary": f"{summary}, of one inverter",
                    "tags": ["data"], "parameters": [serial],
                    "responses": {**responses, "404": unknown}}
        }  # fmt: skip
    functions = {
        "description": "Every control function with its payload schema and availability.",
        "content": {JSON: {"schema": {"type": "object"}}},
    }
    paths["/functions"] = {
        "get": {
            "operationId": "get_functions",
            "summary": "Control functions",
            "description": "Every control function, alias and slot router, with availability "
            "on the first inverter's model.",
            "tags": ["data"],
            "responses": {"200": functions},
        }
    }
    paths["/{serial}/functions"] = {
        "get": {
            "operationId": "get_functions_of",
            "summary": "Control functions of one inverter",
            "tags": ["data"],
            "parameters": [serial],
            "responses": {"200": functions, "404": unknown},
        }
    }
    paths["/inverters"] = {
        "get": {
            "operationId": "get_inverters",
            "summary": "Inverters served",
            "description": "Serial, name, model and link state of every configured inverter.",
            "tags": ["data"],
            "responses": {"200": {"description": "The inverters.", "content": {
                JSON: {"schema": {"type": "object"}}}}},
        }
    }  # fmt: skip
    paths["/health"] = {
        "get": {
            "operationId": "get_health",
            "summary": "Liveness and the age of each inverter's last good poll",
            "tags": ["data"],
            "responses": {
                "200": {
                    "description": "Every inverter answered within its offline_after.",
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/Health"}}},
                },
                "503": {
                    "description": "An inverter is stale or offline (the body says which).",
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/Health"}}},
                },
            },
        }
    }
    paths["/metrics"] = {
        "get": {
            "operationId": "get_metrics",
            "summary": "Prometheus metrics",
            "tags": ["data"],
            "responses": {
                "200": {
                    "description": "Prometheus text format 0.0.4.",
                    "content": {TEXT: {"schema": {"type": "string"}}},
                }
            },
        }
    }
    events = {
        "description": "text/event-stream: an event `snapshot` with {serial, taken_at, family, "
        "runAll, stale, missing, health} at once and after every poll; `health` events in "
        "between.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
    paths["/events"] = {
        "get": {
            "operationId": "get_events",
            "summary": "Live snapshots (server-sent events)",
            "tags": ["data"],
            "responses": {"200": events},
        }
    }
    paths["/{serial}/events"] = {
        "get": {
            "operationId": "get_events_of",
            "summary": "Live snapshots of one inverter (server-sent events)",
            "tags": ["data"],
            "parameters": [serial],
            "responses": {"200": events, "404": unknown},
        }
    }
    for route, what, media in (
        ("/openapi.json", "This document", JSON),
        ("/docs", "This document as a page", "text/html"),
        ("/", "The dashboard", "text/html"),
    ):
        paths[route] = {
            "get": {
                "operationId": "get_" + (route.strip("/").replace(".", "_") or "dashboard"),
                "summary": what,
                "tags": ["data"],
                "responses": {"200": {"description": what, "content": {media: {"schema": {}}}}},
            }
        }
    return paths


def evc_cache_schema() -> dict[str, Any]:
    """The ``/getEVCCache`` tree: every charger value at its path, and ``Stats``."""
    schema = tree_schema(EVC_SPECS, value_schema)
    schema["title"] = EVC_CACHE
    schema["description"] = "The latest snapshot of an EV charger (GivTCP's EVC tree)."
    schema["properties"]["Stats"] = {
        "type": "object",
        "description": "The charger link's figures (polls, failures, last poll).",
    }
    return schema


def evc_function_schema(fn: EvcFunction) -> dict[str, Any]:
    schema = fn.payload.model_json_schema(by_alias=True)
    schema["title"] = fn.name
    schema["description"] = f"EV charger: {fn.summary} Writes: {fn.writes}."
    return schema


def _charger_paths(components: dict[str, Any], *, auth: bool) -> dict[str, Any]:
    """``/getEVCCache`` and every charger function (and alias), unprefixed (the first charger)
    and under ``/{serial}`` (the charger's serial)."""
    error = {"content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}
    serial = {
        "name": "serial",
        "in": "path",
        "required": True,
        "description": "The charger's serial.",
        "schema": {"type": "string"},
    }
    components[EVC_CACHE] = evc_cache_schema()
    cache = {
        "200": {
            "description": "The charger's latest snapshot (never triggers a read).",
            "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{EVC_CACHE}"}}},
        },
        "404": {"description": "No such charger.", **error},
        "503": {"description": "The charger has not been read since start.", **error},
    }
    paths: dict[str, Any] = {}
    for prefix, params, op_id in (("", [], "get_EVCCache"),
                                  ("/{serial}", [serial], "get_EVCCache_of")):  # fmt: skip
        paths[f"{prefix}/getEVCCache"] = {
            "get": {
                "operationId": op_id,
                "summary": "Latest EV charger data" + (" of one charger" if prefix else ""),
                "description": "The latest snapshot of the "
                + ("charger with that serial" if prefix else "first charger")
                + ", as GivTCP's /getEVCCache.",
                "tags": ["evc"],
                "parameters": params,
                "responses": cache,
            }
        }
    for fn in EVC_FUNCTIONS:
        schema = _hoist(evc_function_schema(fn), components)
        ref = f"evc_{fn.name}Payload"
        components[ref] = schema
        for name in (fn.name, *fn.aliases):
            alias = f" Alias of {fn.name}." if name != fn.name else ""
            for prefix, params in (("", []), ("/{serial}", [serial])):
                extra: dict[str, Any] = {"parameters": params} if params else {}
                if alias:
                    extra["x-alias-of"] = fn.name
                where = "the charger with that serial" if prefix else "the first charger"
                paths[f"{prefix}/{name}"] = {
                    "post": _operation(
                        f"evc_{name}" + ("_of" if prefix else ""),
                        f"EV charger: {fn.summary}",
                        f"{schema['description']} Sent to {where}.{alias}",
                        (ref, schema),
                        example_body(fn),
                        "evc",
                        auth=auth,
                        extra=extra,
                    )
                }
    return paths


def build_openapi(
    catalogue: Catalogue,
    *,
    model: Model | None = None,
    auth: bool = False,
    layout: TreeLayout = TreeLayout.GIVTCP3,
    chargers: bool = False,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document; with ``model``, operations say whether they are available;
    the runAll answer is described in ``layout``; ``chargers``: the EV charger routes too."""
    components: dict[str, Any] = {}
    components["CommandResult"] = result_schema(components)
    components["Error"] = _ERROR
    components["Health"] = _HEALTH
    components.update(runall_schemas(layout))
    paths = _data_paths()
    by_name: dict[str, ControlFunction] = {}

    def note(fn: ControlFunction) -> str:
        if model is None:
            return ""
        reason = fn.unavailable_reason(model)
        return f" Not available on this {model.name}: {reason}." if reason else ""

    payloads: dict[str, tuple[str, dict[str, Any]]] = {}
    for fn in catalogue:
        by_name[fn.name] = fn
        schema = fn.json_schema()
        payloads[fn.name] = (f"{fn.name}Payload", schema)
        components[f"{fn.name}Payload"] = schema
        aliases = f" GivTCP aliases: {', '.join(fn.aliases)}." if fn.aliases else ""
        desc = f"{schema.get('description', fn.summary)}{aliases}{note(fn)}"
        paths[f"/{fn.name}"] = {
            "post": _operation(
                fn.name, fn.summary, desc, payloads[fn.name], example_body(fn), fn.group,
                auth=auth,
            )
        }  # fmt: skip
    for alias, target in catalogue.aliases.items():
        fn = by_name[target]
        paths[f"/{alias}"] = {
            "post": _operation(
                alias,
                f"Alias of {target}",
                f"The same as POST /{target}.{note(fn)}",
                payloads[target],
                example_body(fn),
                "aliases",
                auth=auth,
                extra={"x-alias-of": target},
            )
        }
    for router in catalogue.routers.values():
        first = by_name.get(f"{router.target}1")
        if first is None:
            continue
        slots = sum(1 for n in by_name if n.startswith(router.target) and n[len(router.target):]
                    .isdigit())  # fmt: skip
        example = {"slot": "1", **example_body(first)}
        schema = _router_schema(router, first, slots)
        components[f"{router.name}RouterPayload"] = schema
        paths[f"/{router.name}"] = {
            "post": _operation(
                router.name,
                f"{router.target}N with the slot in the payload",
                str(schema["description"]),
                (f"{router.name}RouterPayload", schema),
                example,
                first.group,
                auth=auth,
            )
        }
    if chargers:
        paths.update(_charger_paths(components, auth=auth))
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "givtcp-async REST API",
            "version": __version__,
            "description": (
                "GivTCP-compatible REST API of givtcp-async. Control functions are POSTed with "
                "GivTCP's JSON bodies (numbers may be strings) or a plain value; reads never "
                "touch the inverter. Prefix any route with /{serial} to address another "
                "inverter than the first."
            ),
        },
        "tags": [
            {"name": k, "description": v} for k, v in GROUP_TITLES.items() if k != "evc" or chargers
        ],
        "paths": paths,
        "components": {"schemas": components, "responses": _response_components()},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    return doc


# --- the docs page ------------------------------------------------------------------------------


_CSS: Final = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2733;background:#f4f6f8}
header{background:#12324a;color:#fff;padding:14px 24px}header a{color:#9fd3ff}
main{max-width:1100px;margin:0 auto;padding:8px 24px 40px}
h2{margin-top:32px;border-bottom:2px solid #c9d3dc;padding-bottom:4px}
details{background:#fff;border:1px solid #d5dde5;border-radius:6px;margin:8px 0}
summary{cursor:pointer;padding:8px 12px;list-style:none}
summary::-webkit-details-marker{display:none}
.m{display:inline-block;min-width:48px;text-align:center;font-weight:600;border-radius:4px;
padding:1px 6px;margin-right:8px;color:#fff;font-size:12px}
.post{background:#1f7a4d}.get{background:#245d9c}
code,pre{font-family:ui-monospace,monospace;font-size:13px}
.body{padding:4px 14px 12px;border-top:1px solid #e3e8ee}
table{border-collapse:collapse;width:100%;margin:6px 0}
td,th{border:1px solid #e0e6ec;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f6}pre{background:#f0f3f6;padding:8px;overflow:auto}
.na{color:#9a5b00}.s{color:#5a6a7a}
"""


def _type_text(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_type_text(s) for s in schema["anyOf"] if s.get("type") != "null")
    kind = schema.get("type", "any")
    bits = [str(kind)]
    if "minimum" in schema or "maximum" in schema:
        bits.append(f"{schema.get('minimum', '')}..{schema.get('maximum', '')}")
    if "pattern" in schema:
        bits.append(f"/{schema['pattern']}/")
    return " ".join(bits)


def _fields_table(schema: Mapping[str, Any]) -> str:
    props = schema.get("properties") or {}
    if not props:
        return "<p class=s>No payload (an empty body or any plain value).</p>"
    required = set(schema.get("required", []))
    rows = []
    for name, sub in props.items():
        if sub.get("description") == "accepted and ignored":
            continue
        allowed = sub.get("x-allowed") or _type_text(sub)
        rows.append(
            f"<tr><td><code>{html.escape(name)}</code>{' *' if name in required else ''}</td>"
            f"<td>{html.escape(str(allowed))}</td>"
            f"<td>{html.escape(str(sub.get('description', '')))}</td></tr>"
        )
    return (
        "<table><tr><th>field</th><th>allowed</th><th>meaning</th></tr>"
        + "".join(rows)
        + ("</table>")
    )


def _resolve(doc: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/components/schemas/"):
        return schema
    found = doc["components"]["schemas"].get(ref.rsplit("/", 1)[1], {})
    return found if isinstance(found, Mapping) else {}


def _op_html(doc: Mapping[str, Any], path: str, method: str, op: Mapping[str, Any]) -> str:
    desc = html.escape(str(op.get("description", "")))
    klass = "na" if "Not available" in desc else ""
    parts = [
        f"<details id='{html.escape(op.get('operationId', path))}'><summary>"
        f"<span class='m {method}'>{method.upper()}</span><code>{html.escape(path)}</code> "
        f"<span class=s>{html.escape(str(op.get('summary', '')))}</span></summary>"
        f"<div class=body><p class='{klass}'>{desc}</p>"
    ]
    body = op.get("requestBody")
    if body:
        media = body["content"][JSON]
        parts.append(_fields_table(_resolve(doc, media["schema"])))
        example = json.dumps(media.get("example", {}))
        parts.append(
            "<pre>curl -X POST -H 'Content-Type: application/json' "
            f"-d {html.escape(repr(example))} http://HOST:6345{html.escape(path)}</pre>"
        )
    rows = []
    for code, response in op.get("responses", {}).items():
        ref = response.get("$ref", "")
        if isinstance(ref, str) and ref.startswith("#/components/responses/"):
            response = doc["components"]["responses"].get(ref.rsplit("/", 1)[1], {})
        text = html.escape(str(response.get("description", "")))
        rows.append(f"<tr><td>{html.escape(code)}</td><td>{text}</td></tr>")
    parts.append("<table><tr><th>status</th><th>when</th></tr>" + "".join(rows) + "</table>")
    parts.append("</div></details>")
    return "".join(parts)


def docs_html(doc: Mapping[str, Any]) -> str:
    """The OpenAPI document as a readable, self-contained page."""
    by_tag: dict[str, list[str]] = {k: [] for k in GROUP_TITLES}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            tag = (op.get("tags") or ["data"])[0]
            by_tag.setdefault(tag, []).append(_op_html(doc, path, method, op))
    sections = []
    for tag, ops in by_tag.items():
        if ops:
            title = html.escape(GROUP_TITLES.get(tag, tag))
            sections.append(f"<h2 id='tag-{tag}'>{title}</h2>" + "".join(ops))
    info = doc["info"]
    auth = (
        "<p>Control routes need <code>Authorization: Bearer &lt;token&gt;</code>.</p>"
        if "securitySchemes" in doc.get("components", {})
        else ""
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(info['title'])}</title>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<style>{_CSS}</style></head><body><header><strong>{html.escape(info['title'])}"
        f"</strong> {html.escape(info['version'])} &middot; <a href='openapi.json'>openapi.json"
        "</a> &middot; <a href='./'>dashboard</a></header><main>"
        f"<p>{html.escape(info['description'])}</p>{auth}"
        + "".join(sections)
        + "</main></body></html>"
    )
