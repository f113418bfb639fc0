"""ws/v1/aiBot/chat under hostile frames, through a real Daphne: every frame (empty, binary,
not JSON, nested 10,000 deep, a 5,000-digit botId, larger than the HTTP body cap) gets an
ERROR frame in AIFlowy's shape, and the socket stays usable for the next request."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from channels.testing import WebsocketCommunicator

from aiflowy.llm import upstream_clients_closed
from config.asgi import application
from tests.contract.conftest import assert_aiflowy_error

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def ws_url(live_server_url: str) -> str:
    return live_server_url.replace("http://", "ws://") + "/ws/v1/aiBot/chat"


def good_frame(bot_id: int, request_id: str) -> str:
    return json.dumps(
        {"botId": bot_id, "requestId": request_id, "messages": [{"role": "user", "content": "hi"}]}
    )


async def frames_until_end(socket) -> list[dict]:
    frames = []
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
        frames.append(frame)
        if frame["status"] in ("END", "ERROR"):
            return frames


HOSTILE_FRAMES = {
    "empty text": "",
    "blank text": "   ",
    "binary": b'{"botId": 1}',
    "not json": "{not json",
    "objects 10000 deep": '{"a":' * 10_000 + "1" + "}" * 10_000,
    "lists 10000 deep": "[" * 10_000 + "]" * 10_000,
    "variables 990 deep": json.dumps({"botId": 1, "messages": []})[:-1]
    + ', "variables": '
    + '{"a":' * 990
    + "1"
    + "}" * 990
    + "}",
    "5000-digit botId": '{"botId": ' + "9" * 5000 + ', "messages": []}',
    "5000-digit string botId": '{"botId": "' + "9" * 5000 + '", "messages": []}',
    "NUL in content": '{"botId": 1, "messages": [{"role": "user", "content": "a\\u0000b"}]}',
    "lone surrogate": '{"botId": 1, "messages": [{"role": "user", "content": "a\\ud800b"}]}',
}


@pytest.mark.parametrize("frame", HOSTILE_FRAMES.values(), ids=HOSTILE_FRAMES.keys())
async def test_a_hostile_frame_gets_an_error_frame_and_the_socket_stays_usable(
    live_server_url, bot, api_key, frame
):
    async with websockets.connect(
        ws_url(live_server_url),
        additional_headers={"Authorization": f"Bearer {api_key}"},
        max_size=None,
    ) as socket:
        await socket.send(frame)
        error = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
        assert error["status"] == "ERROR", error
        assert_aiflowy_error(error, 400, extra=frozenset({"status", "created", "requestId"}))
        await socket.send(good_frame(bot.id, "after"))
        frames = await frames_until_end(socket)
        assert frames[-1]["status"] == "END", frames
        assert {f.get("requestId") for f in frames} == {"after"}


async def test_a_frame_over_the_body_cap_is_refused_and_the_socket_stays_usable(bot, api_key):
    """Daphne closes the socket on a message over 1 MiB itself; uvicorn takes up to 16 MiB, so
    the application refuses what the HTTP endpoints would (driven in-process here)."""
    big = json.dumps({"botId": bot.id, "messages": [{"role": "user", "content": "x" * 1_100_000}]})
    socket = WebsocketCommunicator(application, f"/ws/v1/aiBot/chat?api_key={api_key}")
    async with upstream_clients_closed():
        connected, _ = await socket.connect()
        assert connected
        await socket.send_to(text_data=big)
        error = await socket.receive_json_from(timeout=10)
        assert error["status"] == "ERROR", error
        assert error["errorCode"] == 400
        assert "larger than" in error["message"]
        await socket.send_to(text_data=good_frame(bot.id, "after"))
        frames = []
        while not frames or frames[-1]["status"] not in ("END", "ERROR"):
            frames.append(await socket.receive_json_from(timeout=10))
        assert frames[-1]["status"] == "END", frames
        await socket.disconnect()
