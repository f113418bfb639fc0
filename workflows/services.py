"""Running workflows for callers, and recording every run.

Endpoints authenticate and parse, then call `workflow_for_key`, `workflow_inputs_check` and one
of `workflow_run` (answer when done), `workflow_run_stream` (engine events as they happen) or
`workflow_run_in_background` (answer at once; an asyncio task here, or a Channels worker).
Each run is handed to the run recorder whatever its outcome (succeeded, failed, timeout, or
cancelled when the caller went away), so it is written after the response, never before it.
The admin's test run uses `workflow_run_now`, the same path made synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction

from aiflowy.api.errors import ApiError, BadRequest, Forbidden, InternalError, NotFound
from aiflowy.background import spawn
from apikeys.selectors import ApiKeyPrincipal
from workflows.engine import (
    DefinitionError,
    EngineLimits,
    InputError,
    RunResult,
    StepRecord,
    parse_definition,
    run_workflow,
    validate_inputs,
)
from workflows.llm_port import BotLlmPort, BotLookup, bots_for_definition
from workflows.models import Workflow, WorkflowRun
from workflows.recorder import RunRecord, run_recorder, run_records_write
from workflows.selectors import WorkflowConfig, workflow_cache, workflow_config_get

logger = logging.getLogger(__name__)

EventListener = Callable[[dict], Awaitable[None]]


# --- errors a caller sees ----------------------------------------------------------------------
class WorkflowInvalid(InternalError):
    """The stored definition does not validate: the operator's problem, not the caller's."""

    code = "workflow_invalid"


class WorkflowRunFailed(ApiError):
    """The run ended without a result; the message names the failing node."""

    status = 500
    code = "workflow_failed"

    def __init__(self, message: str, *, run_id: uuid.UUID, node_id: str | None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.node_id = node_id


class WorkflowRunTimedOut(WorkflowRunFailed):
    status = 504
    code = "workflow_timeout"


class BackgroundUnavailable(ApiError):
    status = 503
    code = "background_unavailable"


# --- definitions -------------------------------------------------------------------------------
def definition_error_text(error: DefinitionError) -> str:
    """The engine's message, which already names the node or edge at fault; the ids are added
    when the message does not mention them."""
    message = error.message
    hints = []
    if error.node_id and f'"{error.node_id}"' not in message:
        hints.append(f'node "{error.node_id}"')
    if error.edge_id and f'"{error.edge_id}"' not in message:
        hints.append(f'edge "{error.edge_id}"')
    return f"{message} ({', '.join(hints)})" if hints else message


def workflow_definition_check(definition: Any) -> None:
    """`ValidationError` naming the bad node or edge when `definition` cannot run."""
    try:
        parse_definition(definition)
    except DefinitionError as error:
        raise ValidationError(
            "Invalid workflow definition: %(error)s",
            code="invalid_definition",
            params={"error": definition_error_text(error)},
        ) from None


def workflow_create(
    *, title: str, definition: dict, description: str = "", enabled: bool = True
) -> Workflow:
    workflow_definition_check(definition)
    workflow = Workflow(
        title=title, description=description, definition=definition, enabled=enabled
    )
    workflow.full_clean()
    workflow.save()
    return workflow


def workflow_saved(*, workflow: Workflow) -> None:
    """Forget this process's cached copy (other processes follow within the cache TTL)."""
    workflow_cache.invalidate(workflow.pk)


# --- import / export ---------------------------------------------------------------------------
# An exported file is the definition exactly as stored (Tinyflow's JSON, which AIFlowy and
# Tinyflow read back, ignoring unknown keys) with `title` and `description` added at the top.
# Import accepts that, a bare Tinyflow definition, and AIFlowy's workflow record, whose
# definition is the JSON text in `content`.
_METADATA_KEYS = ("title", "description")


@dataclass(frozen=True, slots=True)
class WorkflowDocument:
    title: str
    description: str
    definition: dict


