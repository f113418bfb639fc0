"""The model provider failing in every way we know, for both chat families, JSON and stream:
each gives the documented error in the family's shape (502 for an error answer, a refused
connection or a name that does not resolve; 504 only for a real timeout), a stream always ends
with its final error event, and the stored history is exactly what was accepted: the question
and one assistant record marked as failed, nothing else, nothing twice.

Client disconnects cancelling the upstream request are in tests/contract/test_streams.py (HTTP)
and below (WebSocket, through Daphne)."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from aiflowy.testing.servers import free_port
from bots.models import LlmProvider
from chat.models import Message
from tests.conftest import sse_json, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "what now"

# model (or provider address) → the status the caller gets
FAULTS = [
    pytest.param("fail500", 502, id="upstream 500"),
    pytest.param("fail429", 502, id="upstream 429"),
    pytest.param("fail429retry", 502, id="upstream 429 + Retry-After"),
    pytest.param("hang", 504, id="upstream hangs"),
    pytest.param("refused", 502, id="refused"),
    pytest.param("dns", 502, id="name does not resolve"),
]


@pytest.fixture
def faulty_bot(make_bot, provider):
    def make(fault: str):
        if fault == "refused":
            target = LlmProvider.objects.create(
                name="closed port",
                kind=LlmProvider.Kind.OPENAI,
                base_url=f"http://127.0.0.1:{free_port()}/v1",
                api_key="sk-x",
                timeout_seconds=2,
            )
            return make_bot(provider=target, model="fake-model")
        if fault == "dns":
            target = LlmProvider.objects.create(
                name="no such host",
                kind=LlmProvider.Kind.OPENAI,
                base_url="http://no-such-host.invalid/v1",
                api_key="sk-x",
                timeout_seconds=2,
            )
            return make_bot(provider=target, model="fake-model")
        return make_bot(model=fault)

    return make


def assert_recorded_as_failed(bot) -> None:
    """The question, and one assistant record of the failure: what was accepted, once."""
    messages = wait_until(
        lambda: (
            list(Message.objects.filter(conversation__bot=bot).order_by("id"))
            if Message.objects.filter(conversation__bot=bot, role="assistant").exists()
            else None
        )
    )
    assert [(m.role, m.content) for m in messages][:1] == [("user", QUESTION)]
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].status == Message.Status.ERROR
    assert messages[1].error_text


def body_for(family: str, bot, *, stream: bool) -> tuple[str, dict]:
    message = [{"role": "user", "content": QUESTION}]
    if family == "aiflowy":
        return "/api/v1/aiBot/externalChat", {
            "botId": bot.id,
            "messages": message,
            "stream": stream,
        }
    return "/v1/chat/completions", {"model": bot.name, "messages": message, "stream": stream}


@pytest.mark.parametrize("family", ["aiflowy", "openai"])
@pytest.mark.parametrize(("model", "status"), FAULTS)
def test_a_failing_provider_is_the_documented_error_and_recorded_once(
    http, api_key, faulty_bot, family, model, status
):
    bot = faulty_bot(model)
    path, body = body_for(family, bot, stream=False)
    response = http.post(path, headers={"Authorization": f"Bearer {api_key}"}, json=body)
    assert response.status_code == status, response.text
    error = response.json()
    if family == "aiflowy":
        assert error["errorCode"] == status
    else:
        assert error["error"]["type"] == "api_error"
    assert "secret upstream detail" not in response.text
    assert_recorded_as_failed(bot)


@pytest.mark.parametrize("family", ["aiflowy", "openai"])
@pytest.mark.parametrize("fault", ["fail500", "hang", "refused", "cut"])
def test_a_failing_stream_ends_with_the_final_error_event_and_is_recorded_once(
    http, api_key, faulty_bot, family, fault
):
    bot = faulty_bot(fault)
    path, body = body_for(family, bot, stream=True)
    response = http.post(path, headers={"Authorization": f"Bearer {api_key}"}, json=body)
    if response.headers["content-type"].startswith("application/json"):
        # A failure that comes at once is answered with its real status (SDKs raise on it).
        assert response.status_code in (502, 504), response.text
    else:
        events = sse_json(response.text)
        if family == "aiflowy":
            assert events[-1]["status"] == "ERROR", events
        else:
            assert events[-1] == "[DONE]" and "error" in events[-2], events
    assert_recorded_as_failed(bot)


@pytest.mark.asyncio
async def test_closing_the_socket_mid_answer_cancels_the_upstream_request(
    live_server_url, make_bot, api_key, fake_upstream
):
    """Under Daphne the upstream answer used to keep streaming for 30 s after the socket
    closed; the fake provider sees its stream abandoned."""
    from channels.db import database_sync_to_async

    bot = await database_sync_to_async(make_bot)(model="slow")
    abandoned_before = fake_upstream.abandoned_streams
    url = live_server_url.replace("http://", "ws://") + "/ws/v1/aiBot/chat"
    async with websockets.connect(url, subprotocols=["aiflowy", f"apikey.{api_key}"]) as socket:
        await socket.send(
            json.dumps({"botId": bot.id, "messages": [{"role": "user", "content": "a b c d e"}]})
        )
        for _ in range(3):
            await asyncio.wait_for(socket.recv(), timeout=10)
    await asyncio.to_thread(
        wait_until, lambda: fake_upstream.abandoned_streams > abandoned_before, timeout=10
    )
