"""What each node type does with its inputs.

An executor gets a :class:`NodeContext`, records the node's resolved inputs in
``ctx.inputs`` as soon as it knows them (so a failure still shows what the node saw), and
returns the node's outputs. Failures are raised as :class:`NodeFailed` (or ``JsError`` /
``OutboundError`` / whatever the LLM port raises); the runner turns them into the step's
error, retries and the run's result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiflowy import outbound

from .definition import NodeDef, Parameter
from .errors import NodeFailed
from .js import run_code
from .ports import EngineLimits, LlmPort
from .values import (
    CoercionError,
    RunMemory,
    coerce,
    is_blank,
    make_lookup,
    render_text,
    render_value,
)

Emit = Callable[[dict], Awaitable[None]]

_SENSITIVE_HEADER_RE = re.compile(
    r"authorization|cookie|token|secret|api[-_]?key|password", re.IGNORECASE
)
_FENCE_RE = re.compile(r"^```[\w-]*[ \t]*\n?(.*?)\n?```$", re.DOTALL)


@dataclass
class NodeContext:
    node: NodeDef
    memory: RunMemory
    limits: EngineLimits
    llm: LlmPort
    emit: Emit | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Parameters


def _resolve_one(
    parameter: Parameter, memory: RunMemory, own: Mapping[str, Any] | None, what: str
) -> Any:
    value: Any = None
    if parameter.ref_type == "ref" and parameter.ref:
        value = memory.resolve(parameter.ref)
    elif parameter.ref_type == "fixed":
        value = parameter.value
        if isinstance(value, str) and value:
            # Tinyflow fills {{…}} in fixed values from the run's values (and, for headers
            # and form fields, from the node's own parameters).
            value = render_text(
                value,
                make_lookup(own, memory),
                own_names=frozenset(own or ()),
            )
    if value is None and parameter.children:
        value = {child.name: _resolve_one(child, memory, own, what) for child in parameter.children}
    if value is None and parameter.ref_type == "input":
        value = memory.resolve(parameter.name)
    if value is None:
        value = parameter.default_value
    if parameter.required and is_blank(value):
        source = f' (from "{parameter.ref}")' if parameter.ref else ""
        raise NodeFailed(f'{what} "{parameter.name}" is required but has no value{source}')
    try:
        return coerce(value, parameter.data_type, strict=False)
    except CoercionError as exc:
        raise NodeFailed(f'{what} "{parameter.name}": {exc}') from None


def resolve_parameters(
    parameters: tuple[Parameter, ...],
    memory: RunMemory,
    *,
    own: Mapping[str, Any] | None = None,
    what: str = "parameter",
    lenient: bool = False,
) -> dict[str, Any]:
    """Values of ``parameters`` by name (``ref`` → lookup, ``fixed`` → value, ``input`` →
    by name). ``lenient`` leaves out parameters that cannot be resolved instead of failing."""
    values: dict[str, Any] = {}
    for parameter in parameters:
        try:
            values[parameter.name] = _resolve_one(parameter, memory, own, what)
        except NodeFailed:
            if not lenient:
                raise
    return values


def _render(ctx: NodeContext, text: str, own: Mapping[str, Any], **options: Any) -> str:
    return render_text(text, make_lookup(own, ctx.memory), own_names=frozenset(own), **options)


# --------------------------------------------------------------------------------------------
# Executors


async def _start(ctx: NodeContext) -> dict[str, Any]:
    values = ctx.memory.values
    return {p.name: values[p.name] for p in ctx.node.parameters if p.name in values}


async def _end(ctx: NodeContext) -> dict[str, Any]:
    own = resolve_parameters(ctx.node.parameters, ctx.memory)
    ctx.inputs.update(own)
    return resolve_parameters(ctx.node.output_defs, ctx.memory, own=own, what="output")


def _named_output(node: NodeDef, value: Any, *, json_root: bool = False) -> dict[str, Any]:
    """``output`` always; Tinyflow names it after the first outputDef, so that name too."""
    outputs = {"output": value}
    if node.output_defs:
        outputs[node.output_defs[0].name] = value
    elif json_root:
        outputs["root"] = value
    return outputs


async def _template(ctx: NodeContext) -> dict[str, Any]:
    params = resolve_parameters(ctx.node.parameters, ctx.memory)
    ctx.inputs.update(params)
    text = _render(ctx, ctx.node.config["template"], params, enjoy=True)
    return _named_output(ctx.node, text)


def _strip_fences(text: str) -> str:
    match = _FENCE_RE.match(text.strip())
    return match.group(1).strip() if match else text.strip()


async def _llm(ctx: NodeContext) -> dict[str, Any]:
    config = ctx.node.config
    params = resolve_parameters(ctx.node.parameters, ctx.memory)
    ctx.inputs.update(params)
    system_prompt = _render(ctx, config["system_prompt"], params)
    user_prompt = _render(ctx, config["user_prompt"], params)
    ctx.meta.update(systemPrompt=system_prompt, userPrompt=user_prompt)
    messages: list[dict] = []
    if system_prompt.strip():
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": user_prompt})

    on_token = None
    if ctx.emit is not None:
        emit, node_id = ctx.emit, ctx.node.id

        async def on_token(delta: str) -> None:
            if delta:
                await emit({"event": "llmToken", "nodeId": node_id, "delta": delta})

    answer = await ctx.llm.chat(
        config["llm_id"],
        messages,
        temperature=config["temperature"],
        top_p=config["top_p"],
        max_tokens=config["max_tokens"],
        on_token=on_token,
    )
    ctx.meta.update(
        model=answer.model,
        promptTokens=answer.prompt_tokens,
        completionTokens=answer.completion_tokens,
    )
    content = (answer.content or "").strip()
    if not content:
        raise NodeFailed("the model returned an empty answer")
    if config["out_type"] != "json":
        return _named_output(ctx.node, content)
    try:
        parsed = json.loads(_strip_fences(content))
    except ValueError as exc:
        preview = content if len(content) <= 200 else content[:200] + "…"
        raise NodeFailed(f"the model's answer is not valid JSON ({exc}): {preview}") from None
    return _named_output(ctx.node, parsed, json_root=True)


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


async def _http(ctx: NodeContext) -> dict[str, Any]:
    node, config, limits = ctx.node, ctx.node.config, ctx.limits
    params = resolve_parameters(node.parameters, ctx.memory)
    ctx.inputs.update(params)
    url = _render(ctx, config["url"], params).strip()
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
            text = _render(ctx, config["body_json"], params, json_escape=True)
            try:
                request["json"] = json.loads(text)
            except ValueError as exc:
                raise NodeFailed(
                    f"bodyJson is not valid JSON after filling its placeholders: {exc}"
                ) from None
        elif body_type == "raw":
            request["content"] = _render(ctx, config["raw_body"], params).encode("utf-8")
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


async def _code(ctx: NodeContext) -> dict[str, Any]:
    node = ctx.node
    params = resolve_parameters(node.parameters, ctx.memory)
    ctx.inputs.update(params)
    # Tinyflow fills {{…}} in the code before running it; single braces are JavaScript.
    code = _render(ctx, node.config["code"], params, single_brace=False, strict=False)
    variables = {**ctx.memory.bare(), **params}
    result = await run_code(
        code,
        variables,
        timeout_ms=ctx.limits.js_timeout_ms,
        memory_mb=ctx.limits.js_memory_mb,
    )
    if node.output_defs:
        return {p.name: result[p.name] for p in node.output_defs if p.name in result}
    return result


EXECUTORS: dict[str, Callable[[NodeContext], Awaitable[dict[str, Any]]]] = {
    "startNode": _start,
    "endNode": _end,
    "templateNode": _template,
    "llmNode": _llm,
    "httpNode": _http,
    "codeNode": _code,
}


async def execute_node(ctx: NodeContext) -> dict[str, Any]:
    """Run one attempt of ``ctx.node`` and return its outputs."""
    return await EXECUTORS[ctx.node.type](ctx)
