"""Fire-and-forget work on the event loop (writes that must not delay a response)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from aiflowy.errors import is_unavailable

logger = logging.getLogger(__name__)

_running: set[asyncio.Task] = set()


def spawn(coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task:
    """Run `coro` in the background; keep a reference until it ends and log its failure."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _running.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task) -> None:
    _running.discard(task)
    if task.cancelled() or task.exception() is None:
        return
    exc = task.exception()
    if is_unavailable(exc):  # an outage, already answered as 503s: one line, no traceback
        logger.warning(
            "Background task %s failed: %s: %s", task.get_name(), type(exc).__name__, exc
        )
        return
    logger.error("Background task %s failed", task.get_name(), exc_info=exc)
