"""API keys never reach a log line: under uvicorn with its access log on, a key sent in the
query string, as a Bearer header or as a WebSocket subprotocol shows nowhere in the server's
output, and a browser-style subprotocol handshake works without putting the key in the URL."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest
from websockets.sync.client import connect

from aiflowy.logredact import redact
from aiflowy.testing.servers import free_port, start_process, stop_process, wait_for_port
from tests.conftest import ROOT, _database_url

LOG = ROOT / ".pytest_cache" / "uvicorn-secrets.log"


@pytest.fixture
def uvicorn_logging_everything(django_db_blocker):
    with django_db_blocker.unblock():
        database_url = _database_url()
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "DEBUG",
    }
    process = start_process(
        [
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "debug",
            "config.asgi:application",
        ],
        env=env,
        log_path=LOG,
    )
    wait_for_port(process, port, what="uvicorn")
    yield f"127.0.0.1:{port}"
    stop_process(process)


def ask(socket) -> list[dict]:
    frames = []
    socket.send(
        json.dumps({"botId": socket.bot_id, "messages": [{"role": "user", "content": "hi"}]})
    )
    while not frames or frames[-1]["status"] not in ("END", "ERROR"):
        frames.append(json.loads(socket.recv(timeout=10)))
    return frames


def test_keys_in_queries_headers_and_subprotocols_are_masked_in_the_log(
    uvicorn_logging_everything, transactional_db, bot, api_key
):
    base = uvicorn_logging_everything
    with connect(f"ws://{base}/ws/v1/aiBot/chat?api_key={api_key}") as socket:
        socket.bot_id = bot.id
        assert ask(socket)[-1]["status"] == "END"
    with connect(
        f"ws://{base}/ws/v1/aiBot/chat", subprotocols=["aiflowy", f"apikey.{api_key}"]
    ) as socket:
        assert socket.subprotocol == "aiflowy"
        socket.bot_id = bot.id
        assert ask(socket)[-1]["status"] == "END"
    with httpx.Client(base_url=f"http://{base}", timeout=30) as client:
        client.get(f"/v1/models?api_key={api_key}", headers={"Authorization": f"Bearer {api_key}"})
        client.get("/v1/models", headers={"Authorization": "Bearer af-not-a-real-key-at-all"})
    time.sleep(0.3)  # let the server flush its log
    log = LOG.read_text()
    assert "WebSocket /ws/v1/aiBot/chat?api_key=***" in log, log
    assert '"GET /v1/models?api_key=*** HTTP/1.1" 200' in log, log
    assert "Traceback" not in log
    assert api_key not in log
    assert api_key[3:20] not in log
    assert "af-not-a-real-key-at-all" not in log


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ('"GET /ws?api_key=af-abc123def456&x=1"', '"GET /ws?api_key=***&x=1"'),
        ("Authorization: Bearer sk-live-123", "Authorization: Bearer ***"),
        ("key af-0123456789abcdef leaked", "key af-*** leaked"),
        ("offered apikey.af-xyzxyzxyz", "offered apikey.***"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_redact_masks_every_form_a_key_takes(line, masked):
    assert redact(line) == masked
