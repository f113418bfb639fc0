"""External workflow endpoints, as Channels consumers ahead of Django's middleware.

Each endpoint parses, calls one service and renders with AIFlowy's wire module (a streamed run
with the workflow events' one); errors and the end of every stream are the bases' job.
"""

from __future__ import annotations

from functools import partial

from channels.db import database_sync_to_async

from aiflowy.errors import NotFound
from aiflowy.validation import json_object
from aiflowy.wire import aiflowy as aiflowy_wire
from aiflowy.wire import workflow as workflow_wire
from apikeys.auth import ApiKeyConsumer
from apikeys.selectors import ApiKeyPrincipal
from workflows.background import workflow_run_in_background
from workflows.engine import input_parameters
from workflows.models import WorkflowRun
from workflows.runs import (
    WorkflowExecution,
    workflow_for_key,
    workflow_inputs_check,
    workflow_run,
    workflow_run_stream,
)
from workflows.schemas import parse_run, parse_run_id, parse_workflow_id, request_fields
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
            result = await workflow_run(execution)
            await self.send_json(aiflowy_wire.run_result_body(run_id=run_id, result=result))


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
