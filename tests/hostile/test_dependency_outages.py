"""PostgreSQL and Redis going away while the server runs (through a TCP proxy that drops its
connections and then accepts without answering, the worst case): requests that need the
database get a clear 503 with Retry-After in their family's shape, promptly instead of after
the drivers' 30 s defaults; rate-limited keys keep working while Redis is away (counted
in-process); and when the dependency returns, the same process serves again, no restart."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from django.db import connection
from websockets.sync.client import connect

from aiflowy.testing.servers import free_port, start_process, stop_process, wait_for_port
from aiflowy.testing.tcp_proxy import TcpProxy
from chat.models import Message
from tests.conftest import ROOT, _database_url, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

# A hang guard, not a speed target: the settings give up after 2 s per attempt.
PROMPT_SECONDS = 10


def via(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@pytest.fixture
def outage_server(django_db_blocker) -> Iterator[tuple[str, TcpProxy, TcpProxy | None]]:
    if connection.vendor != "postgresql":
        pytest.skip("the outage test needs PostgreSQL (SQLite is a file, it cannot go away)")
    with django_db_blocker.unblock():
        database_url = _database_url()
    database = TcpProxy(urlsplit(database_url).port or 5432).start()
    redis_url = os.environ.get("REDIS_URL", "")
    redis = TcpProxy(urlsplit(redis_url).port or 6379).start() if redis_url else None
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": via(database_url, database.port),
        "REDIS_URL": via(redis_url, redis.port) if redis else "",
    }
    port = free_port()
    process = start_process(
        ["-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "config.asgi:application"],
        env=env,
        log_path=ROOT / ".pytest_cache" / "uvicorn-outage.log",
    )
    wait_for_port(process, port, what="uvicorn")
    yield f"http://127.0.0.1:{port}", database, redis
    stop_process(process)
    database.stop()
    if redis:
        redis.stop()


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_postgresql_down_is_a_prompt_503_in_each_shape_and_recovers_without_restart(
    outage_server, bot, make_key
):
    base, database, _ = outage_server
    key = make_key()
    auth = {"Authorization": f"Bearer {key}"}
    chat = {"botId": bot.id, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=base, timeout=60) as client:
        assert client.get("/v1/models", headers=auth).status_code == 200
        database.outage()

        models, seconds = timed(lambda: client.get("/v1/models", headers=auth))
        assert models.status_code == 503, models.text
        assert models.json()["error"]["code"] == "service_unavailable"
        assert models.headers["retry-after"] == "2"
        assert seconds < PROMPT_SECONDS

        answer, seconds = timed(
            lambda: client.post("/api/v1/aiBot/externalChat", headers=auth, json=chat)
        )
        assert answer.status_code == 503, answer.text
        assert answer.json()["errorCode"] == 503
        assert seconds < PROMPT_SECONDS

        history, seconds = timed(
            lambda: client.get("/api/v1/chat/histories", headers=auth, params={"botId": bot.id})
        )
        assert history.status_code == 503, history.text
        assert history.json()["errorCode"] == 503
        assert seconds < PROMPT_SECONDS

        database.recover()
        wait_until(lambda: client.get("/v1/models", headers=auth).status_code == 200, timeout=30)
        answer = client.post("/api/v1/aiBot/externalChat", headers=auth, json=chat)
        assert answer.status_code == 200, answer.text
    # Nothing half-written: the refused chat left no trace, the accepted one is whole.
    stored = wait_until(
        lambda: (
            list(Message.objects.filter(conversation__bot=bot).values_list("role", "status"))
            if Message.objects.filter(conversation__bot=bot, role="assistant").exists()
            else None
        )
    )
    assert stored == [("user", "complete"), ("assistant", "complete")]
    log = (ROOT / ".pytest_cache" / "uvicorn-outage.log").read_text()
    assert "Traceback" not in log


def test_redis_down_keeps_rate_limited_keys_working(outage_server, bot, make_key):
    base, _, redis = outage_server
    if redis is None:
        pytest.skip("needs REDIS_URL")
    key = make_key(rate_limit_per_minute=1000)
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, timeout=60) as client:
        assert client.get("/v1/models", headers=auth).status_code == 200
        redis.outage()
        for _ in range(5):
            response, seconds = timed(lambda: client.get("/v1/models", headers=auth))
            assert response.status_code == 200, response.text
            assert seconds < PROMPT_SECONDS
        # A WebSocket handshake and a request frame of that key work too.
        ws_url = base.replace("http://", "ws://") + "/ws/v1/aiBot/chat"
        with connect(ws_url, subprotocols=["aiflowy", f"apikey.{key}"]) as socket:
            socket.send(
                json.dumps({"botId": bot.id, "messages": [{"role": "user", "content": "hi"}]})
            )
            frames = [json.loads(socket.recv(timeout=10))]
            while frames[-1]["status"] not in ("END", "ERROR"):
                frames.append(json.loads(socket.recv(timeout=10)))
            assert frames[-1]["status"] == "END", frames
        redis.recover()
        time.sleep(2.5)  # the limiter retries Redis after REDIS_RETRY_SECONDS
        assert client.get("/v1/models", headers=auth).status_code == 200
    log = (ROOT / ".pytest_cache" / "uvicorn-outage.log").read_text()
    assert "cannot reach Redis" in log