def workflow_document_parse(raw: bytes | str, *, filename: str = "") -> WorkflowDocument:
    """Read an imported file; `ValidationError` (naming the node/edge) when it cannot run."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"The file is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ValidationError("The file must hold a JSON object.", code="invalid_json")
    title = data.get("title") if isinstance(data.get("title"), str) else ""
    description = data.get("description") if isinstance(data.get("description"), str) else ""
    definition: Any = data
    for key in ("definition", "content"):
        if "nodes" not in data and key in data:
            definition = data[key]
            if isinstance(definition, str):
                try:
                    definition = json.loads(definition)
                except ValueError as exc:
                    raise ValidationError(
                        f"'{key}' is not valid JSON: {exc}", code="invalid_json"
                    ) from None
            break
    if not isinstance(definition, dict):
        raise ValidationError("The workflow definition must be a JSON object.", code="invalid")
    if definition is data:
        definition = {k: v for k, v in data.items() if k not in _METADATA_KEYS}
    workflow_definition_check(definition)
    title = title.strip() or PurePath(filename).stem or "Imported workflow"
    return WorkflowDocument(title=title[:200], description=description, definition=definition)


def workflow_import(*, raw: bytes | str, filename: str = "", title: str = "") -> Workflow:
    document = workflow_document_parse(raw, filename=filename)
    return workflow_create(
        title=title.strip() or document.title,
        description=document.description,
        definition=document.definition,
    )


def workflow_export_document(*, workflow: Workflow) -> dict:
    definition = workflow.definition if isinstance(workflow.definition, dict) else {}
    return {"title": workflow.title, "description": workflow.description, **definition}


# --- choosing and checking ---------------------------------------------------------------------
async def workflow_for_key(api_key: ApiKeyPrincipal, workflow_id: int) -> WorkflowConfig:
    """The workflow, if it exists, is enabled, is in the key's scope and can run."""
    workflow = await workflow_config_get(workflow_id)
    if workflow is None or not workflow.enabled:
        raise NotFound(
            f"Workflow {workflow_id} does not exist or is disabled.", code="workflow_not_found"
        )
    if not api_key.may_use_workflow(workflow.id):
        raise Forbidden(f"This API key may not use workflow {workflow_id}.")
    if workflow.definition is None:
        raise WorkflowInvalid(
            f"Workflow {workflow_id} cannot run: its definition is invalid "
            f"({workflow.definition_error}). The operator has to fix it."
        )
    return workflow


def workflow_inputs_check(workflow: WorkflowConfig, variables: Any) -> dict:
    """The caller's variables checked against the start node and coerced to their data types;
    a 400 naming the parameter otherwise."""
    assert workflow.definition is not None
    try:
        return validate_inputs(workflow.definition, variables)
    except InputError as error:
        raise BadRequest(
            f"variables: {error.message}", code="invalid_variables", param=error.parameter
        ) from None


def engine_limits() -> EngineLimits:
    return EngineLimits(
        run_timeout_s=settings.AIFLOWY_WORKFLOW_RUN_TIMEOUT_SECONDS,
        node_timeout_s=settings.AIFLOWY_WORKFLOW_NODE_TIMEOUT_SECONDS,
        js_timeout_ms=settings.AIFLOWY_WORKFLOW_JS_TIMEOUT_MS,
        js_memory_mb=settings.AIFLOWY_WORKFLOW_JS_MEMORY_MB,
        http_timeout_s=settings.AIFLOWY_WORKFLOW_HTTP_TIMEOUT_SECONDS,
        http_max_response_bytes=settings.AIFLOWY_WORKFLOW_HTTP_MAX_RESPONSE_BYTES,
        http_allow_private=settings.AIFLOWY_WORKFLOW_HTTP_ALLOW_PRIVATE,
        max_parallel_nodes=settings.AIFLOWY_WORKFLOW_MAX_PARALLEL_NODES,
    )


