"""The error contract of every external endpoint, in one table.

Each endpoint belongs to one API family and answers every failure in that family's shape:
- AIFlowy: `{"errorCode": <HTTP status>, "message": str}` (+ `param`; `runId`/`nodeId` only for
  failed runs, which this table does not produce), nothing else;
- OpenAI: `{"error": {"message", "type", "param", "code"}}`, `type` derived from the status.
429 answers carry `Retry-After`. Wrong method and body too large are checked before the key
(the consumer base answers them before `authenticate`), so they answer 405 / 400 even without
a key.

`ENDPOINTS` × `CELLS` is the whole table: a cell that does not apply to an endpoint is listed in
its `not_applicable` with the reason, and `test_every_cell_is_decided` keeps the table complete.
The chat WebSocket's contract is at the end (in-process, with Channels' communicator).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

import httpx
import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.utils import timezone

from aiflowy.llm import upstream_clients_closed
from apikeys.models import ApiKey
from apikeys.services import api_key_create
from bots.models import Bot
from config.asgi import application
from tests.chat.test_chat_websocket import frames_until_end
from tests.contract.conftest import (
    APPS,
    assert_aiflowy_error,
    assert_openai_error,
    echo_definition,
    user,
)
from workflows.definitions import workflow_create
from workflows.models import Workflow, WorkflowRun

pytestmark = pytest.mark.django_db(transaction=True, available_apps=APPS)

# --- the cells: what goes wrong, and the status it gets ----------------------------------------
CELLS: dict[str, int] = {
    "no_key": 401,
    "unknown_key": 401,
    "disabled_key": 401,
    "expired_key": 401,
    "out_of_scope": 403,
    "rate_limited": 429,
    "invalid_json": 400,
    "body_too_large": 400,
    "wrong_method": 405,
    # Status order: these two are answered before the key is looked at.
    "wrong_method_no_key": 405,
    "body_too_large_no_key": 400,
}

NO_BODY = "GET takes no body"
DRF_NO_BODY = "a DRF GET/DELETE view reads no body (AIFLOWY_MAX_BODY_BYTES is the consumers')"


class World:
    """The rows every cell needs, created on first use: the bot and workflow the requests name
    (`bot`, `workflow`), others a scoped key is limited to, a finished run of `key`, and one key
    per cell."""

    def __init__(self, make_bot: Callable[..., Bot]) -> None:
        self.make_bot = make_bot

    @cached_property
    def bot(self) -> Bot:
        return self.make_bot(name="target")

    @cached_property
    def workflow(self) -> Workflow:
        return workflow_create(title="target", definition=echo_definition())

    @cached_property
    def valid_key(self) -> tuple[ApiKey, str]:
        return api_key_create(name="valid")

    @property
    def key(self) -> str:
        return self.valid_key[1]

    @cached_property
    def run_id(self) -> str:
        """A finished run started with `key`."""
        run = WorkflowRun.objects.create(
            workflow=self.workflow,
            api_key=self.valid_key[0],
            source=WorkflowRun.Source.API,
            status=WorkflowRun.Status.SUCCEEDED,
            result={"echo": None},
        )
        return str(run.run_id)

    def key_for(self, cell: str) -> str | None:
        if cell in ("no_key", "wrong_method_no_key", "body_too_large_no_key"):
            return None
        if cell == "unknown_key":
            return "af-" + "x" * 43
        if cell == "disabled_key":
            api_key, raw_key = api_key_create(name="disabled")
            ApiKey.objects.filter(pk=api_key.pk).update(enabled=False)
            return raw_key
        if cell == "expired_key":
            past = timezone.now() - timedelta(minutes=1)
            return api_key_create(name="expired", expires_at=past)[1]
        if cell == "out_of_scope":
            # Two other bots: a key with exactly one bot always talks to it, whatever `model`.
            others = [self.make_bot(name="other-1"), self.make_bot(name="other-2")]
            other_workflow = workflow_create(title="other", definition=echo_definition())
            return api_key_create(
                name="scoped",
                bot_ids=[bot.id for bot in others],
                workflow_ids=[other_workflow.id],
            )[1]
        if cell == "rate_limited":
            return api_key_create(name="limited", rate_limit_per_minute=1)[1]
        return self.key


Request = Callable[[World], dict[str, Any]]


@dataclass(frozen=True)
class Endpoint:
    """One row of the table (positional: id, method, path, family, wrong method, request)."""

    id: str
    method: str
    path: str
    family: str  # "aiflowy" | "openai"
    wrong_method: str
    request: Request  # httpx keyword arguments of a valid request (params=, json=)
    not_applicable: dict[str, str] = field(default_factory=dict)
    # Cells whose status differs from `CELLS`, with the reason in a comment where declared.
    expected: dict[str, int] = field(default_factory=dict)

    def status(self, cell: str) -> int:
        return self.expected.get(cell, CELLS[cell])


def chat_request(world: World) -> dict:
    return {"json": {"botId": world.bot.id, "messages": [user("hi")]}}


def completion_request(world: World) -> dict:
    return {"json": {"model": world.bot.name, "messages": [user("hi")]}}


def workflow_query(world: World) -> dict:
    return {"params": {"id": world.workflow.id}}


def workflow_json(world: World) -> dict:
    return {"json": {"id": world.workflow.id}}


def run_request(world: World) -> dict:
    return {"json": {"id": world.workflow.id, "variables": {"text": "hi"}}}


def status_query(world: World) -> dict:
    return {"params": {"runId": world.run_id}}


def status_json(world: World) -> dict:
    return {"json": {"runId": world.run_id}}


def resume_json(world: World) -> dict:
    return {"json": {"runId": world.run_id, "values": {}}}


def history_query(world: World) -> dict:
    return {"params": {"botId": world.bot.id}}


def chat_id_query(world: World) -> dict:
    return {"params": {"botId": world.bot.id, "chatId": "no-such-chat"}}


def no_request(world: World) -> dict:
    return {}


def model_request(world: World) -> dict:
    """The model is in the path (`target`): the bot must exist."""
    assert world.bot.name == "target"
    return {}


GET_ONLY = {
    "invalid_json": NO_BODY,
    "body_too_large": NO_BODY,
    "body_too_large_no_key": NO_BODY,
}
# The history API is DRF views behind Django: same family, same cells, except the body ones.
# `wrong_method_no_key` is held to the same order as the consumers (405 before the key).
DRF = {
    "invalid_json": DRF_NO_BODY,
    "body_too_large": DRF_NO_BODY,
    "body_too_large_no_key": DRF_NO_BODY,
}
# A run belongs to the key that started it: another key's run does not exist for it (404),
# whatever that key's workflow scope.
RUN_OF_ANOTHER_KEY = {"out_of_scope": 404}


def workflow_endpoints(family: str) -> list[Endpoint]:
    base = f"/api/v1/{family}/external"
    return [
        Endpoint(
            f"{family}-getRunningParams-GET",
            "GET",
            f"{base}/getRunningParams",
            "aiflowy",
            "PUT",
            workflow_query,
            not_applicable=GET_ONLY,
        ),
        Endpoint(
            f"{family}-getRunningParams-POST",
            "POST",
            f"{base}/getRunningParams",
            "aiflowy",
            "PUT",
            workflow_json,
        ),
        Endpoint(f"{family}-run", "POST", f"{base}/run", "aiflowy", "GET", run_request),
        Endpoint(
            f"{family}-runStatus-GET",
            "GET",
            f"{base}/runStatus",
            "aiflowy",
            "PUT",
            status_query,
            not_applicable=GET_ONLY,
            expected=RUN_OF_ANOTHER_KEY,
        ),
        Endpoint(
            f"{family}-runStatus-POST",
            "POST",
            f"{base}/runStatus",
            "aiflowy",
            "PUT",
            status_json,
            expected=RUN_OF_ANOTHER_KEY,
        ),
        Endpoint(
            f"{family}-resume",
            "POST",
            f"{base}/resume",
            "aiflowy",
            "GET",
            resume_json,
            expected=RUN_OF_ANOTHER_KEY,
        ),
    ]


def models_endpoints(prefix: str) -> list[Endpoint]:
    name = prefix.strip("/").replace("/", "-")
    return [
        Endpoint(
            f"{name}-models",
            "GET",
            f"{prefix}/models",
            "openai",
            "POST",
            no_request,
            not_applicable={
                **GET_ONLY,
                "out_of_scope": "lists the key's own bots: names no bot to refuse",
            },
        ),
        Endpoint(
            f"{name}-models-model",
            "GET",
            f"{prefix}/models/target",
            "openai",
            "POST",
            model_request,
            not_applicable=GET_ONLY,
        ),
    ]


ENDPOINTS: list[Endpoint] = [
    Endpoint("externalChat", "POST", "/api/v1/aiBot/externalChat", "aiflowy", "GET", chat_request),
    *workflow_endpoints("workflow"),
    *workflow_endpoints("aiWorkflow"),
    Endpoint(
        "histories-GET",
        "GET",
        "/api/v1/chat/histories",
        "aiflowy",
        "POST",
        history_query,
        not_applicable=DRF,
    ),
    Endpoint(
        "histories-DELETE",
        "DELETE",
        "/api/v1/chat/histories",
        "aiflowy",
        "POST",
        chat_id_query,
        not_applicable=DRF,
    ),
    Endpoint(
        "records-GET",
        "GET",
        "/api/v1/chat/records",
        "aiflowy",
        "POST",
        chat_id_query,
        not_applicable=DRF,
    ),
    Endpoint(
        "v1-chat-completions",
        "POST",
        "/v1/chat/completions",
        "openai",
        "GET",
        completion_request,
    ),
    Endpoint(
        "api-v1-chat-completions",
        "POST",
        "/api/v1/chat/completions",
        "openai",
        "GET",
        completion_request,
    ),
    Endpoint(
        "api-chat-completions",
        "POST",
        "/api/chat/completions",
        "openai",
        "GET",
        completion_request,
    ),
    *models_endpoints("/v1"),
    *models_endpoints("/api/v1"),
]


def test_every_cell_is_decided():
    """The table is complete: every endpoint × cell is tested, or named as not applicable
    with a reason; nothing else is marked."""
    for endpoint in ENDPOINTS:
        assert set(endpoint.not_applicable) <= set(CELLS), endpoint.id
        assert set(endpoint.expected) <= set(CELLS) - set(endpoint.not_applicable), endpoint.id
        assert all(endpoint.not_applicable.values()), endpoint.id
    assert len({endpoint.id for endpoint in ENDPOINTS}) == len(ENDPOINTS)


@pytest.fixture
def world(make_bot) -> World:
    return World(make_bot)


def send(http: httpx.Client, world: World, endpoint: Endpoint, cell: str) -> httpx.Response:
    key = world.key_for(cell)
    headers = {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}" if endpoint.family == "openai" else key
    kwargs = endpoint.request(world)
    method = endpoint.method
    if cell in ("invalid_json",):
        kwargs.pop("json", None)
        kwargs["content"] = b'{"botId": 1, "messages": ['
        headers["Content-Type"] = "application/json"
    elif cell in ("body_too_large", "body_too_large_no_key"):
        kwargs.pop("json", None)
        pad = b"x" * settings.AIFLOWY_MAX_BODY_BYTES
        kwargs["content"] = b'{"pad": "' + pad + b'"}'
        headers["Content-Type"] = "application/json"
    elif cell in ("wrong_method", "wrong_method_no_key"):
        method = endpoint.wrong_method
    if cell == "rate_limited":
        # A limit of 1 a minute in fixed windows: of three calls, two share a window even when
        # a window ends between them, so the third answer is 429 at the latest.
        for _ in range(3):
            response = http.request(method, endpoint.path, headers=headers, **kwargs)
            if response.status_code == 429:
                break
        return response
    return http.request(method, endpoint.path, headers=headers, **kwargs)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda endpoint: endpoint.id)
def test_error_contract(http, world, subtests, endpoint: Endpoint):
    """One row of the table; each applicable cell is a subtest (one database reset per row:
    a reset costs ~100 ms on PostgreSQL, more than all of a row's requests)."""
    for cell in CELLS:
        if cell in endpoint.not_applicable:
            continue
        with subtests.test(cell=cell):
            check_cell(http, world, endpoint, cell)


def check_cell(http: httpx.Client, world: World, endpoint: Endpoint, cell: str) -> None:
    response = send(http, world, endpoint, cell)
    status = endpoint.status(cell)
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    if endpoint.family == "aiflowy":
        assert_aiflowy_error(body, status)
    else:
        assert_openai_error(body, status)
    if status == 429:
        assert 1 <= int(response.headers["retry-after"]) <= 60
    else:
        assert "retry-after" not in response.headers


# --- the chat WebSocket -------------------------------------------------------------------------
SOCKET = "/ws/v1/aiBot/chat"
FRAME_EXTRA = frozenset({"status", "created", "requestId"})


def assert_error_frame(frame: dict, status: int) -> None:
    assert frame["status"] == "ERROR"
    assert isinstance(frame["created"], int)
    assert_aiflowy_error(frame, status, extra=FRAME_EXTRA)


def socket_for(key: str | None) -> WebsocketCommunicator:
    path = SOCKET if key is None else f"{SOCKET}?api_key={key}"
    return WebsocketCommunicator(application, path)


@pytest.mark.asyncio
@pytest.mark.parametrize("cell", ["no_key", "unknown_key", "disabled_key", "expired_key"])
async def test_socket_refuses_a_bad_key_with_an_error_frame_then_closes_4401(world, cell):
    key = await database_sync_to_async(world.key_for)(cell)
    socket = socket_for(key)
    connected, _ = await socket.connect()
    assert connected
    assert_error_frame(await socket.receive_json_from(), 401)
    assert await socket.receive_output() == {"type": "websocket.close", "code": 4401}


@pytest.mark.asyncio
async def test_socket_over_the_rate_limit_at_connect_closes_4429(world):
    key = await database_sync_to_async(world.key_for)("rate_limited")
    for _ in range(3):  # see `send`: the third connect at the latest is over the limit
        socket = socket_for(key)
        await socket.connect()
        if not await socket.receive_nothing(timeout=0.2):
            break
        await socket.disconnect()
    assert_error_frame(await socket.receive_json_from(), 429)
    assert await socket.receive_output() == {"type": "websocket.close", "code": 4429}


def bot_frame(bot_id: int, request_id: str = "r") -> dict:
    return {"botId": bot_id, "requestId": request_id, "messages": [user("hi")]}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("frame", "status"),
    [
        pytest.param({"text_data": "{not json"}, 400, id="not-json"),
        pytest.param({"bytes_data": b'{"botId": 1}'}, 400, id="binary"),
        pytest.param({"text_data": "[1, 2]"}, 400, id="not-an-object"),
        pytest.param({"json": bot_frame(999_999)}, 404, id="unknown-botId"),
        pytest.param({"json": {"requestId": "r", "messages": [user("x")]}}, 400, id="no-botId"),
    ],
)
async def test_a_bad_frame_gets_an_error_frame_and_the_socket_stays_usable(world, frame, status):
    bot = await database_sync_to_async(lambda: world.bot)()
    key = await database_sync_to_async(world.key_for)("valid")
    socket = socket_for(key)
    async with upstream_clients_closed():
        connected, _ = await socket.connect()
        assert connected
        if "json" in frame:
            await socket.send_json_to(frame["json"])
        else:
            await socket.send_to(**frame)
        error = await socket.receive_json_from()
        assert_error_frame(error, status)
        if "json" in frame:
            assert error["requestId"] == "r"
        assert await socket.receive_nothing(timeout=0.1)
        await socket.send_json_to(bot_frame(bot.id, "after"))
        frames = await frames_until_end(socket)
        assert frames[-1]["status"] == "END"
        assert {f["requestId"] for f in frames} == {"after"}
        await socket.disconnect()


