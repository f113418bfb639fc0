"""Live workflow events over the channel layer: what a WebSocket subscriber of a run receives,
from whichever process runs it (a web process's task or a workflow worker).

Runs started in the background or from the workflow socket publish each event to the group
`workflow-run.<run id>`; the final `runFinished` is published after the run is stored, so a
subscriber that then asks `runStatus` sees the same outcome. Publishing never breaks a run: a
channel layer that fails is logged and the run goes on.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import get_channel_layer

from aiflowy.events import RunEvent, RunFinished
from aiflowy.wire.workflow import event_body

logger = logging.getLogger(__name__)

EventListener = Callable[[RunEvent], Awaitable[None]]


def run_group(run_id: uuid.UUID | str) -> str:
    """The channel-layer group of one run's events (group names allow letters, digits, '.')."""
    return f"workflow-run.{uuid.UUID(str(run_id)).hex}"


async def publish(run_id: uuid.UUID | str, body: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(
            run_group(run_id), {"type": "workflow.event", "run": str(run_id), "event": body}
        )
    except Exception:
        logger.exception("publishing a workflow event of run %s failed", run_id)


def publishing(run_id: uuid.UUID, forward: EventListener | None) -> EventListener:
    """A listener that publishes each node event (not the engine's `RunFinished`: see
    `publish_finished`) and passes every event on to `forward`."""

    async def listen(event: RunEvent) -> None:
        if not isinstance(event, RunFinished):
            await publish(run_id, event_body(event))
        if forward is not None:
            await forward(event)

    return listen


async def publish_finished(
    run_id: uuid.UUID,
    *,
    status: str,
    result: Any = None,
    error: str | None = None,
    waiting_for: list[dict[str, Any]] | None = None,
) -> None:
    finished = RunFinished(
        status=status, result=result, error=error, run_id=str(run_id), waiting_for=waiting_for
    )
    await publish(run_id, event_body(finished))
