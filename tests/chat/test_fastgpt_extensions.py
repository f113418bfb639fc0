"""FastGPT's extensions of /v1/chat/completions over raw HTTP: `chatId` server-side history,
`variables`, `customUid`, `responseChatItemId` and `detail` (JSON and named SSE events)."""

from __future__ import annotations

import json

import pytest

from chat.models import Conversation, Message
from tests.chat.conftest import (
    COMPLETIONS,
    sse_events,
    sse_json,
    stored_answer,
    stored_answers,
    user,
)
from tests.conftest import assert_sse_headers

SYSTEM = {"role": "system", "content": "You are helpful."}


def chat(http, key: str, **body):
    body.setdefault("model", "helper")
    return http.post(COMPLETIONS, headers={"Authorization": f"Bearer {key}"}, json=body)


def sent_messages(fake_upstream, marker: str) -> list[dict]:
    request = next(r for r in reversed(fake_upstream.requests) if marker in str(r["messages"]))
    return request["messages"]


# --- chatId -----------------------------------------------------------------------------------
def test_chat_id_sends_the_stored_history_and_only_the_last_message(
    http, bot, api_key, fake_upstream
):
    first = chat(http, api_key, chatId="dialog-1", messages=[user("first question")])
    assert first.status_code == 200
    second = chat(
        http,
        api_key,
        chatId="dialog-1",
        messages=[user("ignored context"), {"role": "assistant", "content": "x"}, user("second")],
    )
    assert second.json()["choices"][0]["message"]["content"] == "Echo: second"
    assert sent_messages(fake_upstream, "second") == [
        SYSTEM,
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "Echo: first question"},
        {"role": "user", "content": "second"},
    ]
    stored_answers(2, conversation__external_chat_id="dialog-1")
    conversation = Conversation.objects.get(external_chat_id="dialog-1")
    assert conversation.source == Conversation.Source.OPENAI
    assert list(conversation.messages.values_list("role", "content")) == [
        ("user", "first question"),
        ("assistant", "Echo: first question"),
        ("user", "second"),
        ("assistant", "Echo: second"),
    ]


def test_chat_id_history_is_windowed_by_the_bot_setting(http, make_bot, api_key, fake_upstream):
    make_bot(name="short-memory", history_window=2)
    for text in ("one", "two", "three"):
        response = chat(http, api_key, model="short-memory", chatId="w", messages=[user(text)])
        assert response.status_code == 200
    assert sent_messages(fake_upstream, "three") == [
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "Echo: two"},
        {"role": "user", "content": "three"},
    ]


def test_chat_id_works_when_streaming_too(http, bot, api_key, fake_upstream):
    chat(http, api_key, chatId="s", stream=True, messages=[user("streamed first")])
    response = chat(http, api_key, chatId="s", stream=True, messages=[user("streamed second")])
    assert sse_json(response.text)[-1] == "[DONE]"
    assert {"role": "assistant", "content": "Echo: streamed first"} in sent_messages(
        fake_upstream, "streamed second"
    )


def test_the_same_chat_id_from_two_keys_never_shares_history(http, bot, make_key, fake_upstream):
    key_a, key_b = make_key(name="a"), make_key(name="b")
    chat(http, key_a, chatId="shared", messages=[user("secret of A")])
    chat(http, key_b, chatId="shared", messages=[user("hello from B")])
    assert sent_messages(fake_upstream, "hello from B") == [
        SYSTEM,
        {"role": "user", "content": "hello from B"},
    ]
    chat(http, key_a, chatId="shared", messages=[user("A again")])
    assert "hello from B" not in str(sent_messages(fake_upstream, "A again"))
    stored_answers(3, conversation__external_chat_id="shared")
    conversations = Conversation.objects.filter(external_chat_id="shared")
    assert sorted(c.api_key.name for c in conversations) == ["a", "b"]


