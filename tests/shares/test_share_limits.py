"""Limits and hostile input on a share link: per-user and per-link question rates, the token
budget, and questions that are too long, not Unicode, or made of HTML and script."""

from __future__ import annotations

from html.parser import HTMLParser

from chat.models import Message
from shares.models import ShareLink


def test_a_user_over_their_rate_gets_a_readable_429_and_others_still_chat(visit, make_link):
    link = make_link(questions_per_minute_per_user=2)
    alice, bob = visit(link), visit(link)
    alice.ask("one")
    alice.ask("two")
    refused = alice.ask_raw("three")
    assert refused.status_code == 429
    assert refused.headers["retry-after"].isdigit()
    body = refused.json()
    assert body["code"] == "rate_limit_exceeded"
    assert body["message"].startswith("You may ask 2 questions per minute. Please wait ")
    assert bob.ask("mine")["text"] == "Echo: mine"


def test_the_whole_link_has_its_own_rate(visit, make_link):
    link = make_link(questions_per_minute=2, questions_per_minute_per_user=0)
    visit(link).ask("one")
    visit(link).ask("two")
    refused = visit(link).ask_raw("three")
    assert refused.status_code == 429
    assert refused.json()["message"].startswith(
        "This chat is receiving too many questions right now."
    )


def test_a_spent_token_budget_stops_the_link(visit, make_link):
    link = make_link(token_budget=5)
    visitor = visit(link)
    visitor.ask("spend it all")
    assert ShareLink.objects.get(pk=link.pk).tokens_used >= 5
    refused = visitor.ask_raw("more please")
    assert refused.status_code == 429
    assert refused.json() == {
        "code": "token_budget_exhausted",
        "message": "This chat has used up its budget; please come back later.",
    }
    ShareLink.objects.filter(pk=link.pk).update(token_budget=0)
    assert visitor.ask("again")["text"] == "Echo: again"


def test_hostile_questions_get_clear_errors(visit, link, fake_upstream):
    visitor = visit(link)
    calls_before = len(fake_upstream.requests)
    cases = [
        ("x" * 2001, "question_too_long"),
        ("", "question_missing"),
        ("   ", "question_missing"),
        (None, "question_missing"),
        (["not", "text"], "question_missing"),
        ("nul \x00 byte", "question_invalid"),
    ]
    for question, code in cases:
        refused = visitor.ask_raw(question)
        assert refused.status_code == 400, (question, refused.text)
        assert refused.json()["code"] == code
        assert refused.json()["message"]
    too_long = visitor.ask_raw("x" * 2001).json()["message"]
    assert too_long == "This question is too long (2001 characters; at most 2000)."
    lone_surrogate = visitor.client.post(
        "/api/chat-page/share/answer",
        content=b'{"shareId": "%s", "question": "\\ud800"}' % link.share_id.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert lone_surrogate.status_code == 400
    assert lone_surrogate.json()["code"] == "question_invalid"
    invalid_utf8 = visitor.client.post(
        "/api/chat-page/share/answer",
        content=b'{"shareId": "%s", "question": "\xff\xfe"}' % link.share_id.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert invalid_utf8.status_code == 400
    assert invalid_utf8.json()["code"] == "invalid_json"
    huge = visitor.client.post(
        "/api/chat-page/share/answer", content=b"{" + b" " * 1_100_000 + b"}"
    )
    assert huge.status_code == 400
    assert huge.json()["code"] == "body_too_large"
    assert len(fake_upstream.requests) == calls_before


def test_html_and_script_in_questions_and_answers_stay_text(visit, link):
    hostile = (
        "<img src=x onerror=alert(1)> <script>alert(2)</script> "
        '[click](javascript:alert(3)) <a href="javascript:alert(4)">a</a>'
    )
    visitor = visit(link)
    answer = visitor.ask(hostile)
    html = answer["end"]["html"]
    assert _tags_and_attributes(html) == [("p", [])]  # one paragraph of text, nothing else
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    stored = visitor.messages(answer["chat_id"]).json()["messages"]
    assert stored[0]["content"] == hostile  # kept as written, shown as text by the page
    assert stored[1]["html"] == html
    assert Message.objects.filter(content=hostile).exists()


def _tags_and_attributes(html: str) -> list[tuple[str, list]]:
    found: list[tuple[str, list]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collector().feed(html)
    return found
