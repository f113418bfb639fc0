"""POST /api/v1/aiBot/externalChat through Daphne, with a real HTTP client."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys.models import ApiKey
from chat.models import Conversation, Message
from tests.conftest import assert_sse_headers, post_and_hang_up, sse_json, wait_until

URL = "/api/v1/aiBot/externalChat"


def assistant_message(**filters) -> Message:
    return wait_until(
        lambda: (
            Message.objects.filter(role="assistant", **filters)
            .select_related("conversation")
            .first()
        )
    )


@pytest.mark.parametrize("scheme", ["", "Bearer "])
def test_it_answers_in_aiflowy_json_shape_with_both_header_forms(http, bot, api_key, scheme):
    before_ms = int(time.time() * 1000)
    response = http.post(
        URL,
        headers={"Authorization": f"{scheme}{api_key}"},
        json={
            "botId": str(bot.id),
            "messages": [
                {"role": "user", "content": "你好"},
                {"role": "assistant", "content": "你好，我是助手"},
                {"role": "user", "content": "what is your name"},
            ],
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert int(response.headers["content-length"]) == len(response.content)
    body = response.json()
    assert set(body) == {"status", "created", "usage", "choices"}
    assert body["status"] == "END"
    assert before_ms <= body["created"] <= int(time.time() * 1000)
    assert body["choices"] == {
        "index": 0,
        "message": {"role": "assistant", "content": "Echo: what is your name"},
    }
    usage = body["usage"]
    assert usage["completionTokens"] == 5
    assert usage["totalTokens"] == usage["promptTokens"] + usage["completionTokens"]


def test_it_sends_the_bot_system_prompt_first(http, bot, api_key, fake_upstream):
    http.post(
        URL,
        headers={"Authorization": api_key},
        json={"botId": bot.id, "messages": [{"role": "user", "content": "hi"}]},
    )
    sent = fake_upstream.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "You are helpful."}
    assert sent[-1] == {"role": "user", "content": "hi"}


def test_it_records_the_exchange_with_tokens_and_latency(http, bot, api_key):
    http.post(
        URL,
        headers={"Authorization": api_key},
        json={"botId": bot.id, "messages": [{"role": "user", "content": "store me"}]},
    )
    answer = assistant_message(conversation__bot=bot)
    conversation = answer.conversation
    assert conversation.source == Conversation.Source.EXTERNAL_CHAT
    assert conversation.api_key.key_hash != api_key
    assert list(conversation.messages.values_list("role", "content")) == [
        ("user", "store me"),
        ("assistant", "Echo: store me"),
    ]
    assert answer.status == Message.Status.COMPLETE
    assert answer.completion_tokens == 3
    assert answer.prompt_tokens > 0
    assert answer.total_ms is not None and answer.first_token_ms is not None


@pytest.mark.parametrize("scheme", ["", "Bearer "])
def test_it_streams_start_middle_end_token_by_token(http, bot, api_key, scheme):
    with http.stream(
        "POST",
        URL,
        headers={"Authorization": f"{scheme}{api_key}"},
        json={
            "botId": bot.id,
            "stream": True,
            "messages": [{"role": "user", "content": "one two three"}],
        },
    ) as response:
        assert response.status_code == 200
        assert_sse_headers(response)
        text = response.read().decode()
    events = sse_json(text)
    statuses = [event["status"] for event in events]
    assert statuses == ["START", "MIDDLE", "MIDDLE", "MIDDLE", "END"]
    assert "".join(e["choices"]["delta"]["content"] for e in events) == "Echo: one two three"
    for event in events:
        assert event["choices"]["index"] == 0
        assert event["choices"]["delta"]["role"] == "assistant"
        assert isinstance(event["created"], int) and event["created"] > 1_700_000_000_000
    assert events[-1]["usage"]["completionTokens"] == 4
    assert "usage" not in events[0]
    answer = assistant_message(conversation__bot=bot)
    assert answer.content == "Echo: one two three"
    assert answer.status == Message.Status.COMPLETE


def test_stream_events_arrive_before_the_answer_is_finished(http, make_bot, api_key):
    """With a slow upstream, the first event is readable while the upstream still generates."""
    slow_bot = make_bot(model="slow")
    with http.stream(
        "POST",
        URL,
        headers={"Authorization": api_key},
        json={
            "botId": slow_bot.id,
            "stream": True,
            "messages": [{"role": "user", "content": "hello"}],
        },
    ) as response:
        first = next(response.iter_lines())
        assert json.loads(first[6:])["status"] == "START"
    answer = assistant_message(conversation__bot=slow_bot)
    assert answer.status == Message.Status.INTERRUPTED


def test_client_disconnect_cancels_upstream_and_keeps_partial_answer(
    live_server_url, make_bot, api_key, fake_upstream
):
    slow_bot = make_bot(model="slow")
    abandoned_before = fake_upstream.abandoned_streams
    post_and_hang_up(
        live_server_url,
        URL,
        api_key=api_key,
        marker=b"data: ",
        count=3,
        body={
            "botId": slow_bot.id,
            "stream": True,
            "messages": [{"role": "user", "content": "tell me"}],
        },
    )
    answer = assistant_message(conversation__bot=slow_bot)
    assert answer.status == Message.Status.INTERRUPTED
    assert answer.content.startswith("Echo: tell me")
    assert len(answer.content) < 300 * 5
    wait_until(lambda: fake_upstream.abandoned_streams > abandoned_before)


def test_upstream_failure_mid_stream_ends_with_error_event_and_stores_partial(
    http, make_bot, api_key
):
    cut_bot = make_bot(model="cut")
    response = http.post(
        URL,
        headers={"Authorization": api_key},
        json={
            "botId": cut_bot.id,
            "stream": True,
            "messages": [{"role": "user", "content": "a b c d"}],
        },
    )
    events = sse_json(response.text)
    assert [e["status"] for e in events] == ["START", "MIDDLE", "ERROR"]
    assert events[-1]["errorCode"] == 502
    assert events[-1]["message"]
    answer = assistant_message(conversation__bot=cut_bot)
    assert answer.status == Message.Status.ERROR
    assert answer.content == "Echo: a "
    assert answer.error_text


@pytest.mark.parametrize(("model", "status"), [("fail500", 502), ("fail429", 502), ("hang", 504)])
def test_upstream_errors_map_to_gateway_statuses_without_leaking_details(
    http, make_bot, api_key, model, status
):
    failing_bot = make_bot(model=model)
    response = http.post(
        URL,
        headers={"Authorization": api_key},
        json={"botId": failing_bot.id, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == status
    body = response.json()
    assert body["errorCode"] == status
    assert "secret upstream detail" not in body["message"]
    answer = assistant_message(conversation__bot=failing_bot)
    assert answer.status == Message.Status.ERROR
    if model == "fail500":
        assert "secret upstream detail" in answer.error_text


def test_upstream_error_before_first_token_in_a_stream_is_an_error_event(http, make_bot, api_key):
    failing_bot = make_bot(model="fail500")
    response = http.post(
        URL,
        headers={"Authorization": api_key},
        json={
            "botId": failing_bot.id,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert response.status_code == 200
    events = sse_json(response.text)
    assert [e["status"] for e in events] == ["ERROR"]
    assert events[0]["errorCode"] == 502


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "botId"),
        ({"botId": "abc", "messages": [{"role": "user", "content": "x"}]}, "botId"),
        ({"botId": True, "messages": [{"role": "user", "content": "x"}]}, "botId"),
        ({"botId": 1}, "messages"),
        ({"botId": 1, "messages": []}, "messages"),
        ({"botId": 1, "messages": "hello"}, "messages"),
        ({"botId": 1, "messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"botId": 1, "messages": [{"role": "user", "content": 5}]}, "content"),
        ({"botId": 1, "messages": ["hi"]}, "messages[0]"),
        ({"botId": 1, "stream": "yes", "messages": [{"role": "user", "content": "x"}]}, "stream"),
    ],
)
def test_it_rejects_bad_requests_with_a_clear_400(http, api_key, body, fragment):
    response = http.post(URL, headers={"Authorization": api_key}, json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["errorCode"] == 400
    assert fragment in error["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b"\xff\xfe"])
def test_it_rejects_invalid_json(http, api_key, raw):
    response = http.post(
        URL, headers={"Authorization": api_key, "Content-Type": "application/json"}, content=raw
    )
    assert response.status_code == 400
    assert response.json()["errorCode"] == 400
    assert "JSON" in response.json()["message"]


def test_it_rejects_a_body_over_the_size_limit(http, bot, api_key):
    huge = "x" * 1_100_000
    response = http.post(
        URL,
        headers={"Authorization": api_key},
        json={"botId": bot.id, "messages": [{"role": "user", "content": huge}]},
    )
    assert response.status_code == 400
    assert "larger than" in response.json()["message"]


def test_it_allows_only_post(http, api_key):
    response = http.get(URL, headers={"Authorization": api_key})
    assert response.status_code == 405
    assert response.json()["errorCode"] == 405


@pytest.mark.parametrize("header", [None, "", "Bearer", "af-unknown", "Bearer af-unknown"])
def test_it_rejects_missing_or_unknown_keys(http, bot, header):
    headers = {} if header is None else {"Authorization": header}
    response = http.post(
        URL, headers=headers, json={"botId": bot.id, "messages": [{"role": "user", "content": "x"}]}
    )
    assert response.status_code == 401
    assert response.json()["errorCode"] == 401


def test_it_rejects_disabled_and_expired_keys(http, bot, make_key):
    disabled = make_key(name="disabled")
    ApiKey.objects.filter(name="disabled").update(enabled=False)
    expired = make_key(name="expired", expires_at=timezone.now() - timedelta(minutes=1))
    for key, word in [(disabled, "disabled"), (expired, "expired")]:
        response = http.post(
            URL,
            headers={"Authorization": key},
            json={"botId": bot.id, "messages": [{"role": "user", "content": "x"}]},
        )
        assert response.status_code == 401
        assert word in response.json()["message"]


def test_a_key_scoped_to_bot_a_gets_403_on_bot_b(http, make_bot, make_key):
    bot_a, bot_b = make_bot(name="A"), make_bot(name="B")
    key = make_key(bot_ids=[bot_a.id])
    ok = http.post(
        URL,
        headers={"Authorization": key},
        json={"botId": bot_a.id, "messages": [{"role": "user", "content": "x"}]},
    )
    assert ok.status_code == 200
    denied = http.post(
        URL,
        headers={"Authorization": key},
        json={"botId": bot_b.id, "messages": [{"role": "user", "content": "x"}]},
    )
    assert denied.status_code == 403
    assert denied.json()["errorCode"] == 403


def test_unknown_or_disabled_bot_is_404(http, make_bot, api_key):
    disabled = make_bot(enabled=False)
    for bot_id in (999_999, disabled.id):
        response = http.post(
            URL,
            headers={"Authorization": api_key},
            json={"botId": bot_id, "messages": [{"role": "user", "content": "x"}]},
        )
        assert response.status_code == 404
        assert response.json()["errorCode"] == 404


def test_rate_limit_answers_429_with_retry_after(http, bot, make_key):
    key = make_key(rate_limit_per_minute=2)
    body = {"botId": bot.id, "messages": [{"role": "user", "content": "x"}]}
    statuses = [
        http.post(URL, headers={"Authorization": key}, json=body).status_code for _ in range(3)
    ]
    assert statuses[:2] == [200, 200]
    limited = http.post(URL, headers={"Authorization": key}, json=body)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["errorCode"] == 429


def test_the_upstream_gets_the_provider_key_and_no_sdk_telemetry(http, bot, api_key, fake_upstream):
    http.post(
        URL,
        headers={"Authorization": api_key},
        json={"botId": bot.id, "messages": [{"role": "user", "content": "hi"}]},
    )
    headers = fake_upstream.request_headers[-1]
    assert headers["authorization"] == "Bearer sk-provider-secret"
    assert not [name for name in headers if name.startswith("x-stainless")]
    assert api_key not in " ".join(headers.values())
