"""Shared helpers of the contract tests: the error shapes of the two API families, SSE parsing,
workflow definitions and factories, and one live-server client for the whole run.

Workflow LLM nodes here talk to a fake upstream of their own (`workflow_upstream`): the
project-wide `_live_server_history_settled` fixture waits for one chat message per call to the
shared `fake_upstream`, and a workflow's LLM call writes a run, not a chat message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from aiflowy.testing.fake_upstream import FakeUpstream
from bots.models import Bot, LlmProvider
from tests.conftest import wait_until
from workflows.definitions import workflow_create
from workflows.models import Workflow, WorkflowRun

# The apps whose tables the contract tests fill. Marking a test module with
# `pytest.mark.django_db(transaction=True, available_apps=APPS)` makes the flush after each test
# empty only these tables, without re-running post_migrate (which costs ~40 ms a test).
APPS = ["bots", "apikeys", "chat", "workflows"]

AIFLOWY_ERROR_KEYS = {"errorCode", "message", "param"}
OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    429: "rate_limit_error",
}


# --- clients -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def _live_client(live_server_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server_url, timeout=30) as client:
        yield client


@pytest.fixture
def http(_live_client, transactional_db) -> httpx.Client:
    """The project's `http` fixture with one client for the whole run: building an
    `httpx.Client` costs ~50 ms (its TLS context), more than most contract cells."""
    return _live_client


# --- error shapes -------------------------------------------------------------------------------
def assert_aiflowy_error(body: Any, status: int, *, extra: frozenset[str] = frozenset()) -> None:
    """`{"errorCode": <status>, "message": str}` (+ `param`), nothing else; `extra` names the
    keys a particular frame adds (`status`/`created` of an ERROR frame, `requestId`...)."""
    assert isinstance(body, dict), body
    assert set(body) <= AIFLOWY_ERROR_KEYS | extra, body
    assert {"errorCode", "message"} <= set(body), body
    assert body["errorCode"] == status, body
    assert isinstance(body["message"], str) and body["message"], body
    if "param" in body:
        assert isinstance(body["param"], str) and body["param"], body


def openai_error_type(status: int) -> str:
    return "api_error" if status >= 500 else OPENAI_ERROR_TYPES[status]


def assert_openai_error(body: Any, status: int) -> None:
    """`{"error": {"message", "type", "param", "code"}}`, `type` derived from the status."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, body
    assert isinstance(error["message"], str) and error["message"], body
    assert error["type"] == openai_error_type(status), body
    assert error["param"] is None or isinstance(error["param"], str), body
    assert isinstance(error["code"], str) and error["code"], body


# --- SSE ----------------------------------------------------------------------------------------


def user(text: str) -> dict:
    return {"role": "user", "content": text}


# --- workflows ----------------------------------------------------------------------------------
def echo_definition() -> dict:
    """start (one optional text input) → end: runs without any upstream."""
    return {
        "nodes": [
            {
                "id": "start",
                "type": "startNode",
                "data": {"parameters": [{"name": "text", "dataType": "String"}]},
            },
            {
                "id": "end",
                "type": "endNode",
                "data": {"outputDefs": [{"name": "echo", "refType": "ref", "ref": "start.text"}]},
            },
        ],
        "edges": [{"id": "e1", "source": "start", "target": "end"}],
    }


@pytest.fixture(scope="session")
def workflow_upstream() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream().start_in_thread()
    yield upstream
    upstream.stop()


@pytest.fixture
def make_workflow_bot(workflow_upstream, transactional_db) -> Callable[..., Bot]:
    """Bots on `workflow_upstream`, for workflow LLM nodes (`model` picks its behaviour)."""
    provider = LlmProvider.objects.create(
        name="workflow fake",
        kind=LlmProvider.Kind.OPENAI,
        base_url=workflow_upstream.base_url,
        api_key="sk-provider-secret",
        default_model="fake-model",
        timeout_seconds=2,
    )
    counter = iter(range(1, 10_000))

    def make(**fields) -> Bot:
        fields.setdefault("name", f"workflow-bot-{next(counter)}")
        return Bot.objects.create(provider=provider, **fields)

    return make


@pytest.fixture
def make_workflow(transactional_db) -> Callable[..., Workflow]:
    counter = iter(range(1, 10_000))

    def make(definition: dict, **fields) -> Workflow:
        fields.setdefault("title", f"contract-workflow-{next(counter)}")
        return workflow_create(definition=definition, **fields)

    return make


@pytest.fixture(autouse=True)
def _workflow_runs_settle(request) -> Iterator[None]:
    """A test that touched the database ends only when no run is still queued or running, so
    no server writes a run while the tables are being emptied."""
    if "transactional_db" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("transactional_db")  # so the database outlives this teardown
    yield
    wait_until(
        lambda: not WorkflowRun.objects.exclude(status__in=WorkflowRun.FINISHED).exists(),
        timeout=30,
    )
