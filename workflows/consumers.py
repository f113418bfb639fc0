"""External workflow endpoints, as Channels consumers ahead of Django's middleware, and the
Channels worker consumer that runs background runs.

Each endpoint parses, calls one service and renders with AIFlowy's wire module (a streamed run
with the workflow events' one); errors and the end of every stream are the bases' job.
"""

from __future__ import annotations

from functools import partial

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async

from aiflowy.background import spawn
from aiflowy.errors import NotFound
from aiflowy.validation import json_object
from aiflowy.wire import aiflowy as aiflowy_wire
from aiflowy.wire import workflow as workflow_wire
from apikeys.auth import ApiKeyConsumer
from apikeys.selectors import ApiKeyPrincipal
from workflows.background import workflow_run_claimed, workflow_run_in_background
from workflows.engine import RunResult, input_parameters
from workflows.models import WorkflowRun
from workflows.runs import (
    WorkflowExecution,
    workflow_for_key,
    workflow_inputs_check,
    workflow_resume,
    workflow_run,
    workflow_run_stream,
)
from workflows.schemas import (
    parse_resume,
    parse_run,
    parse_run_id,
    parse_workflow_id,
    request_fields,
)
from workflows.selectors import workflow_run_get


class RunningParamsConsumer(ApiKeyConsumer):
    """`getRunningParams`: the workflow's title, description and start parameters."""

    allowed_methods = ("GET", "POST")

    async def handle(self, api_key: ApiKeyPrincipal, body: bytes) -> None:
        fields = request_fields(body, self.header(b"content-type"))
        workflow_id = parse_workflow_id(fields, self.query_param("id"))
        workflow = await workflow_for_key(api_key, workflow_id)
        assert workflow.definition is not None
        await self.send_json(
            aiflowy_wire.running_params_body(
                title=workflow.title,
                description=workflow.description,
                parameters=input_parameters(workflow.definition),
            )
        )


class RunConsumer(ApiKeyConsumer):
    """`run`: `{id, variables}` → `{errorCode: 0, result}`; `stream` → SSE of the run's events;
    `async` → a run id at once (see `RunStatusConsumer`)."""

    async def handle(self, api_key: ApiKeyPrincipal, body: bytes) -> None:
        request = parse_run(json_object(body))
        workflow = await workflow_for_key(api_key, request.workflow_id)
        execution = WorkflowExecution(
            workflow=workflow,
            inputs=workflow_inputs_check(workflow, request.variables),
            api_key_id=api_key.id,
            source=WorkflowRun.Source.API,
        )
        run_id = str(execution.run_id)
        if request.stream:
            execution.source = WorkflowRun.Source.STREAM
            run_events = workflow_run_stream(execution)
            await self.send_sse_stream(
                workflow_wire.events(run_events),
                source=run_events,
                on_error=partial(workflow_wire.sse_error, run_id=run_id),
            )
        elif request.run_async:
            execution.source = WorkflowRun.Source.ASYNC
            status = await workflow_run_in_background(execution)
            await self.send_json(
                aiflowy_wire.run_accepted_body(run_id=run_id, status=status), status=202
            )
        else:
            outcome = await workflow_run(execution)
            await self.send_json(_outcome_body(execution, outcome))


def _outcome_body(execution: WorkflowExecution, outcome: RunResult) -> dict:
    run_id = str(execution.run_id)
    if outcome.status == "suspended":
        return aiflowy_wire.run_suspended_body(
            run_id=run_id, waiting_for=outcome.waiting_for, expires_at=execution.expires_at
        )
    return aiflowy_wire.run_result_body(run_id=run_id, result=outcome.result or {})


class ResumeConsumer(ApiKeyConsumer):
    """`resume`: `{runId, values}` continues a suspended run started with the same key (in
    this process, from the state saved in the database) → the run's result, or what it waits
    for next."""

    async def handle(self, api_key: ApiKeyPrincipal, body: bytes) -> None:
        request = parse_resume(json_object(body))
        execution, outcome = await workflow_resume(api_key, request.run_id, request.values)
        await self.send_json(_outcome_body(execution, outcome))


class RunStatusConsumer(ApiKeyConsumer):
    """`runStatus`: a run's state, and its result once finished. Only the key that started a
    run can see it."""

    allowed_methods = ("GET", "POST")

    async def handle(self, api_key: ApiKeyPrincipal, body: bytes) -> None:
        fields = request_fields(body, self.header(b"content-type"))
        run_id = parse_run_id(fields, self.query_param("runId"))
        run = await database_sync_to_async(workflow_run_get)(run_id=run_id, api_key_id=api_key.id)
        if run is None:
            raise NotFound(f"There is no run {run_id} for this API key.", code="run_not_found")
        await self.send_json(aiflowy_wire.run_status_body(run, run.steps.all()))


class WorkflowWorkerConsumer(AsyncConsumer):
    """Runs background runs sent over the channel layer (`{"type": "workflow.run", "run_id"}`).

    A worker hands all of a channel's messages to one consumer instance, one at a time, so
    each run is started as a task and the next message is taken at once. The consumer needs
    no channel of its own (it is never sent to directly), so it does not subscribe to one.
    """

    channel_layer_alias = "__no_channel_layer__"

    async def workflow_run(self, message: dict) -> None:
        spawn(workflow_run_claimed(message.get("run_id")), name="workflow-worker-run")
