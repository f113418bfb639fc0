"""httpNode: one request through :mod:`aiflowy.outbound` (the project's only outbound HTTP,
which refuses private addresses unless the limits allow them, and caps time and size).

Outputs ``statusCode``, ``headers`` and ``body`` (parsed as JSON when the response says so
or the ``body`` outputDef is an Object/Array). A 5xx answer fails the node (and is retried
when the node has retries on); any other status is an output the workflow can branch on.
Sensitive request headers are masked in the step's metadata.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aiflowy import outbound

from ..errors import DefinitionError, NodeFailed
from ..model import NodeDef, Parameter, loose_text, parse_parameters
from ..values import render_value
from .base import NodeContext, NodeType, render, resolve_parameters

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
HTTP_BODY_TYPES = frozenset({"none", "json", "raw", "form-data", "x-www-form-urlencoded"})
HTTP_OUTPUTS = frozenset({"statusCode", "headers", "body"})

_SENSITIVE_HEADER_RE = re.compile(
    r"authorization|cookie|token|secret|api[-_]?key|password", re.IGNORECASE
)


def parse_config(data: Mapping[str, Any], node_id: str, where: str) -> dict[str, Any]:
    url = loose_text(data.get("url"))
    if url is None:
        raise DefinitionError(f"{where}: the HTTP node has no URL", node_id=node_id)
    method = (loose_text(data.get("method")) or "GET").strip().upper()
    if method not in HTTP_METHODS:
        raise DefinitionError(f'{where}: unknown HTTP method "{method}"', node_id=node_id)
    body_type = (loose_text(data.get("bodyType")) or "none").strip().lower()
    if body_type not in HTTP_BODY_TYPES:
        raise DefinitionError(
            f'{where}: unknown bodyType "{body_type}" '
            f"(use one of: {', '.join(sorted(HTTP_BODY_TYPES))})",
            node_id=node_id,
        )
    # The editor saves ``bodyRaw`` while Tinyflow's engine reads ``rawBody``: accept both.
    raw_body = loose_text(data.get("rawBody")) or loose_text(data.get("bodyRaw")) or ""
    body_json = data.get("bodyJson")
    if body_json is not None and not isinstance(body_json, str):
        body_json = json.dumps(body_json, ensure_ascii=False)
    return {
        "url": url.strip(),
        "method": method,
        "body_type": body_type,
        "raw_body": raw_body,
        "body_json": body_json or "",
        "headers": parse_parameters(data, "headers", where, node_id),
        "form_data": parse_parameters(data, "formData", where, node_id),
        "form_urlencoded": parse_parameters(data, "formUrlencoded", where, node_id),
    }


def declared_outputs(
    data: Mapping[str, Any], params: tuple[Parameter, ...], output_defs: tuple[Parameter, ...]
) -> frozenset[str] | None:
    return HTTP_OUTPUTS


def _as_text(value: Any) -> str:
    return "" if value is None else render_value(value)


def _masked(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name: ("***" if _SENSITIVE_HEADER_RE.search(name) else value)
        for name, value in headers.items()
    }


def _body_output(node: NodeDef, response: outbound.OutboundResponse) -> Any:
    text = response.text
    declared = next((p for p in node.output_defs if p.name.lower() == "body"), None)
    wants_json = "json" in response.content_type.lower() or (
        declared is not None and declared.data_type.base in ("Object", "Array")
    )
    if wants_json and text.strip():
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


async def execute(ctx: NodeContext) -> dict[str, Any]:
    node, config, limits = ctx.node, ctx.node.config, ctx.limits
    params = resolve_parameters(node.parameters, ctx.memory)
    ctx.inputs.update(params)
    url = render(ctx, config["url"], params).strip()
    method = config["method"]
    headers = {
        name.strip(): _as_text(value)
        for name, value in resolve_parameters(
            config["headers"], ctx.memory, own=params, what="header"
        ).items()
        if name.strip() and value is not None
    }
    request: dict[str, Any] = {}
    body_type = config["body_type"]
    if method not in ("GET", "HEAD"):
        if body_type == "json" and config["body_json"].strip():
            text = render(ctx, config["body_json"], params, json_escape=True)
            try:
                request["json"] = json.loads(text)
            except ValueError as exc:
                raise NodeFailed(
                    f"bodyJson is not valid JSON after filling its placeholders: {exc}"
                ) from None
        elif body_type == "raw":
            request["content"] = render(ctx, config["raw_body"], params).encode("utf-8")
        elif body_type == "form-data":
            fields = resolve_parameters(
                config["form_data"], ctx.memory, own=params, what="form field"
            )
            request["files"] = {name: (None, _as_text(value)) for name, value in fields.items()}
        elif body_type == "x-www-form-urlencoded":
            fields = resolve_parameters(
                config["form_urlencoded"], ctx.memory, own=params, what="form field"
            )
            request["data"] = {name: _as_text(value) for name, value in fields.items()}
    ctx.meta.update(method=method, url=url, headers=_masked(headers))
    response = await outbound.fetch(
        method,
        url,
        headers=headers,
        timeout_s=limits.http_timeout_s,
        max_bytes=limits.http_max_response_bytes,
        allow_private=limits.http_allow_private,
        **request,
    )
    ctx.meta["statusCode"] = response.status
    if response.status >= 500:
        preview = response.text.strip()[:200]
        raise NodeFailed(
            f"{url} answered HTTP {response.status}" + (f": {preview}" if preview else "")
        )
    return {
        "statusCode": response.status,
        "headers": response.headers,
        "body": _body_output(node, response),
    }


NODE_TYPE = NodeType(
    name="httpNode",
    execute=execute,
    parse_config=parse_config,
    declared_outputs=declared_outputs,
    ref_parameter_keys=("headers", "form_data", "form_urlencoded"),
)
