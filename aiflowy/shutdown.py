"""Graceful shutdown under uvicorn: on SIGTERM (or SIGINT) the process stops accepting (uvicorn
does), `/readyz` answers 503, open streams get `AIFLOWY_SHUTDOWN_GRACE_SECONDS` to finish,
then each is ended with its family's final error event (and its exchange recorded as an
error, "ended by server shutdown"); at the end the history still queued is written.

uvicorn's own `--timeout-graceful-shutdown` must be longer than the grace (it cancels what
is left without a final event): docs/deploy.md gives the command line.

Wiring: `lifespan` is the ASGI lifespan app (config/asgi.py). Its startup chains a handler
in front of uvicorn's SIGTERM/SIGINT handlers; its shutdown (which uvicorn runs once every
connection is closed) flushes the history writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any

from django.conf import settings

from aiflowy.batch import flush_all

logger = logging.getLogger(__name__)

_draining = False
_open_streams: set[Callable[[], None]] = set()


def draining() -> bool:
    return _draining


def stream_opened(stop: Callable[[], None]) -> None:
    """Register an open stream; `stop()` ends it with a final error event."""
    _open_streams.add(stop)


def stream_closed(stop: Callable[[], None]) -> None:
    _open_streams.discard(stop)


def begin_drain(grace_seconds: float | None = None) -> None:
    """Stop open streams after the grace period (called on the event loop)."""
    global _draining
    if _draining:
        return
    _draining = True
    grace = settings.AIFLOWY_SHUTDOWN_GRACE_SECONDS if grace_seconds is None else grace_seconds
    logger.warning(
        "Shutting down: %d open stream(s) get %.0f s to finish", len(_open_streams), grace
    )
    asyncio.get_running_loop().call_later(grace, _stop_open_streams)


def _stop_open_streams() -> None:
    if _open_streams:
        logger.warning("Ending %d open stream(s) for the shutdown", len(_open_streams))
    for stop in list(_open_streams):
        stop()


def _chain_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def handler(number: int, frame: Any, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(begin_drain)
            if callable(previous):
                previous(number, frame)

        signal.signal(signum, handler)


async def lifespan(scope: dict, receive: Callable, send: Callable) -> None:
    """The ASGI lifespan protocol (uvicorn): signal handlers at startup, history at the end."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # Not in the main thread (an embedded server): no signals to chain.
            with contextlib.suppress(ValueError):
                _chain_signal_handlers(asyncio.get_running_loop())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                await flush_all()
            except Exception:
                logger.exception("Could not write the queued history at shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return
