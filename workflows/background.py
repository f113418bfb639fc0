"""Background workflow runs (`run` with `"async": true`): accepted at once, run later.

The run's row (queued) and its durable job (`aiflowy/jobs.py`) are written in one
transaction before the caller gets its run id, so the status endpoint knows the run at once
and a run accepted is never lost: with PostgreSQL a job worker (`manage.py runjobs`) runs it,
even if it was queued while every worker was down; embedded (SQLite), the same job runs as an
asyncio task of the web process.

A run is executed once: the job holds an exclusive lock on the run while it runs, and claims
it only from `queued`. A job that finds its run `running` with nobody holding the lock was
retried after its worker died mid-run (`kill -9`, a lost machine): the run is marked failed
rather than run a second time, because its nodes may have had effects (HTTP calls) already.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import UTC, datetime

from channels.db import database_sync_to_async
from django.db import transaction

from aiflowy import jobs
from aiflowy.errors import ApiError
from workflows.errors import BackgroundUnavailable
from workflows.models import WorkflowRun
from workflows.runs import WorkflowExecution, run_and_record
from workflows.selectors import workflow_config_get

logger = logging.getLogger(__name__)

# The durable job that runs one background run (workflows/tasks.py registers it).
RUN_JOB = "workflows.run_in_background"


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
    """Accept the run and return at once; returns its status (`queued`).

    The queued row and the job commit together: either the run is known and will run, or the
    caller gets an error and nothing was stored."""
    execution.recorded_early = True
    try:
        await jobs.enqueue(
            RUN_JOB,
            run_id=str(execution.run_id),
            with_transaction=lambda: _run_row_create(execution, WorkflowRun.Status.QUEUED),
        )
    except Exception:
        logger.exception("Could not queue workflow run %s", execution.run_id)
        raise BackgroundUnavailable(
            "The run could not be queued for a background worker; try again later."
        ) from None
    return WorkflowRun.Status.QUEUED


async def _background(execution: WorkflowExecution) -> None:
    with contextlib.suppress(ApiError):  # already recorded with its error
        await run_and_record(execution, on_event=None, stream_tokens=False)


ABANDONED_ERROR = (
    "the worker running it stopped before the run finished; it was not run again, "
    "because its nodes may already have had effects"
)


def _run_claim(run_id: uuid.UUID) -> WorkflowRun | None:
    """Mark a queued run as running, once (the caller holds the run's exclusive lock).

    A run found `running` was left by a worker that died: it is marked failed."""
    with transaction.atomic():
        claimed = WorkflowRun.objects.filter(
            run_id=run_id, status=WorkflowRun.Status.QUEUED
        ).update(status=WorkflowRun.Status.RUNNING, started_at=_now())
        if claimed:
            return WorkflowRun.objects.get(run_id=run_id)
        abandoned = WorkflowRun.objects.filter(
            run_id=run_id, status=WorkflowRun.Status.RUNNING
        ).update(status=WorkflowRun.Status.FAILED, error=ABANDONED_ERROR, finished_at=_now())
        if abandoned:
            logger.warning("Workflow run %s was left running by a dead worker: failed", run_id)
        return None


async def workflow_run_claimed(run_id: str) -> None:
    """Run a queued background run (the body of the durable job), at most once."""
    try:
        run_uuid = uuid.UUID(run_id)
    except (TypeError, ValueError):
        logger.warning("Workflow job got a bad run id %r", run_id)
        return
    async with jobs.exclusive(f"workflow-run:{run_uuid}") as alone:
        if not alone:
            logger.warning("Workflow run %s is running elsewhere; not started again", run_uuid)
            return
        await _run_claimed(run_uuid)


async def _run_claimed(run_uuid: uuid.UUID) -> None:
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
