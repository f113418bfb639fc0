"""How every stream ends, in one table: each streaming endpoint × each way an answer can fail.

A stream that fails ends with its family's final event: AIFlowy an event with
`status: "ERROR"`; OpenAI `data: {"error": …}` then `data: [DONE]`; FastGPT `detail` an
`event: error`; a workflow run `event: runFinished` with status `failed`; the WebSocket an ERROR
frame. A failure that comes before the first token of an OpenAI-compatible stream is answered
as plain JSON with its real status instead (`aiflowy.consumers.first_item_within`: SDKs raise
it as their status error). When the client goes away nobody listens, so only the record is
checked. Whatever happens, the answer is stored exactly once: one assistant
`chat.models.Message` (error / interrupted) or one `workflows.models.WorkflowRun`
(failed / cancelled).

Failures:
- `upstream_500`: the upstream answers HTTP 500 (its body holds a secret the caller must not
  see); through the live server.
- `upstream_cut`: the upstream sends two tokens, then drops the connection; live server.
- `bug`: our code raises before the first token (`chat.services.prompt_messages`, or
  `workflows.runs.engine_limits`); in-process, where monkeypatch reaches the code.
- `bug_mid_stream`: our code raises after the stream opened and a token was sent (the wire
  module rendering the second token); in-process.
- `disconnect`: the client hangs up mid-stream (`post_and_hang_up` against the live server;
  the WebSocket is closed in-process).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

import chat.services
import workflows.runs
from aiflowy.llm import upstream_clients_closed
from aiflowy.wire import aiflowy as aiflowy_wire
from aiflowy.wire import openai as openai_wire
from aiflowy.wire import workflow as workflow_wire
from chat.models import Message
from chat.recorder import history_writer
from config.asgi import application
from tests.conftest import post_and_hang_up, sse_parsed, wait_until
from tests.contract.conftest import (
    APPS,
    assert_aiflowy_error,
    assert_openai_error,
    user,
)
from tests.workflows.test_run import llm_definition
from workflows.models import WorkflowRun
from workflows.recorder import run_writer

pytestmark = pytest.mark.django_db(transaction=True, available_apps=APPS)

SECRET = "secret-boom-7f3a"  # the text of the exceptions our patched code raises
UPSTREAM_SECRET = "secret upstream detail"  # in the fake upstream's 500 body
QUESTION = "a b c d"
STILL_ONE_AFTER = 0.2  # seconds: a second record of the same answer would come by then

MODELS = {"upstream_500": "fail500", "upstream_cut": "cut", "disconnect": "slow"}
LIVE = ("upstream_500", "upstream_cut", "disconnect")
IN_PROCESS = ("bug", "bug_mid_stream")


# --- what a caller sees at the end ---------------------------------------------------------------
def ends_with_aiflowy_error(events: list, status: int) -> None:
    *before, (_, last) = events
    assert_aiflowy_error(last, status, extra=frozenset({"status", "created"}))
    assert last["status"] == "ERROR"
    assert all(data.get("status") != "ERROR" for _, data in before)


def ends_with_openai_error(events: list, status: int) -> None:
    *before, (_, error), (_, done) = events
    assert done == "[DONE]"
    assert_openai_error(error, status)
    assert all(isinstance(data, str) or "error" not in data for _, data in before)


def ends_with_detail_error(events: list, status: int) -> None:
    *before, (name, error) = events
    assert name == "error"
    assert_openai_error(error, status)
    assert "error" not in [name for name, _ in before]


def ends_with_failed_run(events: list, status: int) -> None:
    """`runFinished` carries no status code: `failed` and a message are the contract."""
    *before, (name, finished) = events
    assert name == "runFinished"
    assert finished["status"] == "failed"
    assert isinstance(finished["error"], str) and finished["error"]
    assert finished["result"] is None
    assert "runFinished" not in [name for name, _ in before]


@dataclass(frozen=True)
class Expect:
    """`stream`: a 200 event stream ending in the family's final event for an error of
    `status`; else a JSON error answer with that status."""

    status: int
    stream: bool = True


@dataclass(frozen=True)
class StreamEndpoint:
    id: str
    path: str
    kind: str  # "chat" | "workflow": what is recorded
    body: Callable[[Any, str], dict]  # (bot or workflow, question) → request body
    marker: bytes  # what arrives once per token (for `post_and_hang_up`)
    final: Callable[[list, int], None]  # the final-event check
    expect: dict[str, Expect]
    json_error: Callable[[Any, int], None]  # the family's JSON error shape

    def fake_upstream_for(self, request) -> Any:
        name = "workflow_upstream" if self.kind == "workflow" else "fake_upstream"
        return request.getfixturevalue(name)


def external_chat_body(bot, question: str) -> dict:
    return {"botId": bot.id, "stream": True, "messages": [user(question)]}


def completion_body(bot, question: str) -> dict:
    return {"model": bot.name, "stream": True, "messages": [user(question)]}


def detail_body(bot, question: str) -> dict:
    return {**completion_body(bot, question), "detail": True}


def run_body(workflow, question: str) -> dict:
    return {"id": workflow.id, "stream": True, "variables": {"question": question}}


# A failure before the first token of an OpenAI-compatible stream is a JSON answer.
OPENAI_EXPECT = {
    "upstream_500": Expect(502, stream=False),
    "upstream_cut": Expect(502),
    "bug": Expect(500, stream=False),
    "bug_mid_stream": Expect(500),
}

ENDPOINTS = [
    StreamEndpoint(
        "externalChat",
        "/api/v1/aiBot/externalChat",
        "chat",
        external_chat_body,
        b"data: ",
        ends_with_aiflowy_error,
        {
            "upstream_500": Expect(502),
            "upstream_cut": Expect(502),
            "bug": Expect(500),
            "bug_mid_stream": Expect(500),
        },
        assert_aiflowy_error,
    ),
    StreamEndpoint(
        "chat-completions",
        "/v1/chat/completions",
        "chat",
        completion_body,
        b"data: ",
        ends_with_openai_error,
        OPENAI_EXPECT,
        assert_openai_error,
    ),
    StreamEndpoint(
        "chat-completions-detail",
        "/api/v1/chat/completions",
        "chat",
        detail_body,
        b"event: answer",
        ends_with_detail_error,
        OPENAI_EXPECT,
        assert_openai_error,
    ),
    StreamEndpoint(
        "workflow-run",
        "/api/v1/workflow/external/run",
        "workflow",
        run_body,
        b"event: llmToken",
        ends_with_failed_run,
        # The statuses are those of the errors behind `runFinished`, which carries none.
        {
            "upstream_500": Expect(502),
            "upstream_cut": Expect(502),
            "bug": Expect(500),
            "bug_mid_stream": Expect(500),
        },
        assert_aiflowy_error,
    ),
]

FAILED_STATUS = {"chat": Message.Status.ERROR, "workflow": WorkflowRun.Status.FAILED}
GONE_STATUS = {"chat": Message.Status.INTERRUPTED, "workflow": WorkflowRun.Status.CANCELLED}


# --- targets and records -------------------------------------------------------------------------
@pytest.fixture
def make_target(make_bot, make_workflow_bot, make_workflow) -> Callable[[StreamEndpoint, str], Any]:
    """The bot (chat) or the workflow with one llmNode (workflow) whose upstream behaves as
    the fake upstream's `model` says."""

    def make(endpoint: StreamEndpoint, model: str) -> Any:
        if endpoint.kind == "chat":
            return make_bot(name=f"streamer-{model}", model=model)
        bot = make_workflow_bot(name=f"node-bot-{model}", model=model)
        return make_workflow(llm_definition(bot.id))

    return make


