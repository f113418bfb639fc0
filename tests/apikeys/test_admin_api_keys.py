"""The admin's API key pages: 新增 generates the key, shows it once, stores only its hash."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apikeys.models import ApiKey
from apikeys.services import api_key_hash

CHAT_URL = "/api/v1/aiBot/externalChat"
KEY_IN_PAGE = re.compile(r'id="new-api-key"[^>]*value="(af-[A-Za-z0-9_\-]+)"')


@pytest.fixture
def admin_client(transactional_db) -> Client:
    user = get_user_model().objects.create_superuser("root", password="pw-for-tests")
    client = Client(headers={"accept-language": "zh-hans"})
    client.force_login(user)
    return client


def test_the_add_button_reads_xinzeng_in_chinese_and_add_in_english(admin_client):
    page = admin_client.get("/admin/apikeys/apikey/").content.decode()
    assert "新增 API 密钥" in page
    assert 'id="language-switch"' in page

    switched = admin_client.post(
        "/i18n/setlang/", {"language": "en", "next": "/admin/apikeys/apikey/"}, follow=True
    )
    page = switched.content.decode()
    assert "Add API key" in page
    assert "新增" not in page


def test_the_add_form_asks_only_for_name_expiry_scope_and_rate_limit(admin_client):
    page = admin_client.get("/admin/apikeys/apikey/add/").content.decode()
    fields = set(re.findall(r'<(?:input|select|textarea)[^>]*\bname="([a-z_0-9]+)"', page)) - {
        "csrfmiddlewaretoken",
        "_save",
        "_continue",
        "_addanother",
        "language",
        "next",
    }
    assert fields == {
        "name",
        "expires_at_0",
        "expires_at_1",
        "allowed_bots",
        "default_bot",
        "allowed_workflows",
        "allowed_knowledge_bases",
        "rate_limit_per_minute",
    }


def test_adding_a_key_shows_it_once_stores_a_hash_and_the_key_works(admin_client, http, bot):
    response = admin_client.post(
        "/admin/apikeys/apikey/add/",
        {
            "name": "from admin",
            "rate_limit_per_minute": "0",
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw_key = KEY_IN_PAGE.search(response.content.decode()).group(1)
    api_key = ApiKey.objects.get(name="from admin")
    assert api_key.key_hash == api_key_hash(raw_key)
    assert raw_key not in {api_key.key_hash, api_key.prefix}
    assert raw_key.startswith(api_key.prefix)
    assert api_key.created_by.username == "root"

    for url in ("/admin/apikeys/apikey/", f"/admin/apikeys/apikey/{api_key.pk}/change/"):
        page = admin_client.get(url).content.decode()
        assert raw_key not in page
        assert api_key.prefix in page

    chat = http.post(
        CHAT_URL,
        headers={"Authorization": f"Bearer {raw_key}"},
        json={"botId": bot.id, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 200


def test_disable_and_enable_actions_switch_the_key(admin_client, http, bot, make_key):
    raw_key = make_key(name="switch me")
    api_key = ApiKey.objects.get(name="switch me")
    body = {"botId": bot.id, "messages": [{"role": "user", "content": "hi"}]}

    admin_client.post(
        "/admin/apikeys/apikey/", {"action": "disable_keys", "_selected_action": [api_key.pk]}
    )
    assert http.post(CHAT_URL, headers={"Authorization": raw_key}, json=body).status_code == 401

    admin_client.post(
        "/admin/apikeys/apikey/", {"action": "enable_keys", "_selected_action": [api_key.pk]}
    )
    assert http.post(CHAT_URL, headers={"Authorization": raw_key}, json=body).status_code == 200


def test_list_shows_name_prefix_enabled_expiry_and_last_used(admin_client, make_key):
    make_key(name="listed")
    page = admin_client.get("/admin/apikeys/apikey/").content.decode()
    for column in ("名称", "密钥", "启用", "过期时间", "最近使用"):
        assert column in page


def test_the_first_bot_picked_is_the_default_and_the_operator_can_change_it(
    admin_client, http, make_bot
):
    first, second = make_bot(name="first"), make_bot(name="second")
    form = {
        "name": "two bots",
        "rate_limit_per_minute": "0",
        "expires_at_0": "",
        "expires_at_1": "",
    }
    # The selector posts its chosen box in the order the bots were moved into it.
    response = admin_client.post(
        "/admin/apikeys/apikey/add/", {**form, "allowed_bots": [second.id, first.id]}
    )
    raw_key = KEY_IN_PAGE.search(response.content.decode()).group(1)
    api_key = ApiKey.objects.get(name="two bots")
    assert api_key.default_bot == second
    answer = http.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {raw_key}"},
        json={"messages": [{"role": "user", "content": "hi"}]},
    )
    assert answer.json()["model"] == "second"

    change_url = f"/admin/apikeys/apikey/{api_key.pk}/change/"
    form["enabled"] = "on"
    admin_client.post(
        change_url, {**form, "allowed_bots": [second.id, first.id], "default_bot": first.id}
    )
    api_key.refresh_from_db()
    assert api_key.default_bot == first

    outsider = make_bot(name="outsider")
    refused = admin_client.post(
        change_url, {**form, "allowed_bots": [first.id], "default_bot": outsider.id}
    )
    assert "默认机器人必须是允许的机器人之一" in refused.content.decode()
    # Dropping the default bot from the scope makes the first remaining one the default.
    admin_client.post(change_url, {**form, "allowed_bots": [second.id], "default_bot": ""})
    api_key.refresh_from_db()
    assert api_key.default_bot == second
