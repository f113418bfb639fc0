"""The engine's `KnowledgePort` over the project's knowledge bases (`knowledge.services`):
the same search as FastGPT's searchTest and a bot's quotes."""

from __future__ import annotations

from channels.db import database_sync_to_async

from knowledge.selectors import knowledge_base_config_get
from knowledge.services import knowledge_search


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
        text = str(knowledge_id).strip()
        kb = None
        if text.isascii() and text.isdigit() and len(text) <= 18:
            kb = await database_sync_to_async(knowledge_base_config_get)(int(text))
        if kb is None:
            raise LookupError(f"knowledge base {knowledge_id!r} does not exist")
        outcome = await knowledge_search(
            kb, query, mode=search_mode, limit=limit, min_score=min_score
        )
        return [quote.as_fastgpt() for quote in outcome.quotes]