def records(kind: str) -> list:
    if kind == "chat":
        return list(Message.objects.filter(role="assistant").order_by("id"))
    return list(WorkflowRun.objects.order_by("id"))


def the_one_record(kind: str) -> Any:
    """The answer's only record, once stored; a moment later it is still the only one."""
    wait_until(lambda: records(kind))
    # Not a timing assertion: a duplicate record of the same answer would be written by then.
    time.sleep(STILL_ONE_AFTER)
    found = records(kind)
    assert len(found) == 1, [(r.pk, r.status) for r in found]
    return found[0]


def assert_no_leak(text: str) -> None:
    assert SECRET not in text
    assert UPSTREAM_SECRET not in text


def check_answer(endpoint: StreamEndpoint, response: httpx.Response, expect: Expect) -> None:
    assert_no_leak(response.text)
    if not expect.stream:
        assert response.status_code == expect.status, response.text[:300]
        assert response.headers["content-type"].startswith("application/json")
        endpoint.json_error(response.json(), expect.status)
        return
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"].startswith("text/event-stream")
    endpoint.final(sse_parsed(response.text), expect.status)


# --- through the live server ---------------------------------------------------------------------
LIVE_CASES = [
    pytest.param(endpoint, failure, id=f"{endpoint.id}-{failure}")
    for endpoint in ENDPOINTS
    for failure in ("upstream_500", "upstream_cut")
]


