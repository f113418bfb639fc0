"""SIGTERM to a uvicorn process with 50 open streams and freshly answered requests: the
streams get the grace period, then each ends with its final error event; every exchange is
stored with the right status (the streams' as errors "ended by server shutdown", the
answered ones complete) before the process exits; nothing accepted is lost."""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid

import httpx
import pytest

from aiflowy.testing.servers import free_port, start_process, wait_for_port
from chat.models import Message
from chat.services import SHUTDOWN_ERROR
from tests.conftest import ROOT, _database_url

STREAMS = 50
ANSWERED = 20
GRACE_SECONDS = 2
COMPLETIONS = "/v1/chat/completions"


def _read_stream(url: str, headers: dict, body: dict, out: dict, opened: threading.Event) -> None:
    events: list = []
    out["events"] = events
    try:
        with (
            httpx.Client(timeout=60) as client,
            client.stream("POST", url, headers=headers, json=body) as response,
        ):
            out["status"] = response.status_code
            for line in response.iter_lines():
                if line.startswith("data: "):
                    data = line[6:]
                    events.append(data if data == "[DONE]" else json.loads(data))
                    opened.set()
    except Exception as exc:  # a reset connection: the test's assertions say so
        out["exception"] = repr(exc)
        opened.set()


@pytest.mark.django_db(transaction=True)
def test_sigterm_during_50_open_streams_ends_each_with_a_final_event_and_stores_everything(
    django_db_blocker, make_bot, api_key
):
    slow = make_bot(name="slow-bot", model="slow")
    quick = make_bot(name="quick-bot")
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": _database_url(),
        "AIFLOWY_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
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
            "--timeout-graceful-shutdown",
            "30",
            "config.asgi:application",
        ],
        env=env,
        log_path=ROOT / ".pytest_cache" / "uvicorn-sigterm.log",
    )
    try:
        wait_for_port(process, port, what="uvicorn")
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {api_key}"}
        tag = uuid.uuid4().hex[:8]

        results = [{} for _ in range(STREAMS)]
        opened = [threading.Event() for _ in range(STREAMS)]
        readers = [
            threading.Thread(
                target=_read_stream,
                args=(
                    f"{base}{COMPLETIONS}",
                    headers,
                    {
                        "model": slow.name,
                        "stream": True,
                        "messages": [{"role": "user", "content": f"stream {i} {tag}"}],
                    },
                    results[i],
                    opened[i],
                ),
                daemon=True,
            )
            for i in range(STREAMS)
        ]
        for reader in readers:
            reader.start()
        for event in opened:
            assert event.wait(60), "a stream did not open"

        # Stateless answers are queued for the history writer, not yet written.
        with httpx.Client(base_url=base, timeout=30) as client:
            for i in range(ANSWERED):
                answered = client.post(
                    COMPLETIONS,
                    headers=headers,
                    json={
                        "model": quick.name,
                        "messages": [{"role": "user", "content": f"answered {i} {tag}"}],
                    },
                )
                assert answered.status_code == 200

        process.send_signal(signal.SIGTERM)
        for reader in readers:
            reader.join(60)
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert process.wait(60) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)

    for result in results:
        assert "exception" not in result, result.get("exception")
        assert result["status"] == 200
        events = result["events"]
        assert events[-1] == "[DONE]"
        assert events[-2]["error"]["code"] == "server_shutting_down", events[-2]
        assert any(e.get("choices") for e in events[:-2])  # it had streamed before

    with django_db_blocker.unblock():
        streamed = Message.objects.filter(role="assistant", conversation__title__endswith=f" {tag}")
        stream_answers = streamed.filter(conversation__title__startswith="stream ")
        assert stream_answers.count() == STREAMS
        assert set(stream_answers.values_list("status", flat=True)) == {"error"}
        assert set(stream_answers.values_list("error_text", flat=True)) == {SHUTDOWN_ERROR}
        assert all(m.content for m in stream_answers)  # the partial answers are kept
        quick_answers = streamed.filter(conversation__title__startswith="answered ")
        assert quick_answers.count() == ANSWERED
        assert set(quick_answers.values_list("status", flat=True)) == {"complete"}