@pytest.mark.asyncio
async def test_a_frame_for_a_bot_out_of_the_keys_scope_gets_403_and_the_socket_stays_open(
    world,
):
    bot = await database_sync_to_async(lambda: world.bot)()
    key = await database_sync_to_async(world.key_for)("out_of_scope")
    socket = socket_for(key)
    await socket.connect()
    await socket.send_json_to(bot_frame(bot.id))
    assert_error_frame(await socket.receive_json_from(), 403)
    assert await socket.receive_nothing(timeout=0.1)
    await socket.send_json_to(bot_frame(bot.id, "again"))
    assert_error_frame(await socket.receive_json_from(), 403)
    await socket.disconnect()


@pytest.mark.asyncio
async def test_a_frame_over_the_rate_limit_gets_429_and_the_socket_stays_open(world):
    key = await database_sync_to_async(world.key_for)("rate_limited")
    socket = socket_for(key)
    await socket.connect()  # counts the key's one request of the minute
    assert await socket.receive_nothing(timeout=0.2)
    for _ in range(3):  # frames naming no existing bot: 404 until the limit is reached
        await socket.send_json_to(bot_frame(999_999))
        error = await socket.receive_json_from()
        if error["errorCode"] == 429:
            break
    assert_error_frame(error, 429)
    assert await socket.receive_nothing(timeout=0.1)
    await socket.disconnect()


def test_the_table_covers_every_route():
    """Every consumer route and the history API is in `ENDPOINTS` (a new route joins the
    table, or this fails)."""
    from chat.routing import http_urlpatterns as chat_routes
    from workflows.routing import http_urlpatterns as workflow_routes

    tested = {endpoint.path.lstrip("/") for endpoint in ENDPOINTS}
    routes = {str(route.pattern).replace("<str:model>", "target") for route in chat_routes}
    routes |= {str(route.pattern) for route in workflow_routes}
    assert routes <= tested
    assert {"api/v1/chat/histories", "api/v1/chat/records"} <= tested
