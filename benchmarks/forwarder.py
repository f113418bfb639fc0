"""The floor: the least a Python gateway can do per chat on this machine. A raw ASGI app that
forwards each request body, unread, to the upstream through one aiohttp session and relays
the answer (JSON, or an event stream chunk by chunk): no framework, no auth, no history.

Served by the same uvicorn as aiflowy in `benchmarks.floor`:
`FORWARD_TO=http://127.0.0.1:9100/v1/chat/completions uvicorn benchmarks.forwarder:app`.
"""

from __future__ import annotations

import os

import aiohttp

UPSTREAM = os.environ.get("FORWARD_TO", "http://127.0.0.1:9100/v1/chat/completions")
_session: aiohttp.ClientSession | None = None


async def app(scope, receive, send) -> None:
    global _session
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _session is not None:
                    await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if _session is None:
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    async with _session.post(
        UPSTREAM, data=body, headers={"Content-Type": "application/json"}
    ) as answer:
        content_type = answer.headers.get("Content-Type", "application/json")
        if content_type.startswith("text/event-stream"):
            await send(
                {
                    "type": "http.response.start",
                    "status": answer.status,
                    "headers": [(b"content-type", content_type.encode())],
                }
            )
            async for chunk in answer.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        data = await answer.read()
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})
