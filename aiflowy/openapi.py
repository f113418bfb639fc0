"""The OpenAPI 3.1 document of the external API, generated from the types the code uses.

Request bodies and query parameters come from the apps' pydantic request models (the ones
`aiflowy.validation.validated` checks requests with); answers, stream events and error bodies
from the TypedDicts the wire modules' functions return (`aiflowy/wire/*.py`); DRF answers from
their serializers. Nothing here restates a field: change a model and the schema follows.

An app describes its endpoints as a list of `Operation`s (`chat/openapi.py`,
`workflows/openapi.py`); `config/openapi.py` joins the lists, one line per family, and serves
the document at `/api/schema/` (Redoc at `/api/docs/`). See docs/openapi.md.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import BaseModel, TypeAdapter

REF_TEMPLATE = "#/components/schemas/{model}"
SSE = "text/event-stream"
JSON = "application/json"

# What each error status means, whatever the family (the body is the family's error shape).
ERROR_STATUSES: dict[int, str] = {
    400: "The request is invalid (the body says which field, in `param`).",
    401: "The API key is missing, unknown, disabled or expired.",
    403: "The API key may not use this bot or workflow.",
    404: "The bot, workflow, conversation or run does not exist.",
    405: "The method is not allowed here.",
    429: "The API key is over its rate limit; `Retry-After` says when to retry.",
    500: "An internal error (the operator has the details), or a workflow run that failed.",
    502: "The model provider failed or could not be reached.",
    503: "A store this API depends on is unavailable; `Retry-After` says when to retry.",
    504: "The model provider or the workflow run timed out.",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}


@dataclass(frozen=True)
class Operation:
    """One endpoint (served at one or more `paths`) as the schema shows it.

    `body` and `query` are request models (pydantic models or TypedDicts), `responses` the
    JSON answers by status, `events` the data of each SSE event when the request asks for a
    stream, `error` the family's error body. Types are given, never schemas.

    A stream's events: `events` is the data of unnamed events (`data:` only), `named_events`
    the data of each named one (`event: <name>`), and `events_done` says the stream ends
    with OpenAI's `data: [DONE]`."""

    method: str
    paths: tuple[str, ...]
    summary: str
    tag: str
    error: Any
    description: str = ""
    body: Any = None
    body_required: bool = True
    form_body: bool = False
    query: type[BaseModel] | None = None
    path_parameters: dict[str, Any] = field(default_factory=dict)
    responses: dict[int, Any] = field(default_factory=dict)
    response_schemas: dict[int, dict] = field(default_factory=dict)
    events: Any = None
    named_events: dict[str, Any] = field(default_factory=dict)
    events_done: bool = False
    events_description: str = ""
    error_statuses: tuple[int, ...] = (400, 401, 403, 404, 429, 500, 503)
    authenticated: bool = True


def return_type(function: Any) -> Any:
    """A wire function's declared return type: the shape that function produces."""
    return get_type_hints(function, include_extras=True)["return"]


def _name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind)


class _Schemas:
    """Collects the types to render, then renders them together (shared definitions)."""

    def __init__(self) -> None:
        self.types: dict[tuple[int, str], tuple[Any, str]] = {}

    def ref(self, kind: Any, mode: str = "serialization") -> tuple[int, str]:
        key = (id(kind), mode)
        self.types.setdefault(key, (kind, mode))
        return key

    def render(self) -> tuple[dict[tuple[int, str], dict], dict[str, dict]]:
        inputs = [(key, mode, TypeAdapter(kind)) for key, (kind, mode) in self.types.items()]
        rendered, definitions = TypeAdapter.json_schemas(
            inputs, ref_template=REF_TEMPLATE, by_alias=True
        )
        return {key: schema for (key, _), schema in rendered.items()}, definitions.get("$defs", {})


def _resolve(schema: dict, definitions: dict[str, dict]) -> dict:
    ref = schema.get("$ref")
    if ref and ref.startswith("#/components/schemas/"):
        return definitions[ref.rsplit("/", 1)[1]]
    return schema


def _query_parameters(schema: dict, definitions: dict) -> list[dict]:
    model = _resolve(schema, definitions)
    required = set(model.get("required", ()))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k != "title"},
        }
        for name, prop in model.get("properties", {}).items()
    ]


def openapi_document(
    operations: Iterable[Operation],
    *,
    title: str,
    version: str,
    description: str = "",
    extra_schemas: dict[str, Any] | None = None,
) -> dict:
    """The OpenAPI 3.1 document of `operations`. `extra_schemas` names further types to show
    under `components.schemas` (WebSocket frames, say)."""
    operations = list(operations)
    schemas = _Schemas()
    pending: list[tuple[Operation, dict[str, Any]]] = []
    for operation in operations:
        keys: dict[str, Any] = {"error": schemas.ref(operation.error)}
        if operation.body is not None:
            keys["body"] = schemas.ref(operation.body, "validation")
        if operation.query is not None:
            keys["query"] = schemas.ref(operation.query, "validation")
        keys["path"] = {
            n: schemas.ref(t, "validation") for n, t in operation.path_parameters.items()
        }
        keys["responses"] = {s: schemas.ref(t) for s, t in operation.responses.items()}
        if operation.events is not None:
            keys["events"] = schemas.ref(operation.events)
        keys["named_events"] = {n: schemas.ref(t) for n, t in operation.named_events.items()}
        pending.append((operation, keys))
    extra_keys = {name: schemas.ref(kind) for name, kind in (extra_schemas or {}).items()}
    rendered, definitions = schemas.render()

    paths: dict[str, dict] = {}
    for operation, keys in pending:
        paths_entry = _operation(operation, keys, rendered, definitions)
        for index, path in enumerate(operation.paths):
            entry = copy.deepcopy(paths_entry)
            entry["operationId"] = _operation_id(operation, path, index)
            paths.setdefault(path, {})[operation.method] = entry
    for name, key in extra_keys.items():
        definitions.setdefault(name, rendered[key])
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": definitions,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An aiflowy API key (`af-…`): `Authorization: Bearer <key>`"
                    " (AIFlowy clients may send `Authorization: <key>`).",
                }
            },
        },
    }


