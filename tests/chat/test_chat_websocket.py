"""ws/v1/aiBot/chat: externalChat over a WebSocket, through the real ASGI app."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from aiflowy.llm import upstream_clients_closed
from chat.models import Message
from chat.recorder import history_writer
from config.asgi import application

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def make_bot_async(make_bot, **fields):
    return await database_sync_to_async(make_bot)(**fields)


async def frames_until_end(socket: WebsocketCommunicator) -> list[dict]:
    frames = []
    while True:
        frame = await socket.receive_json_from(timeout=10)
        frames.append(frame)
        if frame["status"] in ("END", "ERROR"):
            return frames


@pytest.mark.parametrize("how", ["header", "query"])
async def test_it_streams_start_middle_end_frames_with_the_request_id(bot, api_key, how):
    if how == "header":
        socket = WebsocketCommunicator(
            application,
            "/ws/v1/aiBot/chat",
            headers=[(b"authorization", f"Bearer {api_key}".encode())],
        )
    else:
        socket = WebsocketCommunicator(application, f"/ws/v1/aiBot/chat?api_key={api_key}")
    async with upstream_clients_closed():
        connected, _ = await socket.connect()
        assert connected
        await socket.send_json_to(
            {
                "botId": bot.id,
                "requestId": "r1",
                "messages": [{"role": "user", "content": "one two"}],
            }
        )
        frames = await frames_until_end(socket)
        await socket.disconnect()
    assert [f["status"] for f in frames] == ["START", "MIDDLE", "MIDDLE", "END"]
    assert {f["requestId"] for f in frames} == {"r1"}
    assert "".join(f["choices"]["delta"]["content"] for f in frames) == "Echo: one two"
    assert frames[-1]["usage"]["completionTokens"] == 3


async def test_a_bad_key_is_told_why_then_closed():
    socket = WebsocketCommunicator(application, "/ws/v1/aiBot/chat?api_key=af-nope")
    connected, _ = await socket.connect()
    assert connected
    frame = await socket.receive_json_from()
    assert (frame["status"], frame["errorCode"]) == ("ERROR", 401)
    closed = await socket.receive_output()
    assert closed == {"type": "websocket.close", "code": 4401}


async def test_bad_frames_get_error_frames_and_the_socket_stays_usable(bot, api_key):
    socket = WebsocketCommunicator(application, f"/ws/v1/aiBot/chat?api_key={api_key}")
    async with upstream_clients_closed():
        await socket.connect()
        await socket.send_to(text_data="{not json")
        assert (await socket.receive_json_from())["errorCode"] == 400
        await socket.send_json_to({"botId": bot.id, "requestId": 7, "messages": []})
        error = await socket.receive_json_from()
        assert (error["errorCode"], error["requestId"]) == (400, 7)
        assert "messages" in error["message"]
        await socket.send_json_to({"botId": bot.id, "messages": [{"role": "user", "content": "x"}]})
        assert (await frames_until_end(socket))[-1]["status"] == "END"
        await socket.disconnect()


async def test_closing_the_socket_mid_answer_records_it_as_interrupted(make_bot, api_key):
    slow_bot = await make_bot_async(make_bot, model="slow")
    socket = WebsocketCommunicator(application, f"/ws/v1/aiBot/chat?api_key={api_key}")
    async with upstream_clients_closed():
        await socket.connect()
        await socket.send_json_to(
            {"botId": slow_bot.id, "messages": [{"role": "user", "content": "long"}]}
        )
        assert (await socket.receive_json_from(timeout=10))["status"] == "START"
        await socket.disconnect()
    await history_writer().flush()
    answer = await Message.objects.filter(role="assistant").aget()
    assert answer.status == Message.Status.INTERRUPTED
    assert answer.content.startswith("Echo: ")
