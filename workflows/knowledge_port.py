"""The engine's `KnowledgePort` over the project's knowledge bases (`knowledge.services`):
the same search as FastGPT's searchTest and a bot's quotes.

A key's knowledge-base scope applies to the knowledge bases a workflow's knowledge nodes name
(`knowledge_bases_out_of_scope`, checked before a run starts, as `bots_out_of_scope` is for
LLM nodes): a key limited to some knowledge bases cannot search another through a workflow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async

from knowledge.selectors import KnowledgeBaseConfig, knowledge_base_config_get
from knowledge.services import knowledge_search
from workflows.engine import WorkflowDefinition


def _knowledge_base_id(knowledge_id: Any) -> int | None:
    """The id a node's `knowledgeId` names (a number or a string of digits), else None."""
    text = str(knowledge_id).strip()
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return None


async def knowledge_bases_out_of_scope(
    definition: WorkflowDefinition, may_use_knowledge_base: Callable[[int], bool]
) -> list[KnowledgeBaseConfig]:
    """The knowledge bases the definition's knowledge nodes name that `may_use_knowledge_base`
    refuses (ids that find no knowledge base are left to fail in their node)."""
    ids = {
        _knowledge_base_id(node.config.get("knowledge_id"))
        for node in definition.nodes.values()
        if node.type == "knowledgeNode"
    }
    refused = []
    for kb_id in sorted(kb_id for kb_id in ids if kb_id is not None):
        kb = await database_sync_to_async(knowledge_base_config_get)(kb_id)
        if kb is not None and not may_use_knowledge_base(kb.id):
            refused.append(kb)
    return refused


class KnowledgeSearchPort:
    async def search(
        self,
        knowledge_id: str | int | None,
        query: str,
        *,
        limit: int,
        min_score: float | None,
        search_mode: str | None,
    ) -> list[dict]:
        kb_id = _knowledge_base_id(knowledge_id)
        kb = None
        if kb_id is not None:
            kb = await database_sync_to_async(knowledge_base_config_get)(kb_id)
        if kb is None:
            raise LookupError(f"knowledge base {knowledge_id!r} does not exist")
        outcome = await knowledge_search(
            kb, query, mode=search_mode, limit=limit, min_score=min_score
        )
        return [quote.as_fastgpt() for quote in outcome.quotes]
