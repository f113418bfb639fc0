"""knowledgeNode: search a knowledge base through the :class:`..ports.KnowledgePort` the
caller supplies. Tinyflow's shape: ``knowledgeId``, ``keyword`` (the query: a ``{{name}}``
placeholder filled from the node's parameters and the run's values, or a reference in the
node's first parameter when the keyword is empty) and ``limit`` (a number or a placeholder);
ours adds ``minScore`` (0–1) and ``searchMode`` (embedding, fullTextRecall, mixedRecall).

Outputs: ``documents`` (Tinyflow's name: the items found, ``{id, q, a, source, score}``,
best first), ``text`` (their contents joined, ready for a prompt) and ``count``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import DefinitionError, NodeFailed
from ..model import Parameter, loose_number, loose_text
from .base import NodeContext, NodeType, render, resolve_parameters

SEARCH_MODES = ("embedding", "fullTextRecall", "mixedRecall")
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
OUTPUTS = frozenset({"documents", "text", "count"})


def parse_config(data: Mapping[str, Any], node_id: str, where: str) -> dict[str, Any]:
    knowledge_id: Any = data.get("knowledgeId")
    if isinstance(knowledge_id, str):
        knowledge_id = knowledge_id.strip() or None
    if knowledge_id is None or isinstance(knowledge_id, bool | dict | list):
        raise DefinitionError(f"{where}: the knowledge node names no knowledgeId", node_id=node_id)
    search_mode = loose_text(data.get("searchMode"))
    if search_mode is not None and search_mode not in SEARCH_MODES:
        raise DefinitionError(
            f"{where}: searchMode must be one of {', '.join(SEARCH_MODES)}", node_id=node_id
        )
    min_score = loose_number(data.get("minScore"), f"{where}: minScore", node_id, integer=False)
    if min_score is not None and not 0 <= min_score <= 1:
        raise DefinitionError(f"{where}: minScore must be between 0 and 1", node_id=node_id)
    limit = data.get("limit")
    # A placeholder is filled when the node runs; anything else must be a number now.
    if limit is not None and not (isinstance(limit, str) and "{{" in limit):
        limit = loose_number(limit, f"{where}: limit", node_id, integer=True)
    return {
        "knowledge_id": knowledge_id,
        "keyword": loose_text(data.get("keyword")) or "",
        "limit": limit,
        "min_score": min_score,
        "search_mode": search_mode,
    }


def declared_outputs(
    data: Mapping[str, Any], params: tuple[Parameter, ...], output_defs: tuple[Parameter, ...]
) -> frozenset[str] | None:
    return OUTPUTS | {output.name for output in output_defs}


def _limit(ctx: NodeContext, own: Mapping[str, Any]) -> int:
    limit = ctx.node.config["limit"]
    if isinstance(limit, str):
        text = render(ctx, limit, own).strip()
        if not text:
            return DEFAULT_LIMIT
        if not text.isdigit():
            raise NodeFailed(f"limit must be a whole number, got {text!r}")
        limit = int(text)
    limit = DEFAULT_LIMIT if limit is None else limit
    if not 1 <= limit <= MAX_LIMIT:
        raise NodeFailed(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


async def execute(ctx: NodeContext) -> dict[str, Any]:
    if ctx.knowledge is None:
        raise NodeFailed("knowledge bases are not available to this run")
    params = resolve_parameters(ctx.node.parameters, ctx.memory)
    config = ctx.node.config
    if config["keyword"]:
        query = render(ctx, config["keyword"], params)
    else:
        query = next((str(value) for value in params.values() if value is not None), "")
    limit = _limit(ctx, params)
    ctx.inputs.update({**params, "query": query, "limit": limit})
    if not query.strip():
        raise NodeFailed("the query is empty: set keyword, or a parameter that refers to it")
    documents = await ctx.knowledge.search(
        config["knowledge_id"],
        query,
        limit=limit,
        min_score=config["min_score"],
        search_mode=config["search_mode"],
    )
    text = "\n\n".join(
        "\n".join(part for part in (doc.get("q", ""), doc.get("a", "")) if part)
        for doc in documents
    )
    outputs: dict[str, Any] = {"documents": documents, "text": text, "count": len(documents)}
    for output in ctx.node.output_defs:
        if output.name not in outputs:
            outputs[output.name] = documents
    return outputs


NODE_TYPE = NodeType(
    name="knowledgeNode",
    execute=execute,
    parse_config=parse_config,
    declared_outputs=declared_outputs,
)
