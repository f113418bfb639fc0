"""Share-link fixtures: a live server with short hook timeouts, the recording fake auth
server, share links, and `Visitor`, a browser-like client of the chat page's endpoints (it
keeps the page's visitor cookie)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from aiflowy.testing.fake_share_auth import FakeShareAuth
from aiflowy.testing.servers import start_daphne, stop_process
from shares.models import ShareLink
from tests.conftest import ROOT, _database_url, sse_parsed

# The live server's hook settings: init/start give up after 1 s, finish retries fast.
HOOK_TIMEOUT_SECONDS = 1.0
FINISH_ATTEMPTS = 3


@pytest.fixture(scope="session")
def live_server_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    """Daphne serving the project against the test database, with short hook timeouts (the
    suite's own `live_server_url`, overridden for this directory)."""
    with django_db_blocker.unblock():
        database_url = _database_url()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": database_url,
        "AIFLOWY_SHARE_AUTH_TIMEOUT_SECONDS": str(HOOK_TIMEOUT_SECONDS),
        "AIFLOWY_SHARE_FINISH_TIMEOUT_SECONDS": "5",
        "AIFLOWY_SHARE_FINISH_ATTEMPTS": str(FINISH_ATTEMPTS),
        "AIFLOWY_SHARE_FINISH_RETRY_SECONDS": "0.1",
        "AIFLOWY_SHARE_MAX_QUESTION_CHARS": "2000",
    }
    process, url = start_daphne(env=env, log_path=ROOT / ".pytest_cache" / "daphne-shares.log")
    yield url
    stop_process(process)


@pytest.fixture(scope="session")
def share_auth_server() -> Iterator[FakeShareAuth]:
    server = FakeShareAuth(slow_seconds=3.0).start()
    yield server
    server.stop()


@pytest.fixture
def share_auth(share_auth_server) -> FakeShareAuth:
    share_auth_server.clear()
    return share_auth_server


@pytest.fixture
def make_link(bot) -> Callable[..., ShareLink]:
    def make(**fields: Any) -> ShareLink:
        fields.setdefault("bot", bot)
        fields.setdefault("name", "public help")
        return ShareLink.objects.create(**fields)

    return make


@pytest.fixture
def link(make_link) -> ShareLink:
    return make_link()


@pytest.fixture
def auth_link(make_link, share_auth) -> ShareLink:
    """A link whose auth server is the loopback fake (a private host, allowed on purpose)."""
    return make_link(name="with auth", auth_host=share_auth.base_url, auth_allow_private_host=True)


class Visitor:
    """One browser using a share link: it opened the page (and keeps its cookie)."""

    def __init__(self, base_url: str, share_id: str, auth_token: str = "") -> None:
        self.client = httpx.Client(base_url=base_url, timeout=30, headers={"Accept-Language": "en"})
        self.share_id = share_id
        self.auth_token = auth_token
        self.page = self.client.get(
            "/chat/share", params={"shareId": share_id, "authToken": auth_token}
        )

    def _body(self, **fields: Any) -> dict:
        return {"shareId": self.share_id, "authToken": self.auth_token, **fields}

    def open(self) -> httpx.Response:
        return self.client.post("/api/chat-page/share/open", json=self._body())

    def messages(self, chat_id: str) -> httpx.Response:
        return self.client.post("/api/chat-page/share/messages", json=self._body(chatId=chat_id))

    def ask_raw(self, question: Any, chat_id: str = "") -> httpx.Response:
        return self.client.post(
            "/api/chat-page/share/answer", json=self._body(chatId=chat_id, question=question)
        )

    def ask(self, question: str, chat_id: str = "") -> dict:
        """A successful answer: its chat id, its text, and its final `end` event."""
        response = self.ask_raw(question, chat_id)
        assert response.status_code == 200, response.text
        events = sse_parsed(response.text)
        names = [name for name, _ in events]
        assert names[0] == "chat" and names[-1] == "end", names
        return {
            "chat_id": events[0][1]["chatId"],
            "text": "".join(data["text"] for name, data in events if name == "delta"),
            "end": events[-1][1],
            "events": events,
        }

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def visit(live_server_url, transactional_db) -> Iterator[Callable[..., Visitor]]:
    visitors: list[Visitor] = []

    def make(link: ShareLink, auth_token: str = "") -> Visitor:
        visitor = Visitor(live_server_url, link.share_id, auth_token)
        visitors.append(visitor)
        return visitor

    yield make
    for visitor in visitors:
        visitor.close()


@pytest.fixture(autouse=True, scope="session")
def _finish_hooks_sent(job_worker) -> None:
    """shareAuth/finish is a durable job: on PostgreSQL a worker must be running to send it."""
