"""The share page's API answers exactly as the OpenAPI document says: the fuzz test has no
visitor cookie (so it meets the refusals), this walks a visitor through open, answer (its
`chat`/`delta`/`end` events) and messages on the live server, checking each answer with
schemathesis against the served document."""

from __future__ import annotations

import pytest
import schemathesis

from config.openapi import schema

pytestmark = pytest.mark.django_db(transaction=True)

DOCUMENT = schemathesis.openapi.from_dict(schema())


def conforms(path: str, response) -> None:
    """Raises (naming the mismatch) unless the answer is documented for `path`."""
    DOCUMENT[path]["POST"].validate_response(response)


def test_a_visitors_answers_are_as_documented(visit, make_link):
    visitor = visit(make_link(show_detail=True, show_quotes=True))
    opened = visitor.open()
    assert opened.status_code == 200, opened.text
    conforms("/api/chat-page/share/open", opened)

    answered = visitor.ask_raw("hello")
    assert answered.status_code == 200, answered.text
    conforms("/api/chat-page/share/answer", answered)
    chat_id = visitor.ask("and again")["chat_id"]

    shown = visitor.messages(chat_id)
    assert [m["role"] for m in shown.json()["messages"]] == ["user", "assistant"]
    conforms("/api/chat-page/share/messages", shown)

    refused = visitor.ask_raw("")
    assert refused.status_code == 400
    conforms("/api/chat-page/share/answer", refused)
    unknown = visitor.messages("no-such-chat")
    assert unknown.status_code == 404
    conforms("/api/chat-page/share/messages", unknown)
