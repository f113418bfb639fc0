"""The base of every external HTTP endpoint: a Channels consumer served ahead of Django.

Why not a Django view: Django's middleware hops to a thread per hook under ASGI, which costs
more than our whole latency budget (see docs/architecture.md). This base keeps the hot path
on the event loop:
- no channel-layer subscription per request (HTTP endpoints never receive group messages),
- no `close_old_connections` thread hop per ASGI message (database work goes through
  `database_sync_to_async`, which manages connections itself),
- the handler runs as a task, so a client disconnect (`http.disconnect`) cancels it mid-stream,
- a size limit on the request body, enforced while it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer
from django.conf import settings

from aiflowy.api.errors import (
    ApiError,
    BadRequest,
    InternalError,
    MethodNotAllowed,
    aiflowy_error_body,
)
from aiflowy.api.sse import PING, SSE_HEADERS, json_dumps

logger = logging.getLogger(__name__)


class ApiConsumer(AsyncHttpConsumer):
    """Subclasses set `allowed_methods`, implement `handle_request`, and may override
    `render_error` for their endpoint family's error shape."""

    channel_layer_alias = "__no_channel_layer__"
    allowed_methods: tuple[str, ...] = ("POST",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.body_size = 0
        self.body_too_large = False
        self.response_started = False
        self.task: asyncio.Task | None = None

    # --- ASGI plumbing -------------------------------------------------------------------
    async def dispatch(self, message: dict) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def http_request(self, message: dict) -> None:
        chunk = message.get("body", b"")
        if not self.body_too_large:
            self.body_size += len(chunk)
            if self.body_size > settings.AIFLOWY_MAX_BODY_BYTES:
                self.body_too_large = True
                self.body = []
            else:
                self.body.append(chunk)
        if message.get("more_body"):
            return
        self.task = asyncio.create_task(self._respond(b"".join(self.body)))

    async def http_disconnect(self, message: dict) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        raise StopConsumer()

    async def _respond(self, body: bytes) -> None:
        try:
            if self.scope["method"] not in self.allowed_methods:
                raise MethodNotAllowed(
                    f"Method {self.scope['method']} is not allowed here; "
                    f"use {' or '.join(self.allowed_methods)}."
                )
            if self.body_too_large:
                raise BadRequest(
                    f"Request body is larger than {settings.AIFLOWY_MAX_BODY_BYTES} bytes.",
                    code="body_too_large",
                )
            await self.handle_request(body)
        except ApiError as error:
            await self.send_error(error)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Unhandled error in %s", type(self).__name__)
            await self.send_error(InternalError("Internal error; the operator has the details."))

    async def handle_request(self, body: bytes) -> None:
        raise NotImplementedError

    # --- request helpers -----------------------------------------------------------------
    def header(self, name: bytes) -> str | None:
        for key, value in self.scope["headers"]:
            if key == name:
                return value.decode("latin-1")
        return None

    def query_param(self, name: str) -> str | None:
        from urllib.parse import parse_qs

        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get(name)
        return values[0] if values else None

    @staticmethod
    def parse_json_object(body: bytes) -> dict:
        """The body as a JSON object, or a 400 saying what is wrong with it."""
        if not body.strip():
            raise BadRequest("Request body is empty; send a JSON object.", code="invalid_json")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(
                f"Request body is not valid JSON: {exc}", code="invalid_json"
            ) from None
        if not isinstance(data, dict):
            raise BadRequest("Request body must be a JSON object.", code="invalid_json")
        return data

    # --- responses -----------------------------------------------------------------------
    def render_error(self, error: ApiError) -> dict[str, Any]:
        return aiflowy_error_body(error)

    async def send_json(
        self, data: Any, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        body = json_dumps(data).encode()
        raw_headers = [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        self.response_started = True
        await self.send_headers(status=status, headers=raw_headers)
        await self.send_body(body)

    async def send_error(self, error: ApiError) -> None:
        if self.response_started:
            # Too late for a status code; stream endpoints report their own error events.
            logger.warning("Error after the response started: %s", error.message)
            return
        await self.send_json(self.render_error(error), status=error.status, headers=error.headers)

    async def start_sse(self, headers: dict[str, str] | None = None) -> None:
        raw_headers = list(SSE_HEADERS)
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        self.response_started = True
        await self.send_headers(status=200, headers=raw_headers)
        # Flush the headers now, so the client sees the stream open before the first token.
        await self.send_body(b"", more_body=True)

    async def send_sse_stream(self, events: AsyncIterator[bytes]) -> None:
        """Send already-framed SSE events as they come, with `: ping` while idle, then close.

        One pinger task watches for silence, instead of a timeout around every event: an
        event costs one send, nothing more.
        """
        self.last_sent = time.monotonic()
        pinger = asyncio.create_task(self._ping_while_idle(settings.AIFLOWY_SSE_PING_SECONDS))
        try:
            async for event in events:
                await self.send_body(event, more_body=True)
                self.last_sent = time.monotonic()
        finally:
            pinger.cancel()
            if not asyncio.current_task().cancelling():
                await self.send_body(b"", more_body=False)

    async def _ping_while_idle(self, interval: float) -> None:
        while True:
            idle = time.monotonic() - self.last_sent
            if idle >= interval:
                await self.send_body(PING, more_body=True)
                self.last_sent = time.monotonic()
                idle = 0.0
            await asyncio.sleep(interval - idle)
