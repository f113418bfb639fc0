"""The production server (uvicorn, docs/deploy.md) serves the same application: JSON, SSE and
WebSocket, with the same key auth and history."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from aiflowy.testing.servers import free_port, start_process, stop_process, wait_for_port
from chat.models import Message
from tests.conftest import ROOT, _database_url, wait_until


@pytest.fixture(scope="module")
def uvicorn_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    with django_db_blocker.unblock():
        database_url = _database_url()
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": database_url,
    }
    process = start_process(
        [
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "config.asgi:application",
        ],
        env=env,
        log_path=ROOT / ".pytest_cache" / "uvicorn.log",
    )
    wait_for_port(process, port, what="uvicorn")
    yield f"127.0.0.1:{port}"
    stop_process(process)


def test_chat_json_sse_and_websocket_work_under_uvicorn(
    uvicorn_url, transactional_db, bot, api_key
):
    body = {"botId": bot.id, "messages": [{"role": "user", "content": "hi there"}]}
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=f"http://{uvicorn_url}", timeout=30) as client:
        answer = client.post("/api/v1/aiBot/externalChat", headers=headers, json=body)
        assert answer.json()["choices"]["message"]["content"] == "Echo: hi there"
        stream = client.post(
            "/api/v1/aiBot/externalChat", headers=headers, json={**body, "stream": True}
        )
        statuses = [
            json.loads(line[6:])["status"]
            for line in stream.text.splitlines()
            if line.startswith("data: ")
        ]
        assert statuses[0] == "START" and statuses[-1] == "END"
    with connect(f"ws://{uvicorn_url}/ws/v1/aiBot/chat?api_key={api_key}") as socket:
        socket.send(json.dumps(body))
        frames = []
        while not frames or frames[-1]["status"] not in ("END", "ERROR"):
            frames.append(json.loads(socket.recv(timeout=10)))
    assert frames[-1]["status"] == "END"
    wait_until(lambda: Message.objects.filter(role="assistant").count() == 3)
