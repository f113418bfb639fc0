"""What an operator watches: /healthz, /readyz, /metrics (behind a token), request ids
returned, logged (JSON logs) and stored with the exchange.

A Daphne of this module serves the test database with a metrics token and JSON logs on; one
more serves a database and a Redis that are not there, to see /readyz say why.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

import httpx
import pytest
from django.conf import settings

from aiflowy.testing.servers import free_port, start_daphne, stop_process
from chat.models import Message
from tests.conftest import ROOT, _database_url, wait_until

METRICS_TOKEN = "metrics-token-for-tests"
LOG = ROOT / ".pytest_cache" / "daphne-operations.log"
COMPLETIONS = "/v1/chat/completions"


@pytest.fixture(scope="module")
def ops_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    with django_db_blocker.unblock():
        database_url = _database_url()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": database_url,
        "AIFLOWY_METRICS_TOKEN": METRICS_TOKEN,
        "AIFLOWY_LOG_JSON": "true",
    }
    process, url = start_daphne(env=env, log_path=LOG)
    yield url
    stop_process(process)


@pytest.fixture
def ops(ops_url, transactional_db) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ops_url, timeout=30) as client:
        yield client


def _scrape(ops: httpx.Client) -> str:
    response = ops.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_healthz_says_alive_and_readyz_checks_what_is_configured(ops):
    alive = ops.get("/healthz")
    assert alive.status_code == 200
    assert alive.json() == {"status": "alive"}
    assert alive.headers["x-request-id"]

    ready = ops.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    expected = {"database": "ok"}
    if settings.REDIS_URL:
        expected["redis"] = "ok"
    if settings.AIFLOWY_JOBS_BACKEND == "procrastinate":
        expected["queue"] = "ok"
        assert body["queueDepth"] >= 0
    assert body["checks"] == expected


def test_readyz_is_503_with_a_reason_when_the_database_and_redis_are_away(tmp_path):
    closed_port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": f"sqlite:///{tmp_path}/missing/dir/db.sqlite3",
        "REDIS_URL": f"redis://127.0.0.1:{closed_port}/0",
        "AIFLOWY_JOBS_BACKEND": "inprocess",
    }
    process, url = start_daphne(env=env, log_path=ROOT / ".pytest_cache" / "daphne-unready.log")
    try:
        assert httpx.get(f"{url}/healthz").status_code == 200
        response = httpx.get(f"{url}/readyz", timeout=10)
    finally:
        stop_process(process)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"].startswith("unreachable: OperationalError")
    assert body["checks"]["redis"].startswith("unreachable: ConnectionError")


def test_metrics_need_the_token_and_count_requests_tokens_and_upstream_errors(
    ops, api_key, bot, make_bot
):
    assert ops.get("/metrics").status_code == 401
    assert ops.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    before = _scrape(ops)
    failing = make_bot(name="failing", model="fail500")
    headers = {"Authorization": f"Bearer {api_key}"}
    for stream in (False, True):
        answer = ops.post(
            COMPLETIONS,
            headers=headers,
            json={
                "model": bot.name,
                "stream": stream,
                "messages": [{"role": "user", "content": "a b"}],
            },
        )
        assert answer.status_code == 200
    refused = ops.post(
        COMPLETIONS,
        headers=headers,
        json={"model": failing.name, "messages": [{"role": "user", "content": "x"}]},
    )
    assert refused.status_code == 502
    after = _scrape(ops)

    def grew(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    endpoint = "ChatCompletionsConsumer"
    assert grew("aiflowy_requests_total", endpoint=endpoint, status="200") == 2
    assert grew("aiflowy_requests_total", endpoint=endpoint, status="502") == 1
    assert grew("aiflowy_added_latency_seconds_count", endpoint=endpoint) == 3
    key_id = str(Message.objects.filter(role="assistant").first().conversation.api_key_id)
    bot_id = str(bot.id)
    assert grew("aiflowy_tokens_total", bot=bot_id, key=key_id, direction="out") > 0
    assert grew("aiflowy_tokens_total", bot=bot_id, key=key_id, direction="in") > 0
    # JSON answers count too: their first token comes with the whole answer.
    assert grew("aiflowy_time_to_first_token_seconds_count", bot=bot_id) == 2
    provider = str(failing.provider_id)
    assert grew("aiflowy_upstream_errors_total", provider=provider, kind="http_500") == 1
    assert _sample(after, "aiflowy_open_streams") == 0


def test_the_request_id_is_returned_logged_and_stored_with_the_exchange(
    ops, api_key, bot, make_bot
):
    headers = {"Authorization": f"Bearer {api_key}", "X-Request-Id": "lb-4f2a-0001"}
    answer = ops.post(
        COMPLETIONS,
        headers=headers,
        json={"model": bot.name, "messages": [{"role": "user", "content": "traced"}]},
    )
    assert answer.headers["x-request-id"] == "lb-4f2a-0001"
    stored = wait_until(lambda: Message.objects.filter(content="Echo: traced").first())
    assert stored.request_id == "lb-4f2a-0001"

    # An id that is not a sane token is replaced by a new one.
    unsafe = ops.post(
        COMPLETIONS,
        headers={**headers, "X-Request-Id": "bad id\twith spaces"},
        json={"model": bot.name, "messages": [{"role": "user", "content": "other"}]},
    )
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["x-request-id"])

    failing = make_bot(name="failing-logged", model="fail500")
    failed = ops.post(
        COMPLETIONS,
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": failing.name, "messages": [{"role": "user", "content": "x"}]},
    )
    request_id = failed.headers["x-request-id"]

    def logged() -> list[dict]:
        entries = [
            json.loads(line) for line in LOG.read_text().splitlines() if line.startswith("{")
        ]
        return [e for e in entries if e["request_id"] == request_id]

    entries = wait_until(logged)
    assert any(
        e["level"] == "WARNING" and "Upstream LLM failure" in e["message"] for e in entries
    ), entries
