"""Which bot answers a key (its only bot, its default bot, the documents' foreign `botId`), the
FastGPT path without `v1`, and AIFlowy's reply shape on `/v1/chat/completions` on request."""

from __future__ import annotations

import pytest

from apikeys.models import ApiKey
from tests.conftest import sse_json

COMPLETIONS = "/v1/chat/completions"
QUESTION = [{"role": "user", "content": "hello there"}]


def test_a_key_with_several_bots_answers_with_the_first_picked_when_model_is_absent(
    http, make_bot, make_key
):
    first, second = make_bot(name="first"), make_bot(name="second")
    key = make_key(bot_ids=[second.id, first.id])
    response = http.post(COMPLETIONS, headers={"Authorization": key}, json={"messages": QUESTION})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "second"

    named = http.post(
        COMPLETIONS,
        headers={"Authorization": key},
        json={"model": "first", "messages": QUESTION},
    )
    assert named.json()["model"] == "first"


def test_a_changed_default_bot_answers_and_an_every_bot_key_without_default_needs_a_model(
    http, make_bot, make_key
):
    first, second = make_bot(name="first"), make_bot(name="second")
    key = make_key(bot_ids=[first.id, second.id])
    ApiKey.objects.filter(name="test key").update(default_bot=second)
    # The key cache lives at most AIFLOWY_CONFIG_CACHE_SECONDS; this key was never used yet.
    response = http.post(COMPLETIONS, headers={"Authorization": key}, json={"messages": QUESTION})
    assert response.json()["model"] == "second"

    every_bot_key = make_key(name="every bot")
    refused = http.post(
        COMPLETIONS, headers={"Authorization": every_bot_key}, json={"messages": QUESTION}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "model"


def test_a_key_for_one_bot_answers_any_model_and_a_bot_id_that_names_no_bot(
    http, make_bot, make_key
):
    own, other = make_bot(name="own"), make_bot(name="other")
    key = make_key(bot_ids=[own.id])
    for model in ("gpt-4", "other", None):
        body = {"messages": QUESTION} | ({"model": model} if model else {})
        response = http.post(COMPLETIONS, headers={"Authorization": key}, json=body)
        assert response.json()["model"] == "own"

    chat = "/api/v1/aiBot/externalChat"
    foreign = http.post(
        chat,
        headers={"Authorization": key},
        json={"botId": "267848016181075968", "messages": QUESTION},
    )
    assert foreign.status_code == 200, foreign.text
    assert foreign.json()["choices"]["message"]["content"] == "Echo: hello there"
    denied = http.post(
        chat, headers={"Authorization": key}, json={"botId": other.id, "messages": QUESTION}
    )
    assert denied.status_code == 403


@pytest.mark.parametrize("path", ["/api/chat/completions", "/api/v1/chat/completions"])
def test_fastgpt_paths_answer_too(http, bot, api_key, path):
    response = http.post(
        path,
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": bot.name, "messages": QUESTION},
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Echo: hello there"


def test_the_aiflowy_reply_shape_on_request_by_header_or_query(http, bot, api_key):
    body = {"model": bot.name, "messages": QUESTION}
    default = http.post(COMPLETIONS, headers={"Authorization": api_key}, json=body)
    assert default.json()["object"] == "chat.completion"

    for headers, url in (
        ({"Authorization": api_key, "X-Aiflowy-Reply": "aiflowy"}, COMPLETIONS),
        ({"Authorization": api_key}, f"{COMPLETIONS}?reply=aiflowy"),
    ):
        answer = http.post(url, headers=headers, json=body).json()
        assert answer["status"] == "END"
        assert answer["choices"]["message"] == {"role": "assistant", "content": "Echo: hello there"}
        assert answer["usage"]["totalTokens"] == (
            answer["usage"]["promptTokens"] + answer["usage"]["completionTokens"]
        )


def test_the_aiflowy_reply_shape_streams_start_middle_end_and_errors_in_its_shape(
    http, bot, api_key
):
    headers = {"Authorization": api_key, "X-Aiflowy-Reply": "aiflowy"}
    streamed = http.post(
        COMPLETIONS,
        headers=headers,
        json={"model": bot.name, "messages": QUESTION, "stream": True},
    )
    frames = sse_json(streamed.text)
    assert frames[0]["status"] == "START"
    assert frames[-1]["status"] == "END"
    assert "".join(f["choices"]["delta"]["content"] for f in frames) == "Echo: hello there"

    unknown = http.post(
        COMPLETIONS, headers=headers, json={"model": "nobody", "messages": QUESTION}
    )
    assert unknown.status_code == 404
    assert unknown.json()["errorCode"] == 404
    refused = http.post(
        COMPLETIONS, headers={**headers, "Authorization": "af-wrong"}, json={"messages": QUESTION}
    )
    assert refused.status_code == 401
    assert "errorCode" in refused.json()


def test_the_history_api_reads_the_default_bots_conversations_without_bot_id(
    http, make_bot, make_key
):
    first, second = make_bot(name="first"), make_bot(name="second")
    key = make_key(bot_ids=[second.id, first.id])
    headers = {"Authorization": key}
    http.post(COMPLETIONS, headers=headers, json={"chatId": "talk", "messages": QUESTION})
    listed = http.get("/api/v1/chat/histories", headers=headers).json()
    assert listed["botId"] == second.id
    assert [item["chatId"] for item in listed["list"]] == ["talk"]
