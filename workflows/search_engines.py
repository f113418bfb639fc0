"""Operator-configured search engines: the key's encryption at rest, the resolver the
engine's ``searchEngineNode`` uses, and the list the workflow editor offers.

Why Fernet keyed from ``SECRET_KEY``: the API key must be sent to the engine, so it is
encrypted rather than hashed; a database dump without the settings does not reveal it.
Changing ``SECRET_KEY`` makes stored keys unreadable (the admin then asks for them again).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from workflows.engine.nodes.search import SearchEngineConfig, configure_search_engines
from workflows.models import SearchEngine


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"aiflowy.search-engine-key:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_secret(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode() if plain else ""


def decrypt_secret(token: str) -> str:
    """The plain key, or "" when there is none or it cannot be read any more."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return ""


def search_engine_config(engine: SearchEngine) -> SearchEngineConfig:
    return SearchEngineConfig(
        name=engine.name,
        kind=engine.kind,
        url=engine.url,
        api_key=decrypt_secret(engine.api_key_encrypted),
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
