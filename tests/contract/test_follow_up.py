"""Write before final: an answer a caller can act on is already stored, so any process serves
the next request with it.

Two Daphne processes share the test database: server A (the session's `live_server_url`) and
server B (`server_b_url`, this module's). For 20 rounds, a `chatId` turn answered by A is, at
once, the context of the follow-up turn that B answers (the fake upstream records what B sent
it) and listed by B's history API; a workflow run answered by A is at once known to B's
`runStatus`. No waiting and no retry anywhere: the next request goes out as soon as the answer
is read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import serve_test_database, sse_parsed
from tests.contract.conftest import APPS, echo_definition, user

pytestmark = pytest.mark.django_db(transaction=True, available_apps=APPS)

ROUNDS = 20
COMPLETIONS = "/v1/chat/completions"


@pytest.fixture(scope="module")
def server_b_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    """A second Daphne on the same test database."""
    yield from serve_test_database(django_db_blocker, log_name="daphne-contract-b.log")


@pytest.fixture(scope="module")
def _client_b(server_b_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_b_url, timeout=30) as client:
        yield client


@pytest.fixture
def http_b(_client_b, transactional_db) -> httpx.Client:
    return _client_b


def chat_turn(
    client: httpx.Client, api_key: str, bot_name: str, chat_id: str, text: str, *, stream: bool
) -> str:
    """One `chatId` turn; the answer's text, read to its end."""
    response = client.post(
        COMPLETIONS,
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": bot_name, "chatId": chat_id, "stream": stream, "messages": [user(text)]},
    )
    assert response.status_code == 200, response.text[:300]
    if not stream:
        return response.json()["choices"][0]["message"]["content"]
    events = [data for _, data in sse_parsed(response.text)]
    assert events[-1] == "[DONE]"
    return "".join(
        chunk["choices"][0]["delta"].get("content") or ""
        for chunk in events[:-1]
        if chunk["choices"]
    )


def upstream_messages(fake_upstream, last_question: str) -> list[dict]:
    """What the upstream was sent for the turn whose question is `last_question`."""
    [sent] = [
        request["messages"]
        for request in fake_upstream.requests
        if request["messages"] and request["messages"][-1]["content"] == last_question
    ]
    return sent


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_chat_id_answer_from_a_is_context_and_history_on_b_at_once(
    http, http_b, bot, api_key, fake_upstream, stream: bool
):
    tag = uuid.uuid4().hex[:8]
    for round_ in range(ROUNDS):
        chat_id = f"chat-{tag}-{round_}"
        question = f"question {round_} {tag}"
        answer = chat_turn(http, api_key, bot.name, chat_id, question, stream=stream)
        assert answer == f"Echo: {question}"

        listed = http_b.get(
            "/api/v1/chat/histories",
            headers={"Authorization": api_key},
            params={"botId": bot.id, "pageSize": 100},
        )
        assert listed.status_code == 200, listed.text[:300]
        assert chat_id in [chat["chatId"] for chat in listed.json()["list"]], round_

        follow_up = f"and then {round_} {tag}"
        chat_turn(http_b, api_key, bot.name, chat_id, follow_up, stream=stream)
        sent = upstream_messages(fake_upstream, follow_up)
        assert {"role": "user", "content": question} in sent, round_
        assert {"role": "assistant", "content": answer} in sent, round_


def test_a_run_answered_by_a_is_known_to_b_at_once(http, http_b, api_key, make_workflow):
    workflow = make_workflow(echo_definition())
    for round_ in range(ROUNDS):
        text = f"run {round_}"
        ran = http.post(
            "/api/v1/workflow/external/run",
            headers={"Authorization": api_key},
            json={"id": workflow.id, "variables": {"text": text}},
        )
        assert ran.status_code == 200, ran.text[:300]
        run_id = ran.json()["runId"]
        status = http_b.get(
            "/api/v1/workflow/external/runStatus",
            headers={"Authorization": api_key},
            params={"runId": run_id},
        )
        assert status.status_code == 200, (round_, status.text[:300])
        body = status.json()
        assert (body["runId"], body["status"]) == (run_id, "succeeded")
        assert body["result"] == ran.json()["result"] == {"echo": text}