@pytest.mark.parametrize(("endpoint", "failure"), LIVE_CASES)
def test_an_upstream_failure_ends_the_stream_and_is_recorded_once(
    http, api_key, make_target, endpoint: StreamEndpoint, failure: str
):
    target = make_target(endpoint, MODELS[failure])
    response = http.post(
        endpoint.path, headers={"Authorization": api_key}, json=endpoint.body(target, QUESTION)
    )
    check_answer(endpoint, response, endpoint.expect[failure])
    record = the_one_record(endpoint.kind)
    assert record.status == FAILED_STATUS[endpoint.kind]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda endpoint: endpoint.id)
def test_a_client_disconnect_is_recorded_once_as_interrupted(
    request, live_server_url, http, api_key, make_target, endpoint: StreamEndpoint
):
    target = make_target(endpoint, MODELS["disconnect"])
    upstream = endpoint.fake_upstream_for(request)
    abandoned_before = upstream.abandoned_streams
    post_and_hang_up(
        live_server_url,
        endpoint.path,
        api_key=api_key,
        body=endpoint.body(target, "tell me"),
        marker=endpoint.marker,
        count=3,
    )
    record = the_one_record(endpoint.kind)
    assert record.status == GONE_STATUS[endpoint.kind]
    # The upstream generation was stopped too (the slow upstream would run for 30 s).
    wait_until(lambda: upstream.abandoned_streams > abandoned_before)


# --- in-process: our own code fails --------------------------------------------------------------
def raise_on(monkeypatch, module, name: str, when: Callable[[int, tuple], bool]) -> None:
    """Make `module.name` raise RuntimeError(SECRET) on the calls where `when(n, args)`."""
    original = getattr(module, name)
    calls = 0

    def patched(*args, **kwargs):
        nonlocal calls
        calls += 1
        if when(calls, args):
            raise RuntimeError(SECRET)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, patched)


def always(calls: int, args: tuple) -> bool:
    return True


def second_call(calls: int, args: tuple) -> bool:
    return calls == 2


def first_token_event(calls: int, args: tuple) -> bool:
    return type(args[0]).__name__ == "LlmToken"


def break_our_code(monkeypatch, endpoint_kind: str, family: str, failure: str) -> None:
    # `as_api_error` logs the exception with its traceback. pytest's log capture keeps that
    # record, and with it every frame of the failed stream (and the generators they iterate),
    # which production's log handlers, formatting and dropping records, do not: keep the record
    # away from the capture so the stream's objects live and die as in production.
    monkeypatch.setattr(logging.getLogger("aiflowy.errors"), "propagate", False)
    if failure == "bug":
        if endpoint_kind == "workflow":
            raise_on(monkeypatch, workflows.runs, "engine_limits", always)
        else:
            raise_on(monkeypatch, chat.services, "prompt_messages", always)
    elif family == "aiflowy":  # START went out; the MIDDLE frame fails
        raise_on(monkeypatch, aiflowy_wire, "_delta_frame", second_call)
    elif family == "openai":  # the first chunk went out; the second fails
        raise_on(monkeypatch, openai_wire, "_text_chunk", second_call)
    else:  # the run started and its nodes are reported; the first token fails
        raise_on(monkeypatch, workflow_wire, "event_body", first_token_event)


