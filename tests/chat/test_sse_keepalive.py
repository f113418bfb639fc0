"""Long silent streams get `: ping` comments, so proxies keep them open."""

import asyncio

import httpx
import pytest

from aiflowy.consumers import ApiConsumer


class _SilentThenDone(ApiConsumer):
    async def handle_request(self, body: bytes) -> None:
        async def events():
            await asyncio.sleep(0.35)
            yield b"data: done\n\n"

        await self.send_sse_stream(events())


@pytest.mark.asyncio
async def test_an_idle_stream_sends_ping_comments_then_its_events(settings):
    settings.AIFLOWY_SSE_PING_SECONDS = 0.1
    transport = httpx.ASGITransport(app=_SilentThenDone.as_asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.startswith(": ping\n\n")
    assert response.text.endswith("data: done\n\n")