def test_without_chat_id_the_callers_messages_are_the_whole_context(
    http, bot, api_key, fake_upstream
):
    messages = [user("u1"), {"role": "assistant", "content": "a1"}, user("stateless q")]
    chat(http, api_key, messages=messages)
    assert sent_messages(fake_upstream, "stateless q") == [SYSTEM, *messages]
    answer = stored_answer(conversation__bot=bot)
    assert answer.conversation.external_chat_id == ""
    assert answer.conversation.messages.count() == 2


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"chatId": "x" * 251}, "chatId"),
        ({"chatId": ["a"]}, "chatId"),
        (
            {"chatId": "c", "messages": [user("q"), {"role": "assistant", "content": "a"}]},
            "messages",
        ),
        ({"variables": ["not", "an", "object"]}, "variables"),
        ({"customUid": 5}, "customUid"),
        ({"responseChatItemId": "x" * 251}, "responseChatItemId"),
        ({"detail": "yes"}, "detail"),
    ],
)
def test_invalid_fastgpt_fields_are_a_400_in_openai_shape(http, bot, api_key, fields, param):
    body = {"messages": [user("q")], **fields}
    response = chat(http, api_key, **body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


# --- variables, customUid, responseChatItemId ---------------------------------------------------
def test_variables_fill_the_system_prompt_by_plain_substitution(
    http, make_bot, api_key, fake_upstream
):
    make_bot(name="tmpl", system_prompt="Help {{name}} in {{ city }}; age {{age}}; {{unknown}}.")
    chat(
        http,
        api_key,
        model="tmpl",
        variables={"name": "{{city}} {% debug %}", "city": "Paris", "age": 30},
        messages=[user("vars")],
    )
    assert sent_messages(fake_upstream, "vars")[0] == {
        "role": "system",
        "content": "Help {{city}} {% debug %} in Paris; age 30; {{unknown}}.",
    }


def test_variables_are_stored_and_merged_with_the_requests_winning(
    http, make_bot, api_key, fake_upstream
):
    make_bot(name="tmpl", system_prompt="Help {{name}} in {{city}}.")
    chat(
        http,
        api_key,
        model="tmpl",
        chatId="v",
        variables={"name": "Ann", "city": "Paris"},
        messages=[user("turn one")],
    )
    chat(
        http, api_key, model="tmpl", chatId="v", variables={"city": "Rome"}, messages=[user("two")]
    )
    assert sent_messages(fake_upstream, "two")[0]["content"] == "Help Ann in Rome."
    chat(http, api_key, model="tmpl", chatId="v", messages=[user("three")])
    assert sent_messages(fake_upstream, "three")[0]["content"] == "Help Ann in Rome."
    stored_answers(3, conversation__external_chat_id="v")
    assert Conversation.objects.get(external_chat_id="v").variables == {
        "name": "Ann",
        "city": "Rome",
    }


def test_custom_uid_and_response_chat_item_id_are_stored(http, bot, api_key):
    chat(
        http,
        api_key,
        chatId="ids",
        customUid="end-user-42",
        responseChatItemId="reply-1",
        messages=[user("ids")],
    )
    answer = stored_answer(conversation__external_chat_id="ids")
    assert answer.external_id == "reply-1"
    assert answer.conversation.custom_uid == "end-user-42"


# --- detail -----------------------------------------------------------------------------------
def test_detail_adds_response_data_to_a_json_answer(http, bot, api_key):
    chat(http, api_key, chatId="d", messages=[user("before")])
    response = chat(http, api_key, chatId="d", detail=True, messages=[user("detailed")])
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Echo: detailed"
    [record] = body["responseData"]
    assert record["moduleType"] == "chatNode"
    assert record["moduleName"]
    assert record["model"] == "fake-model"
    assert record["tokens"] == body["usage"]["total_tokens"]
    assert isinstance(record["runningTime"], float) and record["runningTime"] >= 0
    assert record["query"] == "detailed"
    assert record["historyPreview"] == [
        {"obj": "Human", "value": "before"},
        {"obj": "AI", "value": "Echo: before"},
        {"obj": "Human", "value": "detailed"},
    ]


def test_without_detail_there_is_no_response_data(http, bot, api_key):
    assert "responseData" not in chat(http, api_key, messages=[user("plain")]).json()


def test_detail_streams_fastgpt_named_events(http, bot, api_key):
    response = chat(http, api_key, detail=True, stream=True, messages=[user("one two")])
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[0] == "flowNodeStatus"
    assert json.loads(events[0][1]) == {"status": "running", "name": "AI Chat"}
    assert names[1:-2] == ["answer"] * (len(names) - 3)
    assert names[-2:] == ["flowResponses", "appStreamResponse"]
    answers = [data for name, data in events if name == "answer"]
    assert answers[-1] == "[DONE]"
    chunks = [json.loads(data) for data in answers[:-1]]
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Echo: one two"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    [record] = json.loads(events[-2][1])
    assert json.loads(events[-1][1]) == [record]
    assert record["query"] == "one two"
    assert record["moduleType"] == "chatNode"


def test_detail_stream_failure_ends_with_an_error_event(http, make_bot, api_key):
    make_bot(name="cutter", model="cut")
    response = chat(
        http, api_key, model="cutter", detail=True, stream=True, messages=[user("a b c")]
    )
    events = sse_events(response.text)
    assert events[0][0] == "flowNodeStatus"
    assert events[-1][0] == "error"
    assert json.loads(events[-1][1])["error"]["code"] == "upstream_error"
    assert {name for name, _ in events[1:-1]} == {"answer"}


# --- raw SSE framing --------------------------------------------------------------------------
def test_stream_is_plain_openai_sse_ending_with_done(http, bot, api_key):
    with http.stream(
        "POST",
        COMPLETIONS,
        headers={"Authorization": api_key},
        json={"model": "helper", "stream": True, "messages": [user("frame")]},
    ) as response:
        assert_sse_headers(response)
        text = response.read().decode()
    assert text.endswith("data: [DONE]\n\n")
    assert all(name is None for name, _ in sse_events(text))
    first = sse_json(text)[0]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "Echo: "}


