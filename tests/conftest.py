"""Shared fixtures: a real Daphne serving the project's ASGI app on a loopback port, the
project's fake OpenAI-compatible upstream, and data factories.

Live-server tests use `transactional_db`: rows are committed so the server process sees them,
and tables are emptied after each test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from channels.layers import channel_layers
from django.conf import settings
from django.db import connection

from aiflowy.testing.fake_upstream import FakeUpstream
from aiflowy.testing.servers import start_daphne, start_process, stop_process
from apikeys.services import api_key_create
from bots.models import Bot, LlmProvider
from chat.models import Message

ROOT = Path(__file__).resolve().parent.parent


def _database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = settings.get("USER") or "postgres"
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream().start_in_thread()
    yield upstream
    upstream.stop()


def serve_test_database(django_db_blocker, *, log_name: str) -> Iterator[str]:
    """Daphne serving config.asgi:application against the test database, for as long as the
    generator is suspended (a fixture body); its log goes to `.pytest_cache/<log_name>`."""
    with django_db_blocker.unblock():
        database_url = _database_url()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": database_url,
        "AIFLOWY_SSE_PING_SECONDS": os.environ.get("AIFLOWY_SSE_PING_SECONDS", "10"),
    }
    process, url = start_daphne(env=env, log_path=ROOT / ".pytest_cache" / log_name)
    yield url
    stop_process(process)


@pytest.fixture(scope="session")
def live_server_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    """Daphne serving config.asgi:application against the test database."""
    yield from serve_test_database(django_db_blocker, log_name="daphne.log")


@pytest.fixture(scope="session")
def job_worker(django_db_setup, django_db_blocker) -> Iterator[subprocess.Popen | None]:
    """`manage.py runjobs` on the test database when jobs are durable (PostgreSQL); nothing
    in the embedded mode, where the process that queues a job runs it. Jobs are rows of the
    test database's own queue table, so a worker of another test run never takes them."""
    if settings.AIFLOWY_JOBS_BACKEND != "procrastinate":
        yield None
        return
    with django_db_blocker.unblock():
        database_url = _database_url()
    process = start_process(
        ["manage.py", "runjobs"],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.test_settings",
            "DATABASE_URL": database_url,
        },
        log_path=ROOT / ".pytest_cache" / "job-worker.log",
    )
    yield process
    alive = process.poll() is None
    stop_process(process)
    assert alive, "the job worker died during the tests; see .pytest_cache/job-worker.log"


@pytest.fixture(autouse=True)
def _fresh_channel_layer() -> Iterator[None]:
    """Each test gets its own channel layer instance: the Redis layer's locks and connections
    belong to the event loop that first used them, and every async test runs a new loop
    ("Lock … is bound to a different event loop" otherwise, depending on test order)."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _live_server_history_settled(request) -> Iterator[None]:
    """A live-server test ends only once the server has stored an answer for every upstream
    call the test caused (each call is recorded exactly once, complete or not). The server
    writes history just after responding; left running, that write races the table flush
    between tests (on PostgreSQL the flush's TRUNCATE can deadlock with it, and rows leak into
    the next test). Never fails a test: after 10 s it stops waiting."""
    if "live_server_url" not in request.fixturenames or request.node.path.is_relative_to(
        ROOT / "tests" / "workflows"
    ):
        # Workflow LLM calls write runs, not chat messages; tests/workflows settles its runs.
        yield
        return
    request.getfixturevalue("transactional_db")  # so this teardown runs before the flush
    upstream = request.getfixturevalue("fake_upstream")
    calls_before = len(upstream.requests)
    yield
    # Chat completions only: embeddings and rerank calls (knowledge bases) store no message.
    expected = sum(1 for body in upstream.requests[calls_before:] if body and "messages" in body)
    deadline = time.monotonic() + 10
    while (
        Message.objects.filter(role="assistant").count() < expected and time.monotonic() < deadline
    ):
        time.sleep(0.02)


@pytest.fixture
def http(live_server_url, transactional_db) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server_url, timeout=30) as client:
        yield client


@pytest.fixture
def provider(fake_upstream, transactional_db) -> LlmProvider:
    return LlmProvider.objects.create(
        name="fake",
        kind=LlmProvider.Kind.OPENAI,
        base_url=fake_upstream.base_url,
        api_key="sk-provider-secret",
        default_model="fake-model",
        timeout_seconds=2,
    )


@pytest.fixture
def make_bot(provider) -> Callable[..., Bot]:
    counter = iter(range(1, 10_000))

    def make(**fields) -> Bot:
        fields.setdefault("name", f"bot-{next(counter)}")
        fields.setdefault("provider", provider)
        return Bot.objects.create(**fields)

    return make


@pytest.fixture
def bot(make_bot) -> Bot:
    return make_bot(name="helper", system_prompt="You are helpful.")


@pytest.fixture
def make_key(transactional_db) -> Callable[..., str]:
    def make(**fields) -> str:
        fields.setdefault("name", "test key")
        _api_key, raw_key = api_key_create(**fields)
        return raw_key

    return make


@pytest.fixture
def api_key(make_key) -> str:
    return make_key()


def wait_until(predicate: Callable[[], object], *, timeout: float = 10.0) -> object:
    """Poll until `predicate()` is truthy (history is written just after a response)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def post_and_hang_up(
    base_url: str, path: str, *, api_key: str, body: dict, marker: bytes, count: int
) -> bytes:
    """POST a streaming request over a raw socket, read until `marker` has arrived `count`
    times, then drop the connection: a client going away mid-stream, as browsers and proxies
    do (an HTTP client library would drain or pool the connection instead)."""
    host, port = base_url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        received = b""
        while received.count(marker) < count:
            chunk = sock.recv(4096)
            assert chunk, "the server closed the stream early"
            received += chunk
    return received


def assert_sse_headers(response) -> None:
    """design.md, "Streams, everywhere": every SSE response is an event stream that proxies must
    neither cache nor buffer."""
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"


# --- reading answers ----------------------------------------------------------------------------
def sse_events(text: str) -> list[tuple[str | None, str]]:
    """(event name or None, data) for each SSE event of a body; comments are skipped."""
    events = []
    for block in text.split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        if data:
            events.append((name, "\n".join(data)))
    return events


def _json_or_text(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data


def sse_parsed(text: str) -> list[tuple[str | None, Any]]:
    """`sse_events` with each data parsed as JSON, or kept as text (`[DONE]`)."""
    return [(name, _json_or_text(data)) for name, data in sse_events(text)]


def sse_json(text: str) -> list[Any]:
    """The data of each event: parsed JSON, or the raw string (`[DONE]`)."""
    return [data for _, data in sse_parsed(text)]


def post_raw(
    http: httpx.Client, url: str, api_key: str, body: Any, content_type: str = "application/json"
) -> httpx.Response:
    """POST `body` as given (bytes, or JSON with ASCII escapes, so that NUL and lone
    surrogates reach the server as the JSON text a hostile caller would send)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode("ascii")
    return http.post(
        url,
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": content_type},
        content=raw,
    )


def aiflowy_bad_request(response: httpx.Response, param: str | None) -> dict:
    """AIFlowy's 400: `{"errorCode": 400, "message", "param"}`, naming `param` (quoted in the
    message too) when a field is at fault."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) <= {"errorCode", "message", "param"}, body
    assert body["errorCode"] == 400
    assert isinstance(body["message"], str) and body["message"]
    assert body.get("param") == param, body
    if param is not None:
        assert f"'{param}'" in body["message"], body
    return body
