"""The bases of every external endpoint: Channels consumers served ahead of Django.

Why not a Django view: Django's middleware hops to a thread per hook under ASGI, which costs
more than our whole latency budget (see docs/architecture.md). `ApiConsumer` keeps the hot
path on the event loop:
- no channel-layer subscription per request (HTTP endpoints never receive group messages),
- no `close_old_connections` thread hop per ASGI message (database work goes through
  `database_sync_to_async`, which manages connections itself),
- the handler runs as a task, so a client disconnect (`http.disconnect`) cancels it mid-stream,
- a size limit on the request body, enforced while it arrives.

It is also the one error path of the HTTP endpoints: whatever a handler raises becomes an
`ApiError` (`aiflowy.errors.as_api_error`) rendered by the endpoint's wire module (`wire`),
as a JSON answer before the response started, or as the family's final stream frame after.
`ApiSocketConsumer` does the same for WebSocket frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from aiflowy import metrics, shutdown
from aiflowy.errors import (
    ApiError,
    BadRequest,
    MethodNotAllowed,
    ServiceUnavailable,
    as_api_error,
)
from aiflowy.requestcontext import request_started
from aiflowy.sse import PING, SSE_HEADERS, json_dumps
from aiflowy.validation import json_value
from aiflowy.wire import aiflowy as aiflowy_wire

logger = logging.getLogger(__name__)

StreamError = Callable[[ApiError], bytes]


class ApiConsumer(AsyncHttpConsumer):
    """Subclasses set `allowed_methods` and `wire` (their family's wire module) and implement
    `handle_request`."""

    channel_layer_alias = "__no_channel_layer__"
    allowed_methods: tuple[str, ...] = ("POST",)
    wire: ModuleType = aiflowy_wire

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.body_size = 0
        self.body_too_large = False
        self.response_started = False
        self.response_status = 0
        self.request_id = ""
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
        """Handle the request; count it (endpoint, status) and the latency it added."""
        started = time.perf_counter()
        context = request_started(self.header(b"x-request-id"))
        self.request_context = context
        self.request_id = context.request_id
        try:
            await self._handle(body)
        finally:
            endpoint = type(self).__name__
            metrics.labelled(metrics.REQUESTS, endpoint, self.response_status or 499).inc()
            added = time.perf_counter() - started - context.upstream_seconds
            metrics.labelled(metrics.ADDED_LATENCY, endpoint).observe(max(added, 0.0))

    async def _handle(self, body: bytes) -> None:
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
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = as_api_error(exc, where=type(self).__name__)
            if self.response_started:
                # A stream ends itself through `send_sse_stream`; a JSON body was sent whole.
                logger.warning("Error after the response started: %s", error.message)
                return
            await self.send_json(
                self.wire.error_body(error), status=error.status, headers=error.headers
            )

    async def handle_request(self, body: bytes) -> None:
        raise NotImplementedError

    # --- request helpers -----------------------------------------------------------------
    def header(self, name: bytes) -> str | None:
        for key, value in self.scope["headers"]:
            if key == name:
                return value.decode("latin-1")
        return None

    def query_param(self, name: str) -> str | None:
        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get(name)
        return values[0] if values else None

    # --- responses -----------------------------------------------------------------------
    async def send_headers(self, *, status: int = 200, headers: list | None = None) -> None:
        """Every response carries its request id (`X-Request-Id`, also in logs and history)."""
        self.response_status = status
        await super().send_headers(
            status=status, headers=[*(headers or ()), (b"x-request-id", self.request_id.encode())]
        )

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

    async def send_sse_stream(
        self,
        events: AsyncIterator[bytes],
        *,
        source: AsyncGenerator | None = None,
        on_error: StreamError | None = None,
    ) -> None:
        """Open an event stream and send already-framed events as they come, with `: ping`
        while idle; then close it. Whatever the events raise ends the stream with the family's
        final error frame(s) (`on_error`, by default the wire's `sse_error`): the caller always
        gets a final event. Cancellation (the client left) sends nothing: nobody listens.

        `source` is the service's generator the events are rendered from: a failure outside it
        (in rendering) is thrown into it, and a cancellation closes it, so that it records its
        outcome once, at once, and before the final frame, and lets go of its upstream.

        One pinger task watches for silence, instead of a timeout around every event: an
        event costs one send, nothing more.
        """
        self.response_started = True
        await self.send_headers(status=200, headers=SSE_HEADERS)
        # Flush the headers now, so the client sees the stream open before the first token.
        await self.send_body(b"", more_body=True)
        self.last_sent = time.monotonic()
        pinger = asyncio.create_task(self._ping_while_idle(settings.AIFLOWY_SSE_PING_SECONDS))
        metrics.OPEN_STREAMS.inc()
        self.stopped_for_shutdown = False
        shutdown.stream_opened(self._stop_for_shutdown)
        try:
            async for event in events:
                await self.send_body(event, more_body=True)
                self.last_sent = time.monotonic()
        except asyncio.CancelledError:
            await close_source(source)
            if not self.stopped_for_shutdown:
                raise
            # The server is shutting down (aiflowy/shutdown.py): the caller is still there
            # and gets the family's final error event.
            asyncio.current_task().uncancel()
            error = ServiceUnavailable(
                "The server is restarting; the answer was cut short. Please try again.",
                code="server_shutting_down",
            )
            await self.send_body((on_error or self.wire.sse_error)(error), more_body=True)
        except Exception as exc:
            error = await break_source(source, exc, where=type(self).__name__)
            await self.send_body((on_error or self.wire.sse_error)(error), more_body=True)
        finally:
            shutdown.stream_closed(self._stop_for_shutdown)
            pinger.cancel()
            metrics.OPEN_STREAMS.dec()
            if not asyncio.current_task().cancelling():
                await self.send_body(b"", more_body=False)

    def _stop_for_shutdown(self) -> None:
        """End this stream now, with a final error event (the server is shutting down)."""
        self.stopped_for_shutdown = True
        self.request_context.ended_by_shutdown = True
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def _ping_while_idle(self, interval: float) -> None:
        while True:
            idle = time.monotonic() - self.last_sent
            if idle >= interval:
                await self.send_body(PING, more_body=True)
                self.last_sent = time.monotonic()
                idle = 0.0
            await asyncio.sleep(interval - idle)


async def close_source(source: AsyncGenerator | None) -> None:
    """Close a stream's producer that its consumer abandoned (the client left)."""
    if source is not None:
        with contextlib.suppress(Exception):
            await source.aclose()


async def break_source(source: AsyncGenerator | None, exc: Exception, *, where: str) -> ApiError:
    """The error to show for a stream that failed with `exc`, after its producer (`source`)
    has been told: a failure in the producer itself has already ended it; one outside (a
    rendering bug) is thrown into it, where it is recorded (once, as an error) and re-raised
    as the `ApiError` to show. Logged once, by whoever first turned it into an `ApiError`."""
    if source is not None:
        try:
            await source.athrow(exc)
        except ApiError as raised:
            return raised
        except Exception:
            pass
    return as_api_error(exc, where=where)


async def first_item_within(items: AsyncIterator[Any], *, seconds: float) -> AsyncIterator[Any]:
    """`items`, after waiting up to `seconds` for the first one, so that a failure that comes
    at once is raised here (and answered with its real HTTP status, which SDKs raise as their
    status errors) instead of as an error event in a 200 stream. A slow first item still lets
    the caller open the stream after `seconds`, with its keep-alive pings."""
    first = asyncio.ensure_future(anext(items))
    try:
        done, _ = await asyncio.wait({first}, timeout=seconds)
    except asyncio.CancelledError:
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await first
        raise
    if done and first.exception() is not None:
        raise first.exception()

    async def resumed() -> AsyncIterator[Any]:
        try:
            yield await first
        except StopAsyncIteration:
            return
        async for item in items:
            yield item

    return resumed()


class ApiSocketConsumer(AsyncJsonWebsocketConsumer):
    """The base of request/answer WebSockets: each client frame is a request, answered by a
    run of frames. `answer` runs one answer as a task; whatever it raises ends it with the
    wire's error frame, so a request always gets its final frame. Closing the socket cancels
    the answer in progress."""

    channel_layer_alias = "__no_channel_layer__"
    wire: ModuleType = aiflowy_wire

    async def websocket_connect(self, message: dict) -> None:
        self.answering: asyncio.Task | None = None
        await super().websocket_connect(message)

    def query_param(self, name: str) -> str | None:
        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get(name)
        return values[0] if values else None

    def header(self, name: bytes) -> str | None:
        for key, value in self.scope["headers"]:
            if key == name:
                return value.decode("latin-1")
        return None

    async def send_error(self, exc: BaseException, **extra: Any) -> None:
        error = as_api_error(exc, where=type(self).__name__)
        await self.send_json({**self.wire.error_frame(error), **extra})

    @property
    def busy(self) -> bool:
        return self.answering is not None and not self.answering.done()

    def answer(
        self, frames: AsyncIterator[dict], *, source: AsyncGenerator | None = None, **extra: Any
    ) -> None:
        """Send `frames` (each with `extra` added) as they come, in a task of their own; a
        failure ends them with an error frame, after `source` (as in `send_sse_stream`) has
        recorded it."""

        async def run() -> None:
            try:
                async for frame in frames:
                    await self.send_json({**frame, **extra})
            except asyncio.CancelledError:
                await close_source(source)
                raise
            except Exception as exc:
                error = await break_source(source, exc, where=type(self).__name__)
                await self.send_json({**self.wire.error_frame(error), **extra})

        self.answering = asyncio.create_task(run())

    async def websocket_receive(self, message: dict) -> None:
        """Every frame gets an answer: Channels' own decoding raises on an empty text frame
        (and the server then drops the socket without a word), so frames are decoded here,
        with the same rules as an HTTP body (size cap, JSON object, depth and number limits),
        and anything wrong is an error frame on a socket that stays open."""
        text = message.get("text")
        try:
            if text is None:
                raise BadRequest("Send requests as JSON text frames.", code="invalid_json")
            if len(text) > settings.AIFLOWY_MAX_BODY_BYTES:  # characters ≤ bytes: cheap first
                size = len(text.encode("utf-8", "surrogatepass"))
                if size > settings.AIFLOWY_MAX_BODY_BYTES:
                    raise BadRequest(
                        f"Frame is larger than {settings.AIFLOWY_MAX_BODY_BYTES} bytes.",
                        code="body_too_large",
                    )
            content = json_value(text.encode("utf-8", "surrogatepass"))
        except Exception as exc:
            await self.send_error(exc)
            return
        await self.receive_json(content)

    async def disconnect(self, code: int) -> None:
        if self.busy:
            self.answering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.answering