def _operation_id(operation: Operation, path: str, index: int) -> str:
    words = [w for w in path.replace("{", "").replace("}", "").split("/") if w]
    return operation.method + "".join(w[:1].upper() + w[1:] for w in words)


def _operation(
    operation: Operation, keys: dict[str, Any], rendered: dict, definitions: dict
) -> dict:
    entry: dict[str, Any] = {
        "summary": operation.summary,
        "tags": [operation.tag],
        "responses": {},
    }
    if operation.description:
        entry["description"] = operation.description
    if operation.authenticated:
        entry["security"] = [{"apiKey": []}]
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": rendered[key]}
        for name, key in keys["path"].items()
    ]
    if "query" in keys:
        parameters += _query_parameters(rendered[keys["query"]], definitions)
    if parameters:
        entry["parameters"] = parameters
    if "body" in keys:
        content = {JSON: {"schema": rendered[keys["body"]]}}
        if operation.form_body:
            content["application/x-www-form-urlencoded"] = {"schema": rendered[keys["body"]]}
        entry["requestBody"] = {"required": operation.body_required, "content": content}
    for status, key in keys["responses"].items():
        entry["responses"][str(status)] = {
            "description": "OK" if status < 300 else "Accepted",
            "content": {JSON: {"schema": rendered[key]}},
        }
    for status, schema in operation.response_schemas.items():
        entry["responses"][str(status)] = {
            "description": "OK",
            "content": {JSON: {"schema": schema}},
        }
    if "events" in keys or keys["named_events"]:
        ok = entry["responses"].setdefault("200", {"description": "OK", "content": {}})
        ok["content"][SSE] = {
            # OpenAPI 3.2's name for the schema of each item of a sequential media type.
            "itemSchema": _event_schema(operation, keys, rendered),
        }
    error_schema = rendered[keys["error"]]
    for status in operation.error_statuses:
        response: dict[str, Any] = {
            "description": ERROR_STATUSES[status],
            "content": {JSON: {"schema": error_schema}},
        }
        if status in (429, 503):
            response["headers"] = _RETRY_AFTER
        entry["responses"][str(status)] = response
    return entry


def _event_data(schema: dict) -> dict:
    """An event's `data` field: a JSON text of `schema` (OpenAPI 3.2 / JSON Schema's content
    keywords, which validators decode and check)."""
    return {"type": "string", "contentMediaType": JSON, "contentSchema": schema}


def _event_schema(operation: Operation, keys: dict[str, Any], rendered: dict) -> dict:
    """One server-sent event as OpenAPI 3.2 reads a `text/event-stream` item: an object with
    `event` (its name, when named), `data`, `id`, `retry`."""
    variants: list[dict] = []
    if "events" in keys:
        variants.append(
            {
                "type": "object",
                "properties": {"data": _event_data(rendered[keys["events"]])},
                "required": ["data"],
            }
        )
    for name, key in keys["named_events"].items():
        variants.append(
            {
                "type": "object",
                "properties": {"event": {"const": name}, "data": _event_data(rendered[key])},
                "required": ["event", "data"],
            }
        )
    if operation.events_done:
        variants.append(
            {
                "type": "object",
                "properties": {"data": {"const": "[DONE]"}},
                "required": ["data"],
            }
        )
    schema: dict[str, Any] = variants[0] if len(variants) == 1 else {"anyOf": variants}
    schema["description"] = (
        operation.events_description or "Server-sent events; each `data:` is one event below."
    )
    return schema


def serializer_type(serializer_class: type) -> dict:
    """A DRF serializer's output as a JSON schema, from its declared fields (and, for method
    fields, the method's return annotation)."""
    from rest_framework import serializers

    scalar = {
        serializers.CharField: {"type": "string"},
        serializers.IntegerField: {"type": "integer"},
        serializers.BooleanField: {"type": "boolean"},
        serializers.FloatField: {"type": "number"},
        serializers.DateTimeField: {"type": "string", "format": "date-time"},
        serializers.JSONField: {},
    }
    properties: dict[str, dict] = {}
    for name, declared in serializer_class().get_fields().items():
        if isinstance(declared, serializers.SerializerMethodField):
            method = getattr(serializer_class, declared.method_name or f"get_{name}")
            properties[name] = TypeAdapter(return_type(method)).json_schema()
            continue
        schema = next((s for cls, s in scalar.items() if isinstance(declared, cls)), {})
        if declared.allow_null:
            schema = {"anyOf": [schema, {"type": "null"}]}
        properties[name] = dict(schema)
    return {"type": "object", "properties": properties, "required": sorted(properties)}
