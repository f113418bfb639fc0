"""Workflow fixtures: a second Daphne that lets `httpNode` call loopback addresses, a loopback
HTTP service for it to call, a job worker process (PostgreSQL mode), and factories.

Background runs are jobs in the test database's own queue table, so a worker of another test
run never takes them.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from aiflowy.testing.servers import start_daphne, stop_process
from bots.models import Bot
from tests.conftest import ROOT, _database_url, sse_parsed
from workflows.definitions import workflow_create
from workflows.models import Workflow, WorkflowRun

DATA = Path(__file__).resolve().parent / "data"


def _server_env(database_url: str, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": database_url,
        **overrides,
    }


@pytest.fixture(scope="session")
def private_server_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    """Daphne with AIFLOWY_WORKFLOW_HTTP_ALLOW_PRIVATE on (the default server refuses)."""
    with django_db_blocker.unblock():
        database_url = _database_url()
    process, url = start_daphne(
        env=_server_env(database_url, AIFLOWY_WORKFLOW_HTTP_ALLOW_PRIVATE="true"),
        log_path=ROOT / ".pytest_cache" / "daphne-private.log",
    )
    yield url
    stop_process(process)


@pytest.fixture(scope="session")
def workflow_worker(job_worker) -> subprocess.Popen | None:
    """The job worker that runs background workflow runs (PostgreSQL mode)."""
    return job_worker


@pytest.fixture
def private_http(private_server_url, transactional_db) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=private_server_url, timeout=30) as client:
        yield client


# --- a loopback HTTP service for httpNode ---------------------------------------------------
class LoopbackService:
    """`GET /ip/<address>` answers JSON about the address (the reference ipAddress example);
    `POST /echo` answers the request back as JSON; `/status/<code>` answers that status;
    `/text` answers plain text. Every request is kept in `requests`."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                service.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": raw.decode("utf-8", "replace"),
                    }
                )
                if path.startswith("/ip/"):
                    address = path.removeprefix("/ip/")
                    data = {"ip": address, "country": "中国", "region": "福建", "city": "厦门"}
                    self._answer(200, json.dumps(data).encode(), "application/json")
                elif path == "/echo":
                    data = {
                        "method": self.command,
                        "contentType": self.headers.get("Content-Type"),
                        "body": raw.decode("utf-8", "replace"),
                    }
                    self._answer(200, json.dumps(data).encode(), "application/json")
                elif path.startswith("/status/"):
                    code = int(path.removeprefix("/status/"))
                    self._answer(code, b"service says no", "text/plain")
                else:
                    self._answer(200, b"plain text", "text/plain; charset=utf-8")

            do_GET = do_POST = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def loopback_service() -> Iterator[LoopbackService]:
    service = LoopbackService()
    service.thread.start()
    yield service
    service.server.shutdown()
    service.server.server_close()


@pytest.fixture(autouse=True)
def _background_runs_settle(request) -> Iterator[None]:
    """Live-server tests end only when no run is still queued or running, so the server never
    writes while the test database is being emptied."""
    live = "transactional_db" in request.fixturenames
    if live:
        request.getfixturevalue("transactional_db")  # so the database outlives this teardown
    yield
    if live:
        from tests.conftest import wait_until

        wait_until(
            lambda: not WorkflowRun.objects.exclude(status__in=WorkflowRun.FINISHED).exists(),
            timeout=30,
        )


# --- factories ------------------------------------------------------------------------------
@pytest.fixture
def make_workflow(transactional_db) -> Callable[..., Workflow]:
    counter = iter(range(1, 10_000))

    def make(definition: dict, **fields) -> Workflow:
        fields.setdefault("title", f"workflow-{next(counter)}")
        return workflow_create(definition=definition, **fields)

    return make


@pytest.fixture
def llm_bot(make_bot) -> Bot:
    """A bot on the fake upstream (answers `Echo: <last user message>`)."""
    return make_bot(name="writer", system_prompt="")


def data_file(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def finished_run(**filters) -> WorkflowRun:
    """The recorded run, once written (runs are written just after the response)."""
    from tests.conftest import wait_until

    return wait_until(
        lambda: WorkflowRun.objects.filter(status__in=WorkflowRun.FINISHED, **filters).first()
    )


def sse_events(text: str) -> list[tuple[str, dict]]:
    """(event name, data) for each event of a streamed run (every event is named)."""
    return [(name or "message", data) for name, data in sse_parsed(text)]
