"""Operators read chat history in the admin: read-only, filterable, searchable by content."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chat.models import Message
from tests.conftest import wait_until

URL = "/api/v1/aiBot/externalChat"


@pytest.fixture
def admin_client(transactional_db) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    return client


def test_history_is_listed_searchable_filterable_and_read_only(
    admin_client, http, make_bot, api_key
):
    bot_a, bot_b = make_bot(name="alpha"), make_bot(name="beta")
    for target, text in [(bot_a, "zebra crossing"), (bot_b, "yellow submarine")]:
        http.post(
            URL,
            headers={"Authorization": api_key},
            json={"botId": target.id, "messages": [{"role": "user", "content": text}]},
        )
    wait_until(lambda: Message.objects.filter(role="assistant").count() == 2)

    found = admin_client.get("/admin/chat/conversation/", {"q": "submarine"}).content.decode()
    assert "yellow submarine" in found and "zebra crossing" not in found
    filtered = admin_client.get("/admin/chat/conversation/", {"bot__id__exact": bot_a.id})
    assert "zebra crossing" in filtered.content.decode()
    assert "yellow submarine" not in filtered.content.decode()

    conversation = Message.objects.get(content="Echo: zebra crossing").conversation
    detail = admin_client.get(f"/admin/chat/conversation/{conversation.pk}/change/")
    assert detail.status_code == 200
    page = detail.content.decode()
    assert "Echo: zebra crossing" in page
    assert 'name="_save"' not in page
    assert admin_client.get("/admin/chat/conversation/add/").status_code == 403
