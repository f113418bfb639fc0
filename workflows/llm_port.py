"""The engine's `LlmPort` over the project's LLM client (`aiflowy.llm`), the same one chat uses.

An `llmNode`'s `llmId` names a **bot**, by id (a number or a string of digits, as AIFlowy
exports write it) or by name. The node runs on that bot's provider and model; the bot's
system prompt is used when the node has none, and the bot's reply-length limit when the node
sets none. Temperature and top-p come from the node (the engine fills Tinyflow's defaults).
A key's bot scope applies to the bots a workflow's LLM nodes name (`bots_out_of_scope`,
checked before a run starts): a key limited to some bots cannot reach another through a
workflow. A key with no workflow scope may run every workflow, within its bot scope.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from aiflowy.errors import UpstreamError
from aiflowy.llm import GenerationParams, StreamEnd, delta_text, llm_complete, llm_stream
from bots.selectors import BotConfig, bot_config_find, bot_config_find_now
from workflows.engine import LlmAnswer, NodeFailed, WorkflowDefinition
from workflows.engine.ports import TokenCallback

logger = logging.getLogger(__name__)

BotLookup = Mapping[str | int, BotConfig]


def _llm_ids(definition: WorkflowDefinition) -> set[str | int]:
    return {
        node.config["llm_id"]
        for node in definition.nodes.values()
        if node.type == "llmNode" and node.config.get("llm_id") not in (None, "")
    }


def bots_for_definition(definition: WorkflowDefinition) -> dict[str | int, BotConfig]:
    """The bots a definition's LLM nodes name, read now (synchronous callers such as the
    admin's test run resolve them up front, so the run itself needs no database)."""
    found: dict[str | int, BotConfig] = {}
    for llm_id in _llm_ids(definition):
        bot = bot_config_find_now(llm_id)
        if bot is not None:
            found[llm_id] = bot
    return found


async def bots_out_of_scope(
    definition: WorkflowDefinition, may_use_bot: Callable[[int], bool]
) -> list[BotConfig]:
    """The bots the definition's LLM nodes name that `may_use_bot` refuses (names that find no
    bot are left to fail in their node, as for any caller)."""
    refused = []
    for llm_id in sorted(_llm_ids(definition), key=str):
        bot = await bot_config_find(llm_id)
        if bot is not None and not may_use_bot(bot.id):
            refused.append(bot)
    return refused


async def bot_for_llm_id(llm_id: str | int | None, bots: BotLookup | None = None) -> BotConfig:
    """The enabled bot that `llm_id` names (from `bots` when given, else from the database);
    `NodeFailed` with a readable message otherwise."""
    if llm_id is None or (isinstance(llm_id, str) and not llm_id.strip()):
        raise NodeFailed("the LLM node names no bot (llmId is empty)")
    bot = bots.get(llm_id) if bots is not None else await bot_config_find(llm_id)
    if bot is None:
        raise NodeFailed(f'llmId "{llm_id}" names no bot (give a bot id or a bot name)')
    if not bot.enabled:
        raise NodeFailed(f'the bot "{bot.name}" named by llmId is disabled')
    return bot


class BotLlmPort:
    """Answers `llmNode`s with bots. `stream_tokens=False` (runs nobody watches live) asks the
    provider for the whole answer at once even when the engine offers a token callback.
    `bots` (from `bots_for_definition`) replaces the database look-up."""

    def __init__(self, *, stream_tokens: bool, bots: BotLookup | None = None) -> None:
        self.stream_tokens = stream_tokens
        self.bots = bots

    async def chat(
        self,
        llm_id: str | int | None,
        messages: list[dict],
        *,
        temperature: float | None,
        top_p: float | None,
        max_tokens: int | None,
        on_token: TokenCallback | None,
    ) -> LlmAnswer:
        bot = await bot_for_llm_id(llm_id, self.bots)
        if bot.system_prompt and not any(m.get("role") == "system" for m in messages):
            messages = [{"role": "system", "content": bot.system_prompt}, *messages]
        params = GenerationParams(
            model=bot.model,
            temperature=bot.temperature if temperature is None else temperature,
            top_p=bot.top_p if top_p is None else top_p,
            max_tokens=max_tokens or bot.max_tokens or None,
        )
        try:
            if on_token is None or not self.stream_tokens:
                completion = await llm_complete(bot.provider, messages, params)
                return LlmAnswer(
                    completion.content,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    completion.model,
                )
            parts: list[str] = []
            async for item in llm_stream(bot.provider, messages, params):
                if isinstance(item, StreamEnd):
                    return LlmAnswer(
                        "".join(parts), item.prompt_tokens, item.completion_tokens, item.model
                    )
                if text := delta_text(item):  # a node asks for text, not tools
                    parts.append(text)
                    await on_token(text)
        except UpstreamError as error:
            # The caller sees the safe message; the provider's own text goes to the log only.
            logger.info("LLM node on bot %s failed: %s", bot.id, error.operator_detail)
            raise NodeFailed(f'bot "{bot.name}": {error.message}') from None
        raise NodeFailed(f'bot "{bot.name}": the model provider ended the answer early')
