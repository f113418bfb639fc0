"""Fixtures for the chat endpoints: openai SDK clients pointed at the live server, and small
helpers to read SSE bodies and stored history."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from chat.models import Message
from tests.conftest import sse_events, sse_json, wait_until  # noqa: F401 (re-exported)

COMPLETIONS = "/v1/chat/completions"


@pytest.fixture
def make_openai(live_server_url, transactional_db) -> Iterator[Callable[..., openai.OpenAI]]:
    """`make_openai(key)`: the official sync client with `base_url` = our server + `/v1`.
    No retries, so every error surfaces at once (the SDK would otherwise retry 429/5xx)."""
    clients: list[openai.OpenAI] = []

    def make(api_key: str, **options) -> openai.OpenAI:
        options.setdefault("base_url", f"{live_server_url}/v1")
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 30)
        client = openai.OpenAI(api_key=api_key, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def make_async_openai(live_server_url, transactional_db) -> Callable[..., openai.AsyncOpenAI]:
    """`make_async_openai(key)`: the official async client; close it in the test."""

    def make(api_key: str, **options) -> openai.AsyncOpenAI:
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 30)
        return openai.AsyncOpenAI(base_url=f"{live_server_url}/v1", api_key=api_key, **options)

    return make


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def stored_answer(**filters) -> Message:
    """The assistant message matching `filters`, once the history writer has stored it."""
    return wait_until(
        lambda: (
            Message.objects.filter(role="assistant", **filters)
            .select_related("conversation")
            .order_by("-id")
            .first()
        )
    )


def stored_answers(count: int, **filters) -> list[Message]:
    return wait_until(
        lambda: (
            list(Message.objects.filter(role="assistant", **filters).order_by("id"))
            if Message.objects.filter(role="assistant", **filters).count() >= count
            else None
        )
    )
