"""Reading bots on the hot path: cached, immutable snapshots with their provider."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from channels.db import database_sync_to_async
from django.conf import settings

from aiflowy.llm import ProviderConfig
from aiflowy.localcache import TtlCache
from bots.models import Bot, LlmProvider


def provider_config(provider: LlmProvider) -> ProviderConfig:
    return ProviderConfig(
        id=provider.pk,
        kind=provider.kind,
        base_url=provider.base_url,
        api_key=provider.api_key,
        default_model=provider.default_model,
        timeout_seconds=provider.timeout_seconds,
        version=provider.updated_at.isoformat() if provider.updated_at else "",
    )


@dataclass(frozen=True, slots=True)
class BotConfig:
    id: int
    name: str
    enabled: bool
    provider: ProviderConfig
    model: str
    system_prompt: str
    temperature: float
    top_p: float
    max_tokens: int
    history_window: int
    welcome_message: str
    allow_request_overrides: bool
    allow_request_tools: bool = True
    allow_request_media: bool = True
    created_at: datetime | None = None
    # The bot's own prices, else its provider's (FastGPT's `detail` reports `price`).
    input_price_per_1k: float = 0.0
    output_price_per_1k: float = 0.0

    def price_of(self, prompt_tokens: int, completion_tokens: int) -> float:
        """What an answer cost at the operator's prices: 0 when none are set."""
        return (
            prompt_tokens * self.input_price_per_1k + completion_tokens * self.output_price_per_1k
        ) / 1000

    @classmethod
    def from_model(cls, bot: Bot) -> BotConfig:
        return cls(
            id=bot.pk,
            name=bot.name,
            enabled=bot.enabled,
            provider=provider_config(bot.provider),
            model=bot.model or bot.provider.default_model,
            system_prompt=bot.system_prompt,
            temperature=bot.temperature,
            top_p=bot.top_p,
            max_tokens=bot.max_tokens,
            history_window=bot.history_window,
            welcome_message=bot.welcome_message,
            allow_request_overrides=bot.allow_request_overrides,
            allow_request_tools=bot.allow_request_tools,
            allow_request_media=bot.allow_request_media,
            created_at=bot.created_at,
            input_price_per_1k=float(
                bot.provider.input_price_per_1k
                if bot.input_price_per_1k is None
                else bot.input_price_per_1k
            ),
            output_price_per_1k=float(
                bot.provider.output_price_per_1k
                if bot.output_price_per_1k is None
                else bot.output_price_per_1k
            ),
        )


bot_cache: TtlCache[BotConfig | None] = TtlCache(ttl=settings.AIFLOWY_CONFIG_CACHE_SECONDS)


def _bot_load(**lookup) -> BotConfig | None:
    bot = Bot.objects.select_related("provider").filter(**lookup).first()
    return BotConfig.from_model(bot) if bot is not None else None


async def bot_config_get(bot_id: int) -> BotConfig | None:
    return await bot_cache.get_or_load(
        ("id", bot_id), lambda: database_sync_to_async(_bot_load)(pk=bot_id)
    )


async def bot_config_get_by_name(name: str) -> BotConfig | None:
    return await bot_cache.get_or_load(
        ("name", name), lambda: database_sync_to_async(_bot_load)(name=name)
    )


def _lookups(name_or_id: str | int) -> list[dict]:
    """Where a bot named by a caller is looked for: its id (a number, or a string of digits as
    AIFlowy exports and OpenAI clients write it), then its name."""
    if isinstance(name_or_id, int) and not isinstance(name_or_id, bool):
        return [{"pk": name_or_id}]
    text = str(name_or_id).strip()
    if not text:
        return []
    # At most 19 digits: the largest id a BIGINT holds, and far below Python's int() limit.
    if text.isascii() and text.isdigit() and len(text) <= 19:
        return [{"pk": int(text)}, {"name": text}]
    return [{"name": text}]


async def bot_config_find(name_or_id: str | int) -> BotConfig | None:
    """The bot that `name_or_id` names (by id, then by name), enabled or not; cached."""
    for lookup in _lookups(name_or_id):
        if "pk" in lookup:
            bot = await bot_config_get(lookup["pk"])
        else:
            bot = await bot_config_get_by_name(lookup["name"])
        if bot is not None:
            return bot
    return None


def bot_config_find_now(name_or_id: str | int) -> BotConfig | None:
    """`bot_config_find` for synchronous callers, read from the database now."""
    for lookup in _lookups(name_or_id):
        bot = _bot_load(**lookup)
        if bot is not None:
            return bot
    return None


def bot_configs_list(bot_ids: frozenset[int] | None) -> list[BotConfig]:
    """Enabled bots, limited to `bot_ids` when given (a key's scope)."""
    bots = Bot.objects.select_related("provider").filter(enabled=True).order_by("id")
    if bot_ids is not None:
        bots = bots.filter(pk__in=bot_ids)
    return [BotConfig.from_model(bot) for bot in bots]
