"""The history API (/api/v1/chat/histories, /api/v1/chat/records) through Daphne: scoped to
the calling key, paginated, errors in AIFlowy's shape."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import api_key_hash
from chat.models import Conversation, Message
from tests.chat.conftest import COMPLETIONS, stored_answers, user

HISTORIES = "/api/v1/chat/histories"
RECORDS = "/api/v1/chat/records"


def key_row(raw_key: str) -> ApiKey:
    return ApiKey.objects.get(key_hash=api_key_hash(raw_key))


@pytest.fixture
def make_conversation(bot, api_key):
    """A stored conversation with `turns` question/answer pairs, `minutes_ago` old."""

    def make(chat_id: str, *, key: str = api_key, for_bot=bot, turns=1, minutes_ago=0, **fields):
        at = timezone.now() - timedelta(minutes=minutes_ago)
        conversation = Conversation.objects.create(
            bot=for_bot,
            api_key=key_row(key),
            external_chat_id=chat_id,
            source=Conversation.Source.OPENAI,
            title=f"title of {chat_id}",
            created_at=at,
            updated_at=at,
            **fields,
        )
        for turn in range(turns):
            Message.objects.create(
                conversation=conversation, role="user", content=f"q{turn}", created_at=at
            )
            Message.objects.create(
                conversation=conversation,
                role="assistant",
                content=f"a{turn}",
                created_at=at + timedelta(seconds=1),
            )
            at += timedelta(seconds=2)
        return conversation

    return make


def get(http, url: str, key: str, **params):
    return http.get(url, headers={"Authorization": f"Bearer {key}"}, params=params)


def test_it_lists_the_keys_conversations_with_the_bot_newest_first(
    http, bot, make_bot, api_key, make_key, make_conversation
):
    other_key = make_key(name="other")
    make_conversation("older", minutes_ago=5, custom_uid="u1", variables={"x": "1"})
    make_conversation("newer", minutes_ago=1)
    make_conversation("", minutes_ago=0)  # stateless calls are not listed
    make_conversation("not-mine", key=other_key)
    make_conversation("other-bot", for_bot=make_bot(name="other-bot"))
    response = get(http, HISTORIES, api_key, botId=bot.id)
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 2
    assert (body["botId"], body["offset"], body["pageSize"]) == (bot.id, 0, 20)
    assert [item["chatId"] for item in body["list"]] == ["newer", "older"]
    older = body["list"][1]
    assert older["customUid"] == "u1"
    assert older["title"] == "title of older"
    assert older["variables"] == {"x": "1"}
    assert older["createTime"] and older["updateTime"]


def test_histories_are_paginated_and_filtered_by_custom_uid(http, bot, api_key, make_conversation):
    for index in range(5):
        make_conversation(
            f"c{index}", minutes_ago=10 - index, custom_uid="even" if index % 2 == 0 else "odd"
        )
    page = get(http, HISTORIES, api_key, botId=bot.id, offset=1, pageSize=2).json()
    assert page["total"] == 5
    assert [item["chatId"] for item in page["list"]] == ["c3", "c2"]
    even = get(http, HISTORIES, api_key, botId=bot.id, customUid="even").json()
    assert even["total"] == 3
    assert [item["chatId"] for item in even["list"]] == ["c4", "c2", "c0"]


def test_records_are_a_conversations_messages_oldest_first_paginated(
    http, bot, api_key, make_conversation
):
    make_conversation("talk", turns=3)
    first_page = get(http, RECORDS, api_key, botId=bot.id, chatId="talk", pageSize=4).json()
    assert first_page["chatId"] == "talk"
    assert first_page["total"] == 6
    assert [(m["role"], m["content"]) for m in first_page["list"]] == [
        ("user", "q0"),
        ("assistant", "a0"),
        ("user", "q1"),
        ("assistant", "a1"),
    ]
    rest = get(http, RECORDS, api_key, botId=bot.id, chatId="talk", offset=4).json()
    assert [m["content"] for m in rest["list"]] == ["q2", "a2"]
    assert set(rest["list"][0]) == {"id", "dataId", "role", "content", "status", "createTime"}


def test_a_chat_through_the_api_can_be_read_back(http, bot, make_key):
    key = make_key(bot_ids=[bot.id])
    http.post(
        COMPLETIONS,
        headers={"Authorization": f"Bearer {key}"},
        json={
            "chatId": "round-trip",
            "customUid": "me",
            "responseChatItemId": "r-1",
            "messages": [user("remember this")],
        },
    )
    stored_answers(1, conversation__external_chat_id="round-trip")
    listed = get(http, HISTORIES, key, customUid="me").json()  # one bot: botId is optional
    assert [item["chatId"] for item in listed["list"]] == ["round-trip"]
    records = get(http, RECORDS, key, chatId="round-trip").json()["list"]
    assert [(m["role"], m["content"], m["dataId"]) for m in records] == [
        ("user", "remember this", None),
        ("assistant", "Echo: remember this", "r-1"),
    ]
    assert records[1]["status"] == "complete"


def test_delete_removes_the_conversation_and_its_messages(http, bot, api_key, make_conversation):
    make_conversation("to-delete", turns=2)
    make_conversation("to-keep")
    deleted = http.delete(
        HISTORIES,
        headers={"Authorization": api_key},
        params={"botId": bot.id, "chatId": "to-delete"},
    )
    assert deleted.status_code == 200
    assert deleted.json() == {"botId": bot.id, "chatId": "to-delete", "deleted": True}
    assert get(http, RECORDS, api_key, botId=bot.id, chatId="to-delete").status_code == 404
    assert not Message.objects.filter(conversation__external_chat_id="to-delete").exists()
    listed = get(http, HISTORIES, api_key, botId=bot.id).json()
    assert [item["chatId"] for item in listed["list"]] == ["to-keep"]
    again = http.delete(
        HISTORIES,
        headers={"Authorization": api_key},
        params={"botId": bot.id, "chatId": "to-delete"},
    )
    assert again.status_code == 404
    assert again.json()["errorCode"] == 404


def test_another_key_can_neither_read_nor_delete_a_conversation(
    http, bot, api_key, make_key, make_conversation
):
    make_conversation("private")
    stranger = make_key(name="stranger")
    assert get(http, HISTORIES, stranger, botId=bot.id).json()["total"] == 0
    records = get(http, RECORDS, stranger, botId=bot.id, chatId="private")
    assert records.status_code == 404
    assert records.json()["errorCode"] == 404
    deleted = http.delete(
        HISTORIES,
        headers={"Authorization": stranger},
        params={"botId": bot.id, "chatId": "private"},
    )
    assert deleted.status_code == 404
    assert Conversation.objects.filter(external_chat_id="private").exists()


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({}, 400, "botId"),
        ({"botId": "abc"}, 400, "botId"),
        ({"botId": "{bot}", "pageSize": 101}, 400, "pageSize"),
        ({"botId": "{bot}", "offset": -1}, 400, "offset"),
        ({"botId": 999_999}, 404, "999999"),
    ],
)
def test_bad_queries_get_aiflowy_errors(http, bot, api_key, params, status, fragment):
    params = {k: bot.id if v == "{bot}" else v for k, v in params.items()}
    response = get(http, HISTORIES, api_key, **params)
    assert response.status_code == status
    body = response.json()
    # AIFlowy's one error shape: `param` names the field at fault when there is one.
    assert set(body) <= {"errorCode", "message", "param"}
    assert body.get("param", fragment) == fragment or status == 404
    assert body["errorCode"] == status
    assert fragment in body["message"]


def test_records_need_a_chat_id(http, bot, api_key):
    response = get(http, RECORDS, api_key, botId=bot.id)
    assert response.status_code == 400
    assert "chatId" in response.json()["message"]


def test_a_bot_outside_the_keys_scope_is_forbidden(http, make_bot, make_key):
    mine, theirs = make_bot(name="mine"), make_bot(name="theirs")
    key = make_key(bot_ids=[mine.id])
    response = get(http, HISTORIES, key, botId=theirs.id)
    assert response.status_code == 403
    assert response.json()["errorCode"] == 403


@pytest.mark.parametrize("header", [None, "Bearer af-unknown"])
def test_missing_or_unknown_keys_are_401(http, bot, header):
    headers = {} if header is None else {"Authorization": header}
    response = http.get(HISTORIES, headers=headers, params={"botId": bot.id})
    assert response.status_code == 401
    assert response.json()["errorCode"] == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_rate_limit_applies_with_retry_after(http, bot, make_key):
    key = make_key(rate_limit_per_minute=1)
    assert get(http, HISTORIES, key, botId=bot.id).status_code == 200
    limited = get(http, HISTORIES, key, botId=bot.id)
    assert limited.status_code == 429
    assert limited.json()["errorCode"] == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60


def test_unsupported_methods_are_405_in_the_same_shape(http, bot, api_key):
    response = http.post(
        HISTORIES, headers={"Authorization": api_key}, params={"botId": bot.id}, json={}
    )
    assert response.status_code == 405
    assert response.json()["errorCode"] == 405


def test_listing_costs_the_same_queries_whatever_the_page_size(
    client, bot, api_key, make_conversation
):
    """In-process (Django's test client): the count and the page, nothing per row."""
    for index in range(30):
        make_conversation(f"c{index}", turns=2)
    headers = {"Authorization": f"Bearer {api_key}"}
    client.get(HISTORIES, {"botId": bot.id}, headers=headers)  # the key's first use is noted once

    def queries_for(url: str, **params) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url, {"botId": bot.id, **params}, headers=headers)
        assert response.status_code == 200
        return len(captured)

    assert queries_for(HISTORIES, pageSize=1) == queries_for(HISTORIES, pageSize=30)
    assert queries_for(RECORDS, chatId="c0", pageSize=1) == queries_for(
        RECORDS, chatId="c0", pageSize=4
    )
