"""Knowledge for a bot's answer: the one call chat makes (`quotes_for`), which searches the
bot's knowledge bases for the question and returns the quotes, the system message that
carries them into the prompt, FastGPT's "Dataset Search" module records and `quoteList`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.conf import settings

from aiflowy.errors import ApiError
from aiflowy.events import ModuleRun
from aiflowy.localcache import TtlCache
from knowledge.models import SearchMode
from knowledge.selectors import BotKnowledgeLink, bot_knowledge_links, knowledge_base_config_get
from knowledge.services import Quote, knowledge_search

logger = logging.getLogger(__name__)

DATASET_MODULE_NAME = "Dataset Search"
DATASET_MODULE_TYPE = "datasetSearchNode"

links_cache: TtlCache[list[BotKnowledgeLink]] = TtlCache(ttl=settings.AIFLOWY_CONFIG_CACHE_SECONDS)


def fill(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", value)
    return template


@dataclass(frozen=True, slots=True)
class KnowledgeQuote:
    knowledge_base_id: int
    quote: Quote

    def as_quote_item(self) -> dict:
        """An entry of FastGPT's `quoteList`."""
        return {**self.quote.as_fastgpt(), "datasetId": str(self.knowledge_base_id)}


@dataclass(slots=True)
class BotQuotes:
    """What the bot's knowledge bases gave for one question."""

    question: str
    quotes: list[KnowledgeQuote] = field(default_factory=list)
    system_message: str = ""
    modules: list[ModuleRun] = field(default_factory=list)

    def quote_list(self) -> list[dict]:
        return [quote.as_quote_item() for quote in self.quotes]

    def quoted_items(self) -> list[dict]:
        """What history stores with the answer: each quoted item's id, knowledge base and
        score."""
        return [
            {"id": q.quote.id, "datasetId": q.knowledge_base_id, "score": round(q.quote.score, 4)}
            for q in self.quotes
        ]


async def quotes_for(bot_id: int, question: str) -> BotQuotes | None:
    """Search each knowledge base linked to the bot (its mode, limit and minimum score) for
    `question`. None when the bot has no knowledge base or there is no question. A vector
    search whose embedding provider fails falls back to full text: a missing quote is better
    than a missing answer."""
    links = await links_cache.get_or_load(
        bot_id, lambda: database_sync_to_async(bot_knowledge_links)(bot_id)
    )
    if not links or not question.strip():
        return None
    result = BotQuotes(question=question)
    rendered: list[str] = []
    prompt = ""
    for link in links:
        kb = await database_sync_to_async(knowledge_base_config_get)(link.knowledge_base_id)
        if kb is None:
            continue
        started = time.monotonic()
        try:
            outcome = await knowledge_search(
                kb, question, mode=link.search_mode, limit=link.limit, min_score=link.min_score
            )
        except ApiError as exc:
            logger.warning("Knowledge search of %s failed, using full text: %s", kb.id, exc.message)
            outcome = await knowledge_search(
                kb, question, mode=SearchMode.FULL_TEXT, limit=link.limit, min_score=link.min_score
            )
        quotes = [KnowledgeQuote(kb.id, quote) for quote in outcome.quotes]
        result.quotes += quotes
        result.modules.append(
            ModuleRun(
                name=DATASET_MODULE_NAME,
                kind=DATASET_MODULE_TYPE,
                model=kb.embedding_model if outcome.mode != SearchMode.FULL_TEXT else "",
                prompt_tokens=outcome.tokens,
                completion_tokens=0,
                running_seconds=time.monotonic() - started,
                query=question,
                quote_list=[quote.as_quote_item() for quote in quotes],
            )
        )
        values = {"q": "", "a": "", "source": ""}
        rendered += [
            fill(kb.quote_template, {**values, "q": q.q, "a": q.a, "source": q.source}).strip()
            for q in outcome.quotes
        ]
        prompt = prompt or kb.quote_prompt
    if rendered:
        result.system_message = fill(
            prompt, {"quote": "\n------\n".join(rendered), "question": question}
        )
    return result
