"""The admin usage page: per bot or key, per day, from stored exchanges (every process's
answers), as SVG charts and a table, filterable by day."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import api_key_create
from chat.models import Conversation, Message

URL = "/admin/chat/conversation/usage/"


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def _exchange(bot, key, *, days_ago: int, status="complete", prompt=10, completion=5, ms=100):
    when = timezone.now() - timedelta(days=days_ago)
    conversation = Conversation.objects.create(
        bot=bot, api_key=key, source="openai", created_at=when, updated_at=when
    )
    Message.objects.create(conversation=conversation, role="user", content="q", created_at=when)
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="a",
        status=status,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_ms=ms,
        created_at=when,
    )


def _rows(page: str) -> dict[str, list[str]]:
    import re

    body = page.split('<table id="usage-table">', 1)[1].split("</table>", 1)[0]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
        cells = [c.strip() for c in re.findall(r"<td>(.*?)</td>", row, flags=re.S)]
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


def test_usage_per_bot_and_key_per_day_from_stored_exchanges(admin_client, make_bot):
    helper, other = make_bot(name="helper"), make_bot(name="other")
    key, _raw = api_key_create(name="k1")
    key2, _raw2 = api_key_create(name="k2")
    _exchange(helper, key, days_ago=0, ms=100)
    _exchange(helper, key, days_ago=0, status="error", prompt=3, completion=0, ms=300)
    _exchange(helper, key2, days_ago=2)
    _exchange(other, key, days_ago=0, prompt=1000)
    today = timezone.localdate()

    page = admin_client.get(URL, {"bot": helper.id}).content.decode()
    rows = _rows(page)
    assert len(rows) == 30
    assert rows[today.isoformat()] == ["2", "1", "13", "5", "200"]
    assert rows[(today - timedelta(days=2)).isoformat()] == ["1", "0", "10", "5", "100"]
    assert rows[(today - timedelta(days=1)).isoformat()] == ["0", "0", "0", "0", "—"]
    assert page.count('class="usage-chart"') == 5
    assert "3 requests, 1 errors" in page

    by_key = _rows(admin_client.get(URL, {"bot": helper.id, "key": key.id}).content.decode())
    assert by_key[(today - timedelta(days=2)).isoformat()][0] == "0"
    assert by_key[today.isoformat()][0] == "2"

    one_day = admin_client.get(
        URL, {"first": today.isoformat(), "last": today.isoformat()}
    ).content.decode()
    assert list(_rows(one_day)) == [today.isoformat()]
    assert _rows(one_day)[today.isoformat()][:3] == ["3", "1", "1013"]


def test_usage_needs_the_view_permission_and_bad_filters_are_ignored(admin_client, db):
    assert Client().get(URL).status_code == 302  # to the login page
    response = admin_client.get(URL, {"bot": "x" * 40, "first": "not-a-date", "key": "-1"})
    assert response.status_code == 200
    assert ApiKey.objects.count() == 0


def test_the_usage_page_is_linked_from_the_history_and_speaks_chinese(admin_client, db):
    listing = admin_client.get("/admin/chat/conversation/").content.decode()
    assert URL in listing
    chinese = admin_client.get(URL, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "用量" in chinese
    assert "平均延迟（毫秒）" in chinese
    assert "本期间共 0 次请求" in chinese
