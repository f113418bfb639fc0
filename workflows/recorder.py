"""Storing workflow runs and their steps.

Runs reach the database through `run_writer()`, the event loop's `BatchWriter`
(`aiflowy/batch.py`): a finished run is awaited before its outcome is reported, a cancelled one
queued. `run_records_write` is also called directly by synchronous code (the admin's test run).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from aiflowy.batch import BatchWriter, PerLoop
from workflows.engine import StepRecord
from workflows.models import WorkflowRun, WorkflowStep


@dataclass(slots=True)
class RunRecord:
    """The final state of one run. `existing` runs (background runs, whose row was written
    when they were accepted) are updated; the others are inserted."""

    run_id: uuid.UUID
    workflow_id: int | None
    workflow_title: str
    api_key_id: int | None
    source: str
    status: str
    inputs: dict
    created_at: datetime
    result: dict | None = None
    error: str = ""
    failed_node_id: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    steps: list[StepRecord] = field(default_factory=list)
    existing: bool = False
    # Set for a suspended run (see WorkflowRun); cleared when it finishes.
    waiting_for: list | None = None
    resume_state: dict | None = None
    expires_at: datetime | None = None


def bounded(value: Any, limit: int | None = None) -> Any:
    """`value` if its JSON is at most `limit` characters, else a marked preview of it, so one
    5 MB HTTP body does not make the run history unusable."""
    limit = settings.AIFLOWY_WORKFLOW_STEP_MAX_CHARS if limit is None else limit
    text = json.dumps(value, ensure_ascii=False, cls=DjangoJSONEncoder, default=str)
    if len(text) <= limit:
        return json.loads(text)
    return {"truncated": True, "chars": len(text), "preview": text[:limit]}


def _step_row(run: WorkflowRun, position: int, step: StepRecord) -> WorkflowStep:
    return WorkflowStep(
        run=run,
        position=position,
        node_id=step.node_id[:200],
        node_type=step.node_type[:50],
        title=(step.title or "")[:200],
        status=step.status,
        inputs=bounded(step.inputs or {}),
        outputs=bounded(step.outputs or {}),
        meta=bounded(getattr(step, "meta", None) or {}),
        error=step.error or "",
        attempts=step.attempts or 0,
        started_at=step.started_at,
        finished_at=step.finished_at,
        duration_ms=step.duration_ms,
    )


_RUN_FIELDS = (
    "status",
    "result",
    "error",
    "failed_node_id",
    "started_at",
    "finished_at",
    "duration_ms",
    "waiting_for",
    "resume_state",
    "expires_at",
)


def _run_row(record: RunRecord) -> WorkflowRun:
    return WorkflowRun(
        run_id=record.run_id,
        workflow_id=record.workflow_id,
        workflow_title=record.workflow_title[:200],
        api_key_id=record.api_key_id,
        source=record.source,
        status=record.status,
        inputs=bounded(record.inputs),
        result=record.result,
        error=record.error,
        failed_node_id=record.failed_node_id[:200],
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        duration_ms=record.duration_ms,
        waiting_for=record.waiting_for,
        resume_state=record.resume_state,
        expires_at=record.expires_at,
    )


@transaction.atomic
def run_records_write(batch: list[RunRecord]) -> None:
    """Store a batch of finished runs: inserts in bulk, updates of background runs, and every
    step in one bulk insert."""
    new = [record for record in batch if not record.existing]
    rows = WorkflowRun.objects.bulk_create([_run_row(record) for record in new])
    runs = dict(zip([record.run_id for record in new], rows, strict=True))
    existing = [record for record in batch if record.existing]
    if existing:
        found = WorkflowRun.objects.in_bulk(
            [record.run_id for record in existing], field_name="run_id"
        )
        for record in existing:
            run = found.get(record.run_id)
            if run is None:
                run = _run_row(record)
                run.save(force_insert=True)
            else:
                for name in _RUN_FIELDS:
                    setattr(run, name, getattr(record, name))
                run.save(update_fields=_RUN_FIELDS)
                run.steps.all().delete()
            runs[record.run_id] = run
    steps = [
        _step_row(runs[record.run_id], position, step)
        for record in batch
        for position, step in enumerate(record.steps, start=1)
    ]
    WorkflowStep.objects.bulk_create(steps)


run_writer: PerLoop[RunRecord] = PerLoop(
    lambda: BatchWriter(run_records_write, name="workflow run", max_batch=200)
)
