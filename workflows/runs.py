"""Running workflows for callers, and recording every run exactly once.

Endpoints authenticate and parse, then call `workflow_for_key`, `workflow_inputs_check` and one
of `workflow_run` (the result when done), `workflow_run_stream` (typed events as they happen)
or `workflows.background.workflow_run_in_background`. A run that ended on its own is stored
before its result or final event leaves (so `runStatus`, on any process, knows it); a run the
caller abandoned is recorded as cancelled, without waiting. The admin's test run is
`workflow_run_now`, the same path made synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from aiflowy import metrics
from aiflowy.background import spawn
from aiflowy.errors import (
    BadRequest,
    Forbidden,
    InternalError,
    NotFound,
    RunFailed,
    RunTimedOut,
    as_api_error,
)
from aiflowy.events import NodeFinished, NodeStarted, RunEvent, RunFinished, RunStarted
from aiflowy.requestcontext import ended_by_shutdown
from apikeys.selectors import ApiKeyPrincipal
from workflows import live
from workflows.engine import (
    DefinitionError,
    EngineLimits,
    InputError,
    RunResult,
    StepRecord,
    parse_definition,
    resume_values,
    resume_workflow,
    run_workflow,
    validate_inputs,
)
from workflows.engine.values import to_jsonable
from workflows.errors import WorkflowInvalid
from workflows.knowledge_port import KnowledgeSearchPort, knowledge_bases_out_of_scope
from workflows.llm_port import BotLlmPort, BotLookup, bots_for_definition, bots_out_of_scope
from workflows.models import Workflow, WorkflowRun
from workflows.recorder import RunRecord, run_records_write, run_writer
from workflows.selectors import WorkflowConfig, workflow_config_get

logger = logging.getLogger(__name__)

EventListener = Callable[[RunEvent], Awaitable[None]]
Store = Callable[[RunRecord], Awaitable[None]]


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
    if api_key.bot_ids is not None:
        refused = await bots_out_of_scope(workflow.definition, api_key.may_use_bot)
        if refused:
            names = ", ".join(f'"{bot.name}"' for bot in refused)
            raise Forbidden(
                f"This API key may not use workflow {workflow_id}: its LLM nodes use "
                f"{names}, outside the key's bots."
            )
    if api_key.knowledge_base_ids is not None:
        refused_kbs = await knowledge_bases_out_of_scope(
            workflow.definition, api_key.may_use_knowledge_base
        )
        if refused_kbs:
            names = ", ".join(f'"{kb.name}"' for kb in refused_kbs)
            raise Forbidden(
                f"This API key may not use workflow {workflow_id}: its knowledge nodes search "
                f"{names}, outside the key's knowledge bases."
            )
    return workflow


def _invalid_variables(error: InputError) -> BadRequest:
    return BadRequest(
        f"variables: {error.message}", code="invalid_variables", param=error.parameter
    )


def workflow_inputs_check(workflow: WorkflowConfig, variables: Any) -> dict:
    """The caller's variables checked against the start node and coerced to their data types;
    a 400 naming the parameter otherwise."""
    assert workflow.definition is not None
    try:
        return validate_inputs(workflow.definition, variables)
    except InputError as error:
        raise _invalid_variables(error) from None


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
        max_loop_iterations=settings.AIFLOWY_WORKFLOW_MAX_LOOP_ITERATIONS,
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
    # Set when the run is stopped because its stream broke outside the engine: the run is
    # then recorded as failed for this reason, not as cancelled by its caller.
    broken: str = ""
    # A suspended run to continue: (its saved snapshot, the values a person gave).
    resume: tuple[dict, dict] | None = None
    # Until when a run that suspended can be resumed (set when it suspends).
    expires_at: datetime | None = None


class _StepWatcher:
    """Follows the engine's node events, so a cancelled run still shows what each node did up
    to that moment (the engine returns its steps only from a run that ended on its own)."""

    def __init__(self, forward: EventListener | None) -> None:
        self.forward = forward
        self.started: dict[str, tuple[NodeStarted, datetime, float]] = {}
        self.steps: list[StepRecord] = []

    async def __call__(self, event: RunEvent) -> None:
        if isinstance(event, NodeStarted):
            self.started[event.node_id] = (event, _now(), time.monotonic())
        elif isinstance(event, NodeFinished):
            started = self.started.pop(event.node_id, None)
            finished_at = _now()
            self.steps.append(
                StepRecord(
                    node_id=event.node_id,
                    node_type=event.node_type,
                    title=event.title,
                    status=event.status,
                    inputs={},
                    outputs=event.outputs or {},
                    error=event.error,
                    started_at=started[1] if started else finished_at,
                    finished_at=finished_at,
                    duration_ms=event.duration_ms or 0,
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
                node_type=event.node_type,
                title=event.title,
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
    if fields.get("duration_ms") is not None:
        metrics.RUN_DURATION.labels(fields.get("status", ""), execution.source).observe(
            fields["duration_ms"] / 1000
        )
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


async def stored_now(record: RunRecord) -> None:
    """Store a run before its outcome is reported (the default `Store`)."""
    await run_writer().write(record)


# Runs whose events go to the channel layer for WebSocket subscribers (`workflows.live`).
LIVE_SOURCES = frozenset({WorkflowRun.Source.ASYNC, WorkflowRun.Source.SOCKET})


async def run_and_record(
    execution: WorkflowExecution,
    *,
    on_event: EventListener | None,
    stream_tokens: bool,
    store: Store = stored_now,
    bots: BotLookup | None = None,
) -> RunResult:
    """Run the engine and record the run exactly once, whatever happens. Background and
    socket runs also publish their events live, ending with `runFinished` on every path."""
    if execution.source not in LIVE_SOURCES:
        return await _run_and_record(
            execution, on_event=on_event, stream_tokens=stream_tokens, store=store, bots=bots
        )
    run_id = execution.run_id
    try:
        outcome = await _run_and_record(
            execution,
            on_event=live.publishing(run_id, on_event),
            stream_tokens=stream_tokens,
            store=store,
            bots=bots,
        )
    except asyncio.CancelledError:
        await live.publish_finished(run_id, status="cancelled", error="the run was cancelled")
        raise
    except Exception as exc:
        error = as_api_error(exc, where="run_and_record")
        await live.publish_finished(run_id, status="failed", error=error.message)
        raise
    await live.publish_finished(
        run_id,
        status=outcome.status,
        result=outcome.result,
        error=outcome.error,
        waiting_for=outcome.waiting_for,
    )
    return outcome


async def _run_and_record(
    execution: WorkflowExecution,
    *,
    on_event: EventListener | None,
    stream_tokens: bool,
    store: Store = stored_now,
    bots: BotLookup | None = None,
) -> RunResult:
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

    llm = BotLlmPort(stream_tokens=stream_tokens, bots=bots)
    try:
        if execution.resume is not None:
            snapshot, values = execution.resume
            outcome = await resume_workflow(
                execution.workflow.definition,
                snapshot,
                values,
                llm=llm,
                limits=engine_limits(),
                on_event=watcher,
                run_id=str(execution.run_id),
                knowledge=KnowledgeSearchPort(),
            )
        else:
            outcome = await run_workflow(
                execution.workflow.definition,
                execution.inputs,
                llm=llm,
                limits=engine_limits(),
                on_event=watcher,
                run_id=str(execution.run_id),
                knowledge=KnowledgeSearchPort(),
            )
    except asyncio.CancelledError:
        if ended_by_shutdown() and not execution.broken:
            execution.broken = "ended by server shutdown"
        if execution.broken:
            reason = execution.broken
            await store(ended(WorkflowRun.Status.FAILED, reason, watcher.cancelled_steps(reason)))
            raise
        reason = "cancelled: the caller went away before the run finished"
        run_writer().add(
            ended(WorkflowRun.Status.CANCELLED, reason, watcher.cancelled_steps(reason))
        )
        raise
    except InputError as error:
        await store(ended(WorkflowRun.Status.FAILED, f"variables: {error.message}", watcher.steps))
        raise _invalid_variables(error) from None
    except Exception:
        logger.exception("Workflow %s run %s crashed", execution.workflow.id, execution.run_id)
        reason = "internal error in the workflow engine"
        await store(ended(WorkflowRun.Status.FAILED, reason, watcher.cancelled_steps(reason)))
        raise InternalError("The workflow engine failed; the operator has the details.") from None
    await store(
        _record_of(
            execution,
            status=outcome.status,
            result=outcome.result,
            error=outcome.error or "",
            failed_node_id=outcome.failed_node_id or "",
            started_at=outcome.started_at,
            finished_at=outcome.finished_at,
            duration_ms=outcome.duration_ms,
            steps=outcome.steps,
            **_suspension(execution, outcome),
        )
    )
    return outcome


def _suspension(execution: WorkflowExecution, outcome: RunResult) -> dict[str, Any]:
    """What a suspended run keeps for its resume call: the snapshot, with the definition that
    started it (an operator may edit the workflow meanwhile), and when it expires."""
    if outcome.status != "suspended":
        return {}
    assert execution.workflow.definition is not None
    expiry = timedelta(seconds=settings.AIFLOWY_WORKFLOW_SUSPENDED_RUN_EXPIRY_SECONDS)
    execution.expires_at = _now() + expiry
    return {
        "waiting_for": outcome.waiting_for,
        "resume_state": {
            "definition": to_jsonable(execution.workflow.definition.raw),
            "snapshot": outcome.snapshot,
        },
        "expires_at": execution.expires_at,
    }


def run_outcome_error(run_id: uuid.UUID, outcome: RunResult) -> RunFailed | None:
    """The error a caller gets for a run that produced no result, or None if it succeeded or
    waits for a person (suspended: the caller gets what it waits for)."""
    if outcome.status in ("succeeded", "suspended"):
        return None
    error_class = RunTimedOut if outcome.status == "timeout" else RunFailed
    return error_class(
        outcome.error or "The workflow run failed.",
        run_id=str(run_id),
        node_id=outcome.failed_node_id,
    )


async def workflow_run(execution: WorkflowExecution) -> RunResult:
    """Run to the end (or until it waits for a person: ``status`` ``suspended``); a run that
    failed raises `RunFailed` (naming the node). Cancelling the caller's task cancels the run,
    which is recorded as cancelled."""
    outcome = await run_and_record(execution, on_event=None, stream_tokens=False)
    error = run_outcome_error(execution.run_id, outcome)
    if error is not None:
        raise error
    return outcome


# --- resuming suspended runs ---------------------------------------------------------------------
EXPIRED_ERROR = "expired: nobody resumed the run before it stopped waiting"


def _expire(run: WorkflowRun) -> None:
    WorkflowRun.objects.filter(pk=run.pk, status=WorkflowRun.Status.SUSPENDED).update(
        status=WorkflowRun.Status.FAILED,
        error=EXPIRED_ERROR,
        resume_state=None,
        waiting_for=None,
        finished_at=_now(),
    )


def suspended_runs_expire() -> int:
    """Fail every suspended run whose time to be resumed is over (and drop its saved state);
    how many. `manage.py expireworkflowruns` runs it; resume calls and `runStatus` also
    expire the run they touch."""
    return WorkflowRun.objects.filter(
        status=WorkflowRun.Status.SUSPENDED, expires_at__lte=_now()
    ).update(
        status=WorkflowRun.Status.FAILED,
        error=EXPIRED_ERROR,
        resume_state=None,
        waiting_for=None,
        finished_at=_now(),
    )


def run_expired_if_due(run: WorkflowRun) -> WorkflowRun:
    """`run`, marked failed first if it is suspended and its time to be resumed is over."""
    if run.status == WorkflowRun.Status.SUSPENDED and run.expires_at and run.expires_at <= _now():
        _expire(run)
        return WorkflowRun.objects.prefetch_related("steps").get(pk=run.pk)
    return run


def _resumable(run: WorkflowRun | None, run_id: uuid.UUID) -> WorkflowRun:
    if run is None:
        raise NotFound(f"There is no run {run_id} for this API key.", code="run_not_found")
    if run.status == WorkflowRun.Status.SUSPENDED and run.expires_at and run.expires_at <= _now():
        run_expired_if_due(run)
        raise BadRequest(
            f"Run {run_id} waited too long and expired; start a new run.", code="run_expired"
        )
    if run.status != WorkflowRun.Status.SUSPENDED or not run.resume_state:
        raise BadRequest(
            f"Run {run_id} is not waiting for confirmation (its status is {run.status}).",
            code="run_not_suspended",
        )
    return run


def _claim(run: WorkflowRun) -> bool:
    """Move the run from suspended to running; False if another call got there first."""
    return bool(
        WorkflowRun.objects.filter(pk=run.pk, status=WorkflowRun.Status.SUSPENDED).update(
            status=WorkflowRun.Status.RUNNING
        )
    )


def _resume_execution(run: WorkflowRun, values: Any) -> WorkflowExecution:
    """Check a resume call against the suspended run and claim it (synchronous: database)."""
    state = run.resume_state or {}
    try:
        definition = parse_definition(state["definition"])
        snapshot = state["snapshot"]
    except (KeyError, TypeError, DefinitionError):
        raise InternalError("This run's saved state cannot be read.") from None
    try:
        checked = resume_values(snapshot, values)
    except InputError as error:
        raise BadRequest(
            f"values: {error.message}", code="invalid_values", param=error.parameter
        ) from None
    if not _claim(run):
        raise BadRequest(f"Run {run.run_id} is already being resumed.", code="run_not_suspended")
    config = WorkflowConfig(
        id=run.workflow_id or 0,
        title=run.workflow_title,
        description="",
        enabled=True,
        definition=definition,
        definition_error="",
    )
    return WorkflowExecution(
        workflow=config,
        inputs=run.inputs,
        api_key_id=run.api_key_id,
        source=run.source,
        run_id=run.run_id,
        created_at=run.created_at,
        recorded_early=True,
        resume=(snapshot, checked),
    )


def _resume_for_key(run_id: uuid.UUID, api_key_id: int | None, values: Any) -> WorkflowExecution:
    run = WorkflowRun.objects.filter(run_id=run_id, api_key_id=api_key_id).first()
    return _resume_execution(_resumable(run, run_id), values)


async def workflow_resume(
    api_key: ApiKeyPrincipal, run_id: uuid.UUID, values: Any
) -> tuple[WorkflowExecution, RunResult]:
    """Continue a suspended run started with this key, in this process, from the state saved
    in the database; the outcome as for `workflow_run` (it may suspend again)."""
    execution = await database_sync_to_async(_resume_for_key)(run_id, api_key.id, values)
    outcome = await run_and_record(execution, on_event=None, stream_tokens=False)
    error = run_outcome_error(execution.run_id, outcome)
    if error is not None:
        raise error
    return execution, outcome


def workflow_resume_now(*, run: WorkflowRun, values: dict) -> RunResult:
    """An operator confirms a suspended run in the admin (synchronous, like a test run).

    Raises `ValidationError` (keyed by the field's name) for values that do not fit, or an
    `ApiError` when the run is no longer waiting.
    """
    try:
        execution = _resume_execution(_resumable(run, run.run_id), values)
    except BadRequest as error:
        raise ValidationError({error.param or NON_FIELD_ERRORS: [error.message]}) from None
    records: list[RunRecord] = []

    async def keep(record: RunRecord) -> None:
        records.append(record)

    assert execution.workflow.definition is not None
    outcome = async_to_sync(run_and_record)(
        execution,
        on_event=None,
        stream_tokens=False,
        store=keep,
        bots=bots_for_definition(execution.workflow.definition),
    )
    run_records_write(records)
    return outcome


async def workflow_run_stream(execution: WorkflowExecution) -> AsyncIterator[RunEvent]:
    """The run's events as they happen: `RunStarted`, the engine's node events and LLM
    tokens, and a last `RunFinished` (with the run id), sent once the run is stored.

    Closing or cancelling the iterator cancels the run (recorded as cancelled). A run that
    breaks outside the engine raises here; the transport ends the stream for it.
    """
    events: asyncio.Queue[RunEvent | None] = asyncio.Queue()
    # The run may be one event ahead of the stream, no more: it cannot finish (and be
    # recorded as succeeded) while an earlier event is still to be rendered, so an event
    # that fails to render fails the run, as the stream tells the caller.
    room = asyncio.Semaphore(1)

    async def forward(event: RunEvent) -> None:
        await room.acquire()
        events.put_nowait(event)

    task = spawn(
        run_and_record(execution, on_event=forward, stream_tokens=True),
        name=f"workflow-run-{execution.run_id}",
    )
    task.add_done_callback(lambda _task: events.put_nowait(None))
    run_id = str(execution.run_id)
    yield RunStarted(run_id=run_id, workflow_id=execution.workflow.id)
    finished: RunFinished | None = None
    try:
        while (event := await events.get()) is not None:
            if isinstance(event, RunFinished):
                finished = event  # held back until the run is stored
            else:
                yield event
            room.release()
        await task  # raises what broke the run outside the engine
        assert finished is not None
        yield RunFinished(
            status=finished.status,
            result=finished.result,
            error=finished.error,
            run_id=run_id,
            waiting_for=finished.waiting_for,
        )
    except Exception as exc:
        if task.done():
            raise
        # Thrown in by the transport: rendering the events failed. Stop the run and record it
        # as failed before the stream's final frame is sent.
        error = as_api_error(exc, where="workflow_run_stream")
        execution.broken = "internal error while streaming the run"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise error from None
    finally:
        if not task.done():
            task.cancel()


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

    async def keep(record: RunRecord) -> None:
        records.append(record)

    # The bots are read here, so the run needs no database: async code hopping back to this
    # thread for queries would close its connection (and break the request's transaction).
    outcome = async_to_sync(run_and_record)(
        execution,
        on_event=None,
        stream_tokens=False,
        store=keep,
        bots=bots_for_definition(config.definition),
    )
    run_records_write(records)
    return execution.run_id, outcome
