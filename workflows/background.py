"""Background workflow runs (`run` with `"async": true`): accepted at once, run later.

The run's row is written (queued, or running) before the caller gets its run id, so the
status endpoint knows it at once. `AIFLOWY_WORKFLOW_BACKGROUND` decides who runs it: "task",
an asyncio task in the process that took the request, or "worker", a Channels worker
(`manage.py runworkflowworker`) fed over the channel layer, which claims each run once.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import UTC, datetime

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from aiflowy.background import spawn
from aiflowy.errors import ApiError
from workflows.errors import BackgroundUnavailable
from workflows.models import WorkflowRun
from workflows.runs import WorkflowExecution, run_and_record
from workflows.selectors import workflow_config_get

logger = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _run_row_create(execution: WorkflowExecution, status: str) -> None:
    WorkflowRun.objects.create(
        run_id=execution.run_id,
        workflow_id=execution.workflow.id,
        workflow_title=execution.workflow.title[:200],
        api_key_id=execution.api_key_id,
        source=execution.source,
        status=status,
        inputs=execution.inputs,
        created_at=execution.created_at,
        started_at=execution.created_at if status == WorkflowRun.Status.RUNNING else None,
    )


def _run_row_fail(run_id: uuid.UUID, error: str) -> None:
    WorkflowRun.objects.filter(run_id=run_id).update(
        status=WorkflowRun.Status.FAILED, error=error, finished_at=_now()
    )


async def workflow_run_in_background(execution: WorkflowExecution) -> str:
    """Accept the run and return at once; returns its status (`running` or `queued`).

    The run's row is written before answering (so the status endpoint knows it at once).
    `AIFLOWY_WORKFLOW_BACKGROUND` decides who runs it: "task", an asyncio task in this
    process, or "worker", a Channels worker (`manage.py runworkflowworker`) over the channel
    layer.
    """
    execution.recorded_early = True
    if settings.AIFLOWY_WORKFLOW_BACKGROUND != "worker":
        await database_sync_to_async(_run_row_create)(execution, WorkflowRun.Status.RUNNING)
        spawn(_background(execution), name=f"workflow-run-{execution.run_id}")
        return WorkflowRun.Status.RUNNING
    await database_sync_to_async(_run_row_create)(execution, WorkflowRun.Status.QUEUED)
    try:
        await get_channel_layer().send(
            settings.AIFLOWY_WORKFLOW_WORKER_CHANNEL,
            {"type": "workflow.run", "run_id": str(execution.run_id)},
        )
    except Exception:
        logger.exception("Could not queue workflow run %s", execution.run_id)
        await database_sync_to_async(_run_row_fail)(
            execution.run_id, "could not be handed to a workflow worker"
        )
        raise BackgroundUnavailable(
            "The run could not be queued for a background worker; try again later."
        ) from None
    return WorkflowRun.Status.QUEUED


async def _background(execution: WorkflowExecution) -> None:
    with contextlib.suppress(ApiError):  # already recorded with its error
        await run_and_record(execution, on_event=None, stream_tokens=False)


def _run_claim(run_id: uuid.UUID) -> WorkflowRun | None:
    """Mark a queued run as running, once: a message delivered twice runs once."""
    with transaction.atomic():
        claimed = WorkflowRun.objects.filter(
            run_id=run_id, status=WorkflowRun.Status.QUEUED
        ).update(status=WorkflowRun.Status.RUNNING, started_at=_now())
        if not claimed:
            return None
        return WorkflowRun.objects.get(run_id=run_id)


async def workflow_run_claimed(run_id: str) -> None:
    """Run a queued background run (called by the workflow worker)."""
    try:
        run_uuid = uuid.UUID(run_id)
    except (TypeError, ValueError):
        logger.warning("Workflow worker got a message with a bad run id %r", run_id)
        return
    run = await database_sync_to_async(_run_claim)(run_uuid)
    if run is None:
        return
    workflow = await workflow_config_get(run.workflow_id) if run.workflow_id else None
    if workflow is None or not workflow.enabled or workflow.definition is None:
        why = (
            "was deleted or disabled"
            if workflow is None or not workflow.enabled
            else (f"has an invalid definition ({workflow.definition_error})")
        )
        await database_sync_to_async(_run_row_fail)(
            run_uuid, f"the workflow {why} before the run started"
        )
        return
    execution = WorkflowExecution(
        workflow=workflow,
        inputs=run.inputs,
        api_key_id=run.api_key_id,
        source=run.source,
        run_id=run.run_id,
        created_at=run.created_at,
        recorded_early=True,
    )
    await _background(execution)
