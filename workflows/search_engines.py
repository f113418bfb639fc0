"""Operator-configured search engines: the resolver the engine's ``searchEngineNode`` uses,
and the list the workflow editor offers. Their API keys are encrypted at rest by the model's
field (``aiflowy.crypto``).
"""

from __future__ import annotations

from workflows.engine.nodes.search import SearchEngineConfig, configure_search_engines
from workflows.models import SearchEngine


def search_engine_config(engine: SearchEngine) -> SearchEngineConfig:
    return SearchEngineConfig(
        name=engine.name,
        kind=engine.kind,
        url=engine.url,
        api_key=engine.api_key_secret,
        api_key_header=engine.api_key_header,
        api_key_prefix=engine.api_key_prefix,
        method=engine.method,
        query_field=engine.query_field or "q",
        limit_field=engine.limit_field,
        results_path=engine.results_path,
        title_field=engine.title_field or "title",
        content_field=engine.content_field or "content",
        url_field=engine.url_field or "url",
        extra_params={
            str(key): str(value) for key, value in dict(engine.extra_params or {}).items()
        },
        allow_private=engine.allow_private,
        enabled=engine.enabled,
    )


async def search_engine_find(name: str) -> SearchEngineConfig | None:
    engine = await SearchEngine.objects.filter(name=name).afirst()
    return search_engine_config(engine) if engine is not None else None


def search_engine_choices() -> list[dict[str, str]]:
    """The enabled engines as the workflow editor lists them (``value``/``label``)."""
    return [
        {"value": engine.name, "label": engine.title or engine.name}
        for engine in SearchEngine.objects.filter(enabled=True).order_by("name")
    ]


def install() -> None:
    """Called once when the app is ready: search engine nodes resolve names here."""
    configure_search_engines(search_engine_find)
