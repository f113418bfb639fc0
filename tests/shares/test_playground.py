"""The operators' playground (a staff session, every detail shown) and the share-link admin."""

from __future__ import annotations

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chat.models import Conversation
from shares.models import ShareLink
from tests.conftest import sse_parsed

PLAYGROUND = "/api/chat-page/playground"
PAGE_HEADERS = {"X-Requested-With": "aiflowy-chat-page"}


def _session_client(live_server_url: str, user) -> httpx.Client:
    django_client = Client()
    django_client.force_login(user)
    return httpx.Client(
        base_url=live_server_url,
        timeout=30,
        cookies={"sessionid": django_client.cookies["sessionid"].value},
        headers={"Accept-Language": "en"},
    )


@pytest.fixture
def staff(transactional_db):
    return get_user_model().objects.create_superuser("operator", password="s3cret-pass")


@pytest.fixture
def staff_http(live_server_url, staff):
    with _session_client(live_server_url, staff) as client:
        yield client


def test_the_playground_answers_with_its_detail_and_stores_the_chat(staff_http, staff, bot):
    answer = staff_http.post(
        f"{PLAYGROUND}/answer", json={"botId": bot.id, "question": "try me"}, headers=PAGE_HEADERS
    )
    assert answer.status_code == 200, answer.text
    events = sse_parsed(answer.text)
    names = [name for name, _ in events]
    assert names[0] == "chat" and names[-1] == "end"
    end = events[-1][1]
    detail = end["detail"]
    assert detail["prompt"] == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "try me"},
    ]
    assert detail["model"] == "fake-model"
    assert detail["quotes"] == []
    assert detail["timings"]["totalMs"] >= detail["timings"]["firstTokenMs"] >= 0
    assert detail["responseData"][0]["tokens"] == end["usage"]["totalTokens"]

    chat_id = events[0][1]["chatId"]
    conversation = Conversation.objects.get(external_chat_id=chat_id)
    assert conversation.source == Conversation.Source.PLAYGROUND
    assert conversation.custom_uid == f"staff:{staff.pk}"
    assert [m.content for m in conversation.messages.order_by("created_at", "id")] == [
        "try me",
        "Echo: try me",
    ]
    opened = staff_http.post(f"{PLAYGROUND}/open", json={"botId": bot.id}, headers=PAGE_HEADERS)
    assert opened.json()["showDetail"] is True
    assert [c["chatId"] for c in opened.json()["chats"]] == [chat_id]


def test_the_playground_is_for_signed_in_staff_only(live_server_url, http, staff_http, bot):
    body = {"botId": bot.id, "question": "hello"}
    assert http.post(f"{PLAYGROUND}/answer", json=body, headers=PAGE_HEADERS).status_code == 401
    # A form or a page on another site cannot send the header (CORS preflight).
    no_header = staff_http.post(f"{PLAYGROUND}/answer", json=body)
    assert no_header.status_code == 403
    member = get_user_model().objects.create_user("member", password="s3cret-pass")
    with _session_client(live_server_url, member) as member_http:
        refused = member_http.post(f"{PLAYGROUND}/answer", json=body, headers=PAGE_HEADERS)
        assert refused.status_code == 403
        assert refused.json()["message"] == "The playground is for staff members."
    page = http.get(f"/chat/playground/{bot.id}", follow_redirects=False)
    assert page.status_code == 302 and "/admin/login/" in page.headers["location"]


def test_staff_members_do_not_share_playground_chats(live_server_url, staff_http, bot):
    staff_http.post(
        f"{PLAYGROUND}/answer", json={"botId": bot.id, "question": "mine"}, headers=PAGE_HEADERS
    )
    colleague = get_user_model().objects.create_superuser("colleague", password="s3cret-pass")
    with _session_client(live_server_url, colleague) as colleague_http:
        opened = colleague_http.post(
            f"{PLAYGROUND}/open", json={"botId": bot.id}, headers=PAGE_HEADERS
        )
        assert opened.json()["chats"] == []


def test_the_bot_admin_page_links_to_its_playground(staff_http, bot):
    change = staff_http.get(f"/admin/bots/bot/{bot.id}/change/", headers={"Accept-Language": "en"})
    assert f'href="/chat/playground/{bot.id}"' in change.text
    page = staff_http.get(f"/chat/playground/{bot.id}")
    assert page.status_code == 200
    assert "unsafe-inline" not in page.headers["content-security-policy"]


def test_share_link_admin_creates_lists_usage_and_disables(staff_http, bot, link):
    add = staff_http.get("/admin/shares/sharelink/", headers={"Accept-Language": "zh-hans"})
    assert "新增 分享链接" in add.text
    ShareLink.objects.filter(pk=link.pk).update(questions_count=3, tokens_used=42)
    listing = staff_http.get("/admin/shares/sharelink/", headers={"Accept-Language": "en"})
    assert f"/chat/share?shareId={link.share_id}" in listing.text
    assert ">42<" in listing.text
    csrf = staff_http.get("/admin/shares/sharelink/").cookies.get("csrftoken") or ""
    staff_http.cookies.set("csrftoken", csrf)
    disabled = staff_http.post(
        "/admin/shares/sharelink/",
        data={
            "action": "disable_links",
            "_selected_action": [link.pk],
            "csrfmiddlewaretoken": csrf,
        },
        headers={"Referer": f"{staff_http.base_url}/admin/shares/sharelink/"},
    )
    assert disabled.status_code == 302, disabled.text[:500]
    link.refresh_from_db()
    assert link.enabled is False


def test_share_conversations_are_filterable_by_link_and_open_their_history(
    staff_http, make_link, visit
):
    first, second = make_link(name="first"), make_link(name="second")
    chat_one = visit(first).ask("on the first link")["chat_id"]
    visit(second).ask("on the second link")
    listing = staff_http.get(
        f"/admin/shares/shareconversation/?share_link__id__exact={first.pk}",
        headers={"Accept-Language": "en"},
    )
    assert "on the first link" in listing.text
    assert "on the second link" not in listing.text
    conversation = Conversation.objects.get(external_chat_id=chat_one)
    assert f"/admin/chat/conversation/{conversation.pk}/change/" in listing.text
