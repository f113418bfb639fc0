"""The bot's own API key section on its admin page: 新增 makes a key for that bot only and
shows it once, as AIFlowy's bot page does."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from apikeys.models import ApiKey
from apikeys.services import api_key_hash

KEY_IN_PAGE = re.compile(r'id="new-api-key"[^>]*value="(af-[A-Za-z0-9_\-]+)"')


def _client(user) -> Client:
    client = Client(headers={"accept-language": "zh-hans"})
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(transactional_db) -> Client:
    return _client(get_user_model().objects.create_superuser("root", password="pw-for-tests"))


def test_xinzeng_on_the_bots_page_makes_a_key_for_that_bot_shown_once(admin_client, http, bot):
    change_url = f"/admin/bots/bot/{bot.pk}/change/"
    page = admin_client.get(change_url).content.decode()
    assert 'id="bot-api-keys"' in page
    assert "新增 API 密钥" in page
    assert "还没有仅限此机器人的密钥" in page

    created = admin_client.post(
        f"/admin/bots/bot/{bot.pk}/api-keys/add/", {"new_api_key_name": "for the shop"}
    )
    assert created.status_code == 200
    assert "no-store" in created["Cache-Control"]
    raw_key = KEY_IN_PAGE.search(created.content.decode()).group(1)
    api_key = ApiKey.objects.get(name="for the shop")
    assert api_key.key_hash == api_key_hash(raw_key)
    assert list(api_key.allowed_bots.all()) == [bot]
    assert api_key.default_bot == bot
    assert api_key.created_by.username == "root"

    page = admin_client.get(change_url).content.decode()
    assert raw_key not in page
    assert api_key.prefix in page

    answer = http.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {raw_key}"},
        json={"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert answer.status_code == 200
    assert answer.json()["model"] == bot.name


def test_a_key_is_made_only_by_post_and_only_with_the_right_to_add_keys(admin_client, bot):
    url = f"/admin/bots/bot/{bot.pk}/api-keys/add/"
    assert admin_client.get(url).status_code == 405
    assert admin_client.post("/admin/bots/bot/999999/api-keys/add/").status_code == 404

    editor = get_user_model().objects.create_user("editor", password="pw", is_staff=True)
    editor.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_bot", "change_bot", "view_apikey"])
    )
    client = _client(editor)
    page = client.get(f"/admin/bots/bot/{bot.pk}/change/").content.decode()
    assert 'id="bot-api-keys"' in page
    assert 'id="add-bot-api-key"' not in page
    assert client.post(url).status_code == 403
    assert not ApiKey.objects.exists()


def test_the_section_is_absent_for_staff_who_may_not_see_keys(transactional_db, bot):
    editor = get_user_model().objects.create_user("bot-editor", password="pw", is_staff=True)
    editor.user_permissions.add(*Permission.objects.filter(codename__in=["view_bot", "change_bot"]))
    page = _client(editor).get(f"/admin/bots/bot/{bot.pk}/change/").content.decode()
    assert 'name="name"' in page
    assert 'id="bot-api-keys"' not in page
