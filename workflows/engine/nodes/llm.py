"""llmNode: one chat completion through the :class:`..ports.LlmPort` the caller supplies
(the engine knows no providers). Prompts get the node's parameters and the run's values
filled in; tokens are streamed as ``llmToken`` events; ``outType: json`` parses the answer
(tolerating a Markdown code fence around it) instead of returning text."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aiflowy.events import LlmToken

from ..errors import DefinitionError, NodeFailed
from ..model import Parameter, loose_number, loose_text, parse_parameters
from .base import (
    NodeContext,
    NodeType,
    first_output_names,
    named_output,
    render,
    resolve_parameters,
)

_FENCE_RE = re.compile(r"^```[\w-]*[ \t]*\n?(.*?)\n?```$", re.DOTALL)


def parse_config(data: Mapping[str, Any], node_id: str, where: str) -> dict[str, Any]:
    user_prompt = loose_text(data.get("userPrompt"))
    if user_prompt is None:
        raise DefinitionError(f"{where}: the LLM node has no user prompt", node_id=node_id)
    llm_id: Any = data.get("llmId")
    if isinstance(llm_id, str):
        llm_id = llm_id.strip() or None
        if llm_id is not None and llm_id.isdigit():
            llm_id = int(llm_id)
    max_tokens = data.get("maxTokens", data.get("maxReplyLength"))
    temperature = loose_number(
        data.get("temperature"), f"{where}: temperature", node_id, integer=False
    )
    top_p = loose_number(data.get("topP"), f"{where}: topP", node_id, integer=False)
    config: dict[str, Any] = {
        "llm_id": llm_id,
        "system_prompt": loose_text(data.get("systemPrompt")) or "",
        "user_prompt": user_prompt,
        "temperature": 0.5 if temperature is None else temperature,
        "top_p": 0.8 if top_p is None else top_p,
        "max_tokens": loose_number(max_tokens, f"{where}: maxTokens", node_id, integer=True),
        "out_type": (loose_text(data.get("outType")) or "text").strip().lower(),
    }
    if data.get("images"):
        # Parsed and their references checked, though the executor does not send them yet.
        config["images"] = parse_parameters(data, "images", where, node_id)
    return config


def declared_outputs(
    data: Mapping[str, Any], params: tuple[Parameter, ...], output_defs: tuple[Parameter, ...]
) -> frozenset[str] | None:
    json_root = str(data.get("outType") or "").lower() == "json"
    return frozenset(first_output_names(output_defs, json_root=json_root))


def _strip_fences(text: str) -> str:
    match = _FENCE_RE.match(text.strip())
    return match.group(1).strip() if match else text.strip()


async def execute(ctx: NodeContext) -> dict[str, Any]:
    config = ctx.node.config
    params = resolve_parameters(ctx.node.parameters, ctx.memory)
    ctx.inputs.update(params)
    system_prompt = render(ctx, config["system_prompt"], params)
    user_prompt = render(ctx, config["user_prompt"], params)
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
                await emit(LlmToken(node_id=node_id, delta=delta))

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
        return named_output(ctx.node, content)
    try:
        parsed = json.loads(_strip_fences(content))
    except ValueError as exc:
        preview = content if len(content) <= 200 else content[:200] + "…"
        raise NodeFailed(f"the model's answer is not valid JSON ({exc}): {preview}") from None
    return named_output(ctx.node, parsed, json_root=True)


NODE_TYPE = NodeType(
    name="llmNode",
    execute=execute,
    parse_config=parse_config,
    declared_outputs=declared_outputs,
    ref_parameter_keys=("images",),
)