def test_failure_mid_stream_is_an_error_event_then_done(http, make_bot, api_key):
    make_bot(name="cutter", model="cut")
    response = chat(http, api_key, model="cutter", stream=True, messages=[user("a b c")])
    *chunks, error, done = sse_json(response.text)
    assert done == "[DONE]"
    assert set(error) == {"error"}
    assert error["error"]["type"] == "api_error"
    assert error["error"]["code"] == "upstream_error"
    assert chunks and all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    answer = stored_answer(conversation__bot__name="cutter")
    assert answer.status == Message.Status.ERROR


# --- errors in OpenAI's shape -----------------------------------------------------------------
def test_errors_use_openais_body(http, bot):
    response = http.post(COMPLETIONS, json={"model": "helper", "messages": [user("x")]})
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "message": "Missing API key: send the header 'Authorization: Bearer <key>'.",
            "type": "authentication_error",
            "param": None,
            "code": "missing_api_key",
        }
    }


def test_it_allows_only_post_and_rejects_invalid_json(http, api_key):
    wrong_method = http.get(COMPLETIONS, headers={"Authorization": api_key})
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    bad_json = http.post(
        COMPLETIONS,
        headers={"Authorization": api_key, "Content-Type": "application/json"},
        content=b"{nope",
    )
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["code"] == "invalid_json"


def test_the_api_v1_alias_takes_fastgpt_requests_without_model(http, bot, make_key):
    """FastGPT-style callers send no `model`: a key for one bot needs none."""
    key = make_key(bot_ids=[bot.id])
    response = http.post(
        "/api/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"chatId": "alias", "messages": [user("via alias")]},
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Echo: via alias"
