"""Which bot a key may talk to: by `botId` (AIFlowy), by `model` (OpenAI: a bot's name or id,
the key's only bot, or the key's default bot when `model` is absent), and which bot's stored
conversations it may read.

Unknown or disabled bots are 404 (`bot_not_found`), bots outside the key's scope 403.
"""

from __future__ import annotations

from channels.db import database_sync_to_async

from aiflowy.errors import BadRequest, Forbidden, NotFound
from aiflowy.validation import is_storable_text
from apikeys.selectors import ApiKeyPrincipal
from bots.models import Bot
from bots.selectors import BotConfig, bot_config_find, bot_config_get, bot_configs_list


async def bot_for_key(api_key: ApiKeyPrincipal, bot_id: int) -> BotConfig:
    """The bot, if it exists, is enabled and is in the key's scope: 404 / 403 otherwise.
    A key allowed exactly one bot answers with it when `botId` names no bot at all (the
    documents' examples carry their own bot's id; a key made for one bot is that bot's key),
    but another existing bot stays 403."""
    bot = await bot_config_get(bot_id)
    single_bot_id = _single_bot_id(api_key)
    if bot is None and single_bot_id is not None:
        bot = await bot_config_get(single_bot_id)
    if bot is None or not bot.enabled:
        raise NotFound(f"Bot {bot_id} does not exist or is disabled.", code="bot_not_found")
    if not api_key.may_use_bot(bot.id):
        raise Forbidden(f"This API key may not use bot {bot_id}.")
    return bot


def _single_bot_id(api_key: ApiKeyPrincipal) -> int | None:
    if api_key.bot_ids is not None and len(api_key.bot_ids) == 1:
        return next(iter(api_key.bot_ids))
    return None


async def bot_for_model(api_key: ApiKeyPrincipal, model: str | None) -> BotConfig:
    """OpenAI-compatible bot selection. A key allowed exactly one bot always talks to it
    (clients send whatever model name they were built with); otherwise `model` names the bot
    by name or id, and without `model` the key's default bot answers (FastGPT's callers send
    none). Unknown or disabled: 404 `model_not_found`; outside the key's scope: 403."""
    single_bot_id = _single_bot_id(api_key)
    if single_bot_id is not None:
        bot = await bot_config_get(single_bot_id)
        if bot is None or not bot.enabled:
            raise NotFound(
                "The bot of this API key does not exist or is disabled.", code="bot_not_found"
            )
        return bot
    if model is None and api_key.default_bot_id is not None:
        bot = await bot_config_get(api_key.default_bot_id)
        if bot is None or not bot.enabled or not api_key.may_use_bot(bot.id):
            raise NotFound(
                "The default bot of this API key does not exist or is disabled.",
                code="bot_not_found",
            )
        return bot
    if model is None:
        raise BadRequest(
            "'model' is required: this API key may use several bots and has no default bot; "
            "name one by its name or its id.",
            param="model",
        )
    return await bot_for_model_name(api_key, model)


async def bot_for_model_name(api_key: ApiKeyPrincipal, model: str) -> BotConfig:
    """The bot `model` names (its name, or its id in digits), enabled and in the key's scope."""
    bot = await bot_config_find(model) if is_storable_text(model) else None
    if bot is None or not bot.enabled:
        raise NotFound(
            f"The bot '{model}' does not exist or is disabled.",
            code="bot_not_found",
            param="model",
        )
    if not api_key.may_use_bot(bot.id):
        raise Forbidden(f"This API key may not use the bot '{model}'.", param="model")
    return bot


async def bots_for_key(api_key: ApiKeyPrincipal) -> list[BotConfig]:
    """The enabled bots the key may use."""
    return await database_sync_to_async(bot_configs_list)(api_key.bot_ids)


def bot_for_history(api_key: ApiKeyPrincipal, bot_id: int | None) -> int:
    """The bot whose stored conversations the caller asks about: `botId`, or the key's only
    bot, or its default bot. Disabled bots stay readable (and deletable): disabling stops new
    answers only."""
    if bot_id is None:
        bot_id = _single_bot_id(api_key) or api_key.default_bot_id
        if bot_id is None:
            raise BadRequest(
                "'botId' is required: this API key may use several bots.", param="botId"
            )
    if not Bot.objects.filter(pk=bot_id).exists():
        raise NotFound(f"Bot {bot_id} does not exist.", code="bot_not_found", param="botId")
    if not api_key.may_use_bot(bot_id):
        raise Forbidden(f"This API key may not use bot {bot_id}.", param="botId")
    return bot_id