FAMILY = {
    "externalChat": "aiflowy",
    "chat-completions": "openai",
    "chat-completions-detail": "openai",
    "workflow-run": "workflow",
}


async def settle_in_process() -> None:
    """Write what this event loop queued, after giving dropped generators their finalizers."""
    gc.collect()
    await asyncio.sleep(STILL_ONE_AFTER)
    await history_writer().flush()
    await run_writer().flush()


@pytest.mark.asyncio
@pytest.mark.parametrize("failure", IN_PROCESS)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda endpoint: endpoint.id)
async def test_a_bug_in_our_code_ends_the_stream_without_its_text_and_is_recorded_once(
    monkeypatch, api_key, make_target, endpoint: StreamEndpoint, failure: str
):
    target = await database_sync_to_async(make_target)(endpoint, "fake-model")
    break_our_code(monkeypatch, endpoint.kind, FAMILY[endpoint.id], failure)
    transport = httpx.ASGITransport(app=application)
    async with (
        upstream_clients_closed(),
        httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client,
    ):
        response = await client.post(
            endpoint.path,
            headers={"Authorization": api_key},
            json=endpoint.body(target, QUESTION),
        )
        await settle_in_process()
    check_answer(endpoint, response, endpoint.expect[failure])
    found = await database_sync_to_async(records)(endpoint.kind)
    assert [record.status for record in found] == [FAILED_STATUS[endpoint.kind]]


# --- the chat WebSocket (in-process) -------------------------------------------------------------
async def socket_answer(api_key: str, bot_id: int) -> tuple[WebsocketCommunicator, list[dict]]:
    socket = WebsocketCommunicator(application, f"/ws/v1/aiBot/chat?api_key={api_key}")
    connected, _ = await socket.connect()
    assert connected
    await socket.send_json_to({"botId": bot_id, "requestId": "r", "messages": [user(QUESTION)]})
    frames = []
    while True:
        frame = await socket.receive_json_from(timeout=10)
        frames.append(frame)
        if frame["status"] in ("END", "ERROR"):
            return socket, frames


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("failure", "status"),
    [("upstream_500", 502), ("upstream_cut", 502), ("bug", 500), ("bug_mid_stream", 500)],
)
async def test_a_failed_socket_answer_ends_with_an_error_frame_and_is_recorded_once(
    monkeypatch, make_bot, api_key, failure: str, status: int
):
    bot = await database_sync_to_async(make_bot)(model=MODELS.get(failure, "fake-model"))
    if failure in IN_PROCESS:
        break_our_code(monkeypatch, "chat", "aiflowy", failure)
    async with upstream_clients_closed():
        socket, frames = await socket_answer(api_key, bot.id)
        *before, last = frames
        assert_no_leak(str(frames))
        assert_aiflowy_error(last, status, extra=frozenset({"status", "created", "requestId"}))
        assert (last["status"], last["requestId"]) == ("ERROR", "r")
        assert all(frame["status"] != "ERROR" for frame in before)
        assert await socket.receive_nothing(timeout=0.1)  # still open
        await socket.disconnect()
        await settle_in_process()
    found = await database_sync_to_async(records)("chat")
    assert [record.status for record in found] == [Message.Status.ERROR]


@pytest.mark.asyncio
async def test_closing_the_socket_mid_answer_is_recorded_once_as_interrupted(make_bot, api_key):
    bot = await database_sync_to_async(make_bot)(model="slow")
    socket = WebsocketCommunicator(application, f"/ws/v1/aiBot/chat?api_key={api_key}")
    async with upstream_clients_closed():
        await socket.connect()
        await socket.send_json_to({"botId": bot.id, "messages": [user("tell me")]})
        assert (await socket.receive_json_from(timeout=10))["status"] == "START"
        await socket.disconnect()
        await settle_in_process()
    found = await database_sync_to_async(records)("chat")
    assert [record.status for record in found] == [Message.Status.INTERRUPTED]
