"""What a caller and the operator see when the model provider cannot be reached: a refused
connection, a name that does not resolve or a failed TLS handshake is a 502 (at once, not a
timeout), with a generic message for the caller and the kind of failure stored for the
operator; only a provider that does not answer in time is a 504. Every stream still ends
with its final error event."""

from __future__ import annotations

import openai
import pytest

from aiflowy.testing.servers import free_port
from bots.models import LlmProvider
from chat.models import Message
from tests.chat.conftest import sse_json, stored_answer, user

GENERIC = "The model provider could not be reached or closed the connection."


@pytest.fixture
def make_unreachable_bot(make_bot, fake_upstream):
    """`make_unreachable_bot(kind)`: a bot whose provider fails to connect in that way."""

    def make(kind: str):
        base_url = {
            "refused": f"http://127.0.0.1:{free_port()}/v1",
            "dns": "http://no-such-host.invalid/v1",
            # TLS spoken to a plain HTTP server: the handshake fails.
            "tls": f"https://127.0.0.1:{fake_upstream.port}/v1",
        }[kind]
        provider = LlmProvider.objects.create(
            name=f"unreachable {kind}", base_url=base_url, default_model="m", timeout_seconds=10
        )
        return make_bot(name=f"unreachable-{kind}", provider=provider)

    return make


FAILURES = [("refused", "connection refused"), ("dns", "DNS failure"), ("tls", "TLS failure")]


@pytest.mark.parametrize(("kind", "stored"), FAILURES)
@pytest.mark.parametrize("stream", [False, True])
def test_an_unreachable_provider_is_a_502_naming_the_failure_for_the_operator(
    make_openai, make_unreachable_bot, api_key, kind, stored, stream
):
    bot = make_unreachable_bot(kind)
    with pytest.raises(openai.APIStatusError) as raised:
        make_openai(api_key).chat.completions.create(
            model=bot.name, messages=[user("anyone there?")], stream=stream
        )
    assert raised.value.status_code == 502
    assert raised.value.code == "upstream_error"
    assert raised.value.body["message"] == GENERIC
    answer = stored_answer(conversation__bot=bot)
    assert answer.status == Message.Status.ERROR
    assert f": {stored}: " in answer.error_text


@pytest.mark.parametrize("stream", [False, True])
def test_only_a_provider_that_does_not_answer_in_time_is_a_504(
    make_openai, make_bot, api_key, stream
):
    provider = LlmProvider.objects.create(
        name="slow to answer",
        base_url=LlmProvider.objects.get(name="fake").base_url,
        default_model="hang",
        timeout_seconds=0.3,
    )
    bot = make_bot(name="hanging", provider=provider)
    with pytest.raises(openai.APIStatusError) as raised:
        make_openai(api_key).chat.completions.create(
            model="hanging", messages=[user("hello?")], stream=stream
        )
    assert raised.value.status_code == 504
    assert raised.value.code == "upstream_timeout"
    answer = stored_answer(conversation__bot=bot)
    assert "timeout after 0.3s" in answer.error_text


def test_external_chat_streams_end_with_an_error_frame_for_a_refused_connection(
    http, make_unreachable_bot, api_key
):
    bot = make_unreachable_bot("refused")
    response = http.post(
        "/api/v1/aiBot/externalChat",
        headers={"Authorization": api_key},
        json={"botId": bot.id, "stream": True, "messages": [user("hi")]},
    )
    events = sse_json(response.text)
    assert [e["status"] for e in events] == ["ERROR"]
    assert events[0]["errorCode"] == 502
    assert events[0]["message"] == GENERIC
    # (Also lets the history write finish before the tables are flushed: no upstream call
    # was made, so the shared fixture does not wait for it.)
    assert ": connection refused: " in stored_answer(conversation__bot=bot).error_text