# --- running -----------------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class WorkflowExecution:
    """One run to do: which workflow, for whom, with which (checked) inputs."""

    workflow: WorkflowConfig
    inputs: dict
    api_key_id: int | None
    source: str
    run_id: uuid.UUID = field(default_factory=uuid.uuid4)
    created_at: datetime = field(default_factory=_now)
    # True when the run's row was written before it ran (background runs).
    recorded_early: bool = False


class _StepWatcher:
    """Follows the engine's node events, so a cancelled run still shows what each node did up
    to that moment (the engine returns its steps only from a run that ended on its own)."""

    def __init__(self, forward: EventListener | None) -> None:
        self.forward = forward
        self.started: dict[str, tuple[dict, datetime, float]] = {}
        self.steps: list[StepRecord] = []

    async def __call__(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "nodeStarted":
            self.started[event["nodeId"]] = (event, _now(), time.monotonic())
        elif kind == "nodeFinished":
            started = self.started.pop(event["nodeId"], None)
            finished_at = _now()
            duration = event.get("durationMs") or 0
            self.steps.append(
                StepRecord(
                    node_id=event["nodeId"],
                    node_type=event.get("nodeType") or "",
                    title=event.get("title") or "",
                    status=event.get("status") or "succeeded",
                    inputs={},
                    outputs=event.get("outputs") or {},
                    error=event.get("error"),
                    started_at=started[1] if started else finished_at,
                    finished_at=finished_at,
                    duration_ms=duration,
                    attempts=1 if started else 0,
                )
            )
        if self.forward is not None:
            await self.forward(event)

    def cancelled_steps(self, error: str) -> list[StepRecord]:
        finished_at = _now()
        return self.steps + [
            StepRecord(
                node_id=node_id,
                node_type=event.get("nodeType") or "",
                title=event.get("title") or "",
                status=WorkflowRun.Status.CANCELLED,
                inputs={},
                outputs={},
                error=error,
                started_at=started_at,
                finished_at=finished_at,
                duration_ms=max(0, round((time.monotonic() - started_mono) * 1000)),
                attempts=1,
            )
            for node_id, (event, started_at, started_mono) in self.started.items()
        ]


def _record_of(execution: WorkflowExecution, **fields: Any) -> RunRecord:
    return RunRecord(
        run_id=execution.run_id,
        workflow_id=execution.workflow.id,
        workflow_title=execution.workflow.title,
        api_key_id=execution.api_key_id,
        source=execution.source,
        inputs=execution.inputs,
        created_at=execution.created_at,
        existing=execution.recorded_early,
        **fields,
    )


def _finished_record(execution: WorkflowExecution, outcome: RunResult) -> RunRecord:
    return _record_of(
        execution,
        status=outcome.status,
        result=outcome.result,
        error=outcome.error or "",
        failed_node_id=outcome.failed_node_id or "",
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
        duration_ms=outcome.duration_ms,
        steps=outcome.steps,
    )


async def _execute(
    execution: WorkflowExecution,
    *,
    on_event: EventListener | None,
    stream_tokens: bool,
    record: Callable[[RunRecord], None],
    bots: BotLookup | None = None,
) -> RunResult:
    """Run the engine and hand the run to `record`, whatever happens."""
    assert execution.workflow.definition is not None
    watcher = _StepWatcher(on_event)
    started_at, started_mono = _now(), time.monotonic()

    def ended(status: str, error: str, steps: list[StepRecord]) -> RunRecord:
        return _record_of(
            execution,
            status=status,
            error=error,
            started_at=started_at,
            finished_at=_now(),
            duration_ms=max(0, round((time.monotonic() - started_mono) * 1000)),
            steps=steps,
        )

    try:
        outcome = await run_workflow(
            execution.workflow.definition,
            execution.inputs,
            llm=BotLlmPort(stream_tokens=stream_tokens, bots=bots),
            limits=engine_limits(),
            on_event=watcher,
        )
    except asyncio.CancelledError:
        reason = "cancelled: the caller went away before the run finished"
        record(ended(WorkflowRun.Status.CANCELLED, reason, watcher.cancelled_steps(reason)))
        raise
    except InputError as error:
        record(ended(WorkflowRun.Status.FAILED, f"variables: {error.message}", watcher.steps))
        raise BadRequest(
            f"variables: {error.message}", code="invalid_variables", param=error.parameter
        ) from None
    except Exception:
        logger.exception("Workflow %s run %s crashed", execution.workflow.id, execution.run_id)
        reason = "internal error in the workflow engine"
        record(ended(WorkflowRun.Status.FAILED, reason, watcher.cancelled_steps(reason)))
        raise InternalError("The workflow engine failed; the operator has the details.") from None
    record(_finished_record(execution, outcome))
    return outcome


def _queue_record(record: RunRecord) -> None:
    run_recorder().record(record)


def run_outcome_error(execution: WorkflowExecution, outcome: RunResult) -> ApiError | None:
    """The error a caller gets for a run that produced no result, or None if it succeeded."""
    if outcome.status == "succeeded":
        return None
    error_class = WorkflowRunTimedOut if outcome.status == "timeout" else WorkflowRunFailed
    return error_class(
        outcome.error or "The workflow run failed.",
        run_id=execution.run_id,
        node_id=outcome.failed_node_id,
    )


async def workflow_run(execution: WorkflowExecution) -> RunResult:
    """Run to the end and return the outcome (recorded after). Cancelling the caller's task
    cancels the run, which is recorded as cancelled."""
    return await _execute(execution, on_event=None, stream_tokens=False, record=_queue_record)


async def workflow_run_stream(execution: WorkflowExecution) -> AsyncIterator[dict]:
    """The run's events as they happen: `runStarted`, the engine's `nodeStarted`,
    `nodeFinished`, `llmToken`, and always a final `runFinished` (with `runId`).

    Closing or cancelling the iterator cancels the run (recorded as cancelled).
    """
    events: asyncio.Queue[dict | None] = asyncio.Queue()

    async def forward(event: dict) -> None:
        events.put_nowait(event)

    task = spawn(
        _execute(execution, on_event=forward, stream_tokens=True, record=_queue_record),
        name=f"workflow-run-{execution.run_id}",
    )
    task.add_done_callback(lambda _task: events.put_nowait(None))
    run_id = str(execution.run_id)
    yield {"event": "runStarted", "runId": run_id, "workflowId": execution.workflow.id}
    finished = False
    try:
        while (event := await events.get()) is not None:
            if event.get("event") == "runFinished":
                finished = True
                event = {**event, "runId": run_id}
            yield event
        if not finished:
            yield {
                "event": "runFinished",
                "runId": run_id,
                "status": WorkflowRun.Status.FAILED,
                "result": None,
                "error": "internal error in the workflow engine",
            }
    finally:
        if not task.done():
            task.cancel()


# --- background runs ---------------------------------------------------------------------------
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
        await _execute(execution, on_event=None, stream_tokens=False, record=_queue_record)


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


# --- the admin's test run ----------------------------------------------------------------------
def workflow_run_now(*, workflow: Workflow, variables: dict) -> tuple[uuid.UUID, RunResult]:
    """Run synchronously (admin test runs) and record the run before returning.

    Raises `ValidationError` for an invalid definition, or keyed by the parameter's name for
    an invalid variable.
    """
    config = WorkflowConfig.from_model(workflow)
    if config.definition is None:
        raise ValidationError(config.definition_error)
    try:
        inputs = validate_inputs(config.definition, variables)
    except InputError as error:
        raise ValidationError({error.parameter or NON_FIELD_ERRORS: [error.message]}) from None
    execution = WorkflowExecution(
        workflow=config, inputs=inputs, api_key_id=None, source=WorkflowRun.Source.ADMIN
    )
    records: list[RunRecord] = []
    # The bots are read here, so the run needs no database: async code hopping back to this
    # thread for queries would close its connection (and break the request's transaction).
    outcome = async_to_sync(_execute)(
        execution,
        on_event=None,
        stream_tokens=False,
        record=records.append,
        bots=bots_for_definition(config.definition),
    )
    run_records_write(records)
    return execution.run_id, outcome
