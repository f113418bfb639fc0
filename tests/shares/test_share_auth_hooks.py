"""FastGPT's shareAuth hooks against a loopback auth server that records every call: init on
page open, start before each answer (a refusal blocks it), finish after each answer with its
responseData (without delaying it, retried, failures counted), failing closed otherwise."""

from __future__ import annotations

import time

from aiflowy.testing.servers import free_port
from chat.models import Conversation, Message
from shares.models import ShareLink
from tests.conftest import wait_until
from tests.shares.conftest import FINISH_ATTEMPTS


def test_init_is_called_when_the_page_opens(visit, auth_link, share_auth):
    opened = visit(auth_link, auth_token="member-7").open()
    assert opened.status_code == 200, opened.text
    assert share_auth.hooks("init") == [{"token": "member-7"}]


def test_a_refused_token_cannot_open_the_page_and_sees_the_servers_message(
    visit, auth_link, share_auth
):
    refused = visit(auth_link, auth_token="refuse-me").open()
    assert refused.status_code == 403
    assert refused.json() == {
        "code": "share_auth_refused",
        "message": "Your subscription has ended.",
    }


def test_a_refused_token_cannot_chat_and_nothing_reaches_the_model(
    visit, auth_link, share_auth, fake_upstream
):
    calls_before = len(fake_upstream.requests)
    refused = visit(auth_link, auth_token="startrefuse-1").ask_raw("may I?")
    assert refused.status_code == 403
    assert refused.json()["message"] == "Your subscription has ended."
    assert share_auth.hooks("start") == [
        {"token": "startrefuse-1", "question": "may I?", "shareId": auth_link.share_id}
    ]
    assert len(fake_upstream.requests) == calls_before
    assert not Message.objects.filter(content="may I?").exists()
    assert share_auth.hooks("finish") == []


def test_start_is_asked_before_each_answer_and_finish_receives_its_response_data(
    visit, auth_link, share_auth
):
    visitor = visit(auth_link, auth_token="member-8")
    answer = visitor.ask("what is 2+2?")
    assert share_auth.hooks("start") == [
        {"token": "member-8", "question": "what is 2+2?", "shareId": auth_link.share_id}
    ]
    finish = wait_until(lambda: share_auth.hooks("finish"))
    assert len(finish) == 1
    assert finish[0]["token"] == "member-8"
    assert finish[0]["shareId"] == auth_link.share_id
    [module] = finish[0]["responseData"]
    assert module["moduleName"] == "AI Chat"
    assert module["moduleType"] == "chatNode"
    assert module["model"] == "fake-model"
    assert module["query"] == "what is 2+2?"
    assert module["answer"] == "Echo: what is 2+2?"
    assert module["tokens"] == answer["end"]["usage"]["totalTokens"]
    assert module["quoteList"] == []
    assert {"obj": "Human", "value": "what is 2+2?"} in module["historyPreview"]


def test_the_auth_servers_uid_is_the_user_across_tokens(visit, auth_link, share_auth):
    chat_id = visit(auth_link, auth_token="uid-alice.phone").ask("hi")["chat_id"]
    conversation = Conversation.objects.get(external_chat_id=chat_id)
    assert conversation.custom_uid == "uid:alice"
    # Another token for the same uid (another device) sees the chat; another uid does not.
    laptop = visit(auth_link, auth_token="uid-alice.laptop").open().json()
    assert [c["chatId"] for c in laptop["chats"]] == [chat_id]
    assert visit(auth_link, auth_token="uid-bob.phone").open().json()["chats"] == []


def test_garbage_missing_flags_slow_and_unreachable_auth_servers_fail_closed(
    visit, auth_link, make_link, share_auth, fake_upstream
):
    calls_before = len(fake_upstream.requests)
    for token in ("garbage-1", "nosuccess-1", "slow-1"):
        opened = visit(auth_link, auth_token=token).open()
        assert opened.status_code == 503, (token, opened.text)
        assert opened.json() == {
            "code": "share_auth_unavailable",
            "message": "This chat's sign-in service is not answering properly; "
            "please try again later.",
        }
        asked = visit(auth_link, auth_token=token).ask_raw("hello?")
        assert asked.status_code == 503, (token, asked.text)
    assert len(fake_upstream.requests) == calls_before

    closed_port = make_link(
        name="down", auth_host=f"http://127.0.0.1:{free_port()}", auth_allow_private_host=True
    )
    assert visit(closed_port, auth_token="x").open().status_code == 503


def test_a_private_auth_server_is_refused_unless_the_link_allows_it(visit, make_link, share_auth):
    link = make_link(auth_host=share_auth.base_url, auth_allow_private_host=False)
    refused = visit(link, auth_token="member").open()
    assert refused.status_code == 503
    assert share_auth.calls == []  # the SSRF guard refused the loopback address


def test_a_slow_finish_does_not_delay_the_answer(visit, auth_link, share_auth):
    answer = visit(auth_link, auth_token="slowfinish-1").ask("quick?")
    assert answer["text"] == "Echo: quick?"
    # The whole answer arrived while the auth server was still holding the finish call.
    wait_until(lambda: share_auth.hooks("finish"))
    assert share_auth.finished_answering == []
    wait_until(lambda: share_auth.finished_answering, timeout=15)


def test_a_failing_finish_is_retried_then_counted_on_the_link_not_shown(
    visit, auth_link, share_auth
):
    answer = visit(auth_link, auth_token="finishfail-1").ask("bill me")
    assert answer["text"] == "Echo: bill me"
    failed = wait_until(
        lambda: ShareLink.objects.filter(pk=auth_link.pk, finish_hook_failures=1).first(),
        timeout=15,
    )
    assert failed.finish_hook_failures == 1
    assert len(share_auth.hooks("finish")) == FINISH_ATTEMPTS
    time.sleep(0.3)
    assert len(share_auth.hooks("finish")) == FINISH_ATTEMPTS


def test_links_without_an_auth_server_call_no_hook(visit, link, share_auth):
    visitor = visit(link, auth_token="someone")
    visitor.open()
    visitor.ask("no hooks")
    assert share_auth.calls == []
