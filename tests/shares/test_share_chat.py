"""The public chat page of a share link, through the live server: opening, asking with a
streamed answer, continuing a chat, history per user, and isolation between users and links."""

from __future__ import annotations

from chat.models import Conversation, Message
from shares.models import ShareConversation, ShareLink
from tests.conftest import sse_parsed


def test_page_is_served_with_a_strict_csp_and_a_visitor_cookie(visit, link):
    page = visit(link).page
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "aiflowy_chat_visitor" in page.cookies
    assert "<script>" not in page.text  # the only script is the page's own file
    script = visit(link).client.get(page.text.split('<script src="')[1].split('"')[0])
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")


def test_page_is_in_the_browsers_language(visit, link, live_server_url):
    visitor = visit(link)
    english = visitor.client.get(
        "/chat/share", params={"shareId": link.share_id}, headers={"Accept-Language": "en"}
    )
    chinese = visitor.client.get(
        "/chat/share", params={"shareId": link.share_id}, headers={"Accept-Language": "zh-CN"}
    )
    assert "New chat" in english.text
    assert "新对话" in chinese.text


def test_open_names_the_bot_and_lists_no_chats_yet(visit, link, bot):
    bot.welcome_message = "Hi, ask me anything."
    bot.save()
    opened = visit(link).open()
    assert opened.status_code == 200, opened.text
    assert opened.json() == {
        "bot": {"name": "helper", "welcome": "Hi, ask me anything."},
        "showDetail": False,
        "showQuotes": False,
        "chats": [],
    }


def test_an_answer_streams_and_is_stored_as_the_links_conversation(visit, link, fake_upstream):
    visitor = visit(link)
    answer = visitor.ask("hello there")
    assert answer["text"] == "Echo: hello there"
    assert len([name for name, _ in answer["events"] if name == "delta"]) > 1  # streamed
    assert answer["end"]["html"] == "<p>Echo: hello there</p>\n"
    assert answer["end"]["usage"]["totalTokens"] > 0
    assert "detail" not in answer["end"]

    conversation = Conversation.objects.get(external_chat_id=answer["chat_id"])
    assert conversation.source == Conversation.Source.SHARE
    assert conversation.api_key is None
    share = ShareConversation.objects.get(conversation=conversation)
    assert share.share_link == link
    assert share.user_key.startswith("visitor:")
    assert [m.content for m in conversation.messages.order_by("created_at", "id")] == [
        "hello there",
        "Echo: hello there",
    ]
    link.refresh_from_db()  # counted before the final event
    assert link.questions_count == 1
    assert link.tokens_used == answer["end"]["usage"]["totalTokens"]
    assert link.last_used_at is not None


def test_a_chat_continues_with_its_history_and_is_listed_and_loaded(
    visit, link, bot, fake_upstream
):
    visitor = visit(link)
    first = visitor.ask("first question")
    second = visitor.ask("second question", chat_id=first["chat_id"])
    assert second["chat_id"] == first["chat_id"]
    sent = fake_upstream.requests[-1]["messages"]
    assert [m["content"] for m in sent] == [
        "You are helpful.",
        "first question",
        "Echo: first question",
        "second question",
    ]

    chats = visitor.open().json()["chats"]
    assert [c["chatId"] for c in chats] == [first["chat_id"]]
    assert chats[0]["title"] == "first question"

    loaded = visitor.messages(first["chat_id"]).json()
    assert [(m["role"], m["content"]) for m in loaded["messages"]] == [
        ("user", "first question"),
        ("assistant", "Echo: first question"),
        ("user", "second question"),
        ("assistant", "Echo: second question"),
    ]
    assert loaded["messages"][1]["html"] == "<p>Echo: first question</p>\n"
    assert Message.objects.filter(conversation__external_chat_id=first["chat_id"]).count() == 4


def test_two_visitors_never_see_each_others_chats(visit, link):
    alice, bob = visit(link), visit(link)
    chat_id = alice.ask("alice's secret")["chat_id"]

    assert bob.open().json()["chats"] == []
    refused = bob.messages(chat_id)
    assert refused.status_code == 404
    assert refused.json()["code"] == "chat_not_found"
    hijack = bob.ask_raw("let me in", chat_id=chat_id)
    assert hijack.status_code == 404
    assert Message.objects.filter(content="let me in").count() == 0
    assert [c["chatId"] for c in alice.open().json()["chats"]] == [chat_id]


def test_auth_tokens_are_users_and_a_token_sees_its_chats_from_any_browser(visit, link):
    chat_id = visit(link, auth_token="user-1").ask("from my phone")["chat_id"]
    assert [c["chatId"] for c in visit(link, auth_token="user-1").open().json()["chats"]] == [
        chat_id
    ]
    assert visit(link, auth_token="user-2").open().json()["chats"] == []
    assert visit(link).open().json()["chats"] == []  # an anonymous visitor is another user
    # The token may be a credential of the operator's system: it is not stored.
    conversation = Conversation.objects.get(external_chat_id=chat_id)
    assert conversation.custom_uid.startswith("token:")
    assert "user-1" not in conversation.custom_uid
    assert not ShareConversation.objects.filter(user_key__contains="user-1").exists()


def test_a_share_id_reaches_only_its_own_bot_and_chats(visit, make_link, make_bot, fake_upstream):
    first = make_link(name="one")
    other_bot = make_bot(name="other", system_prompt="You are the other bot.")
    second = make_link(name="two", bot=other_bot)
    chat_id = visit(first, auth_token="same-user").ask("on link one")["chat_id"]

    on_second = visit(second, auth_token="same-user")
    assert on_second.open().json()["bot"]["name"] == "other"
    assert on_second.open().json()["chats"] == []
    assert on_second.messages(chat_id).status_code == 404
    assert on_second.ask_raw("continue", chat_id=chat_id).status_code == 404
    answer = on_second.ask("hello other")
    assert fake_upstream.requests[-1]["messages"][0]["content"] == "You are the other bot."
    assert answer["chat_id"] != chat_id


def test_unknown_disabled_and_expired_links_are_refused_with_a_message(visit, link, make_link):
    from datetime import timedelta

    from django.utils import timezone

    unknown = visit(ShareLink(share_id="no-such-link")).open()
    assert unknown.status_code == 404
    assert unknown.json() == {
        "code": "share_link_not_found",
        "message": "This share link does not exist.",
    }

    visitor = visit(link)
    assert visitor.ask("before")["text"] == "Echo: before"
    ShareLink.objects.filter(pk=link.pk).update(enabled=False)
    disabled = visitor.ask_raw("after")
    assert disabled.status_code == 403
    assert disabled.json()["message"] == "This share link has been disabled."
    assert visitor.open().status_code == 403

    expired = make_link(name="old", expires_at=timezone.now() - timedelta(minutes=1))
    refused = visit(expired).open()
    assert refused.status_code == 403
    assert refused.json()["message"] == "This share link has expired."


def test_messages_are_in_the_browsers_language(visit, make_link):
    link = make_link(enabled=False)
    refused = visit(link).client.post(
        "/api/chat-page/share/open",
        json={"shareId": link.share_id},
        headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"},
    )
    assert refused.status_code == 403
    assert refused.json()["message"] == "此分享链接已停用。"


def test_a_disabled_bot_is_not_served_through_its_links(visit, link, bot):
    bot.enabled = False
    bot.save()
    refused = visit(link).ask_raw("hello")
    assert refused.status_code == 403
    assert refused.json()["code"] == "bot_disabled"


def test_requests_without_share_id_or_cookie_are_refused(http, link):
    missing = http.post("/api/chat-page/share/open", json={})
    assert missing.status_code == 400
    assert missing.json()["message"] == "'shareId' is required."
    # No page opened, so no visitor cookie, and no token: there is no user to answer.
    anonymous = http.post(
        "/api/chat-page/share/answer", json={"shareId": link.share_id, "question": "hi"}
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "visitor_unknown"
    forged = http.post(
        "/api/chat-page/share/open",
        json={"shareId": link.share_id},
        headers={"Cookie": "aiflowy_chat_visitor=forged-value"},
    )
    assert forged.status_code == 401


def test_a_failing_model_ends_the_stream_with_an_error_event_and_is_recorded(
    visit, make_link, make_bot
):
    for model in ("fail500-model", "cut-model"):
        link = make_link(bot=make_bot(model=model))
        response = visit(link).ask_raw("will it fail?")
        assert response.status_code == 200
        events = sse_parsed(response.text)
        assert events[0][0] == "chat"
        name, error = events[-1]
        assert name == "error", events
        assert error["code"] in {"upstream_error", "upstream_timeout"}
        assert error["message"]
        conversation = Conversation.objects.get(external_chat_id=events[0][1]["chatId"])
        answer = conversation.messages.get(role="assistant")
        assert answer.status == Message.Status.ERROR
        link.refresh_from_db()
        assert link.questions_count == 0
