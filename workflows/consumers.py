"""External workflow endpoints, as Channels consumers ahead of Django's middleware, and the
Channels worker consumer that runs background runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async

from aiflowy.api.auth import authenticate
from aiflowy.api.consumers import ApiConsumer
from aiflowy.api.errors import ApiError, NotFound, aiflowy_error_body
from aiflowy.api.sse import sse_event
from aiflowy.background import spawn
from workflows.engine import input_parameters
from workflows.models import WorkflowRun
from workflows.schemas import parse_run, parse_run_id, parse_workflow_id, request_fields
from workflows.selectors import workflow_run_get
from workflows.services import (
    WorkflowExecution,
    WorkflowRunFailed,
    run_outcome_error,
    workflow_for_key,
    workflow_inputs_check,
    workflow_run,
    workflow_run_claimed,
    workflow_run_in_background,
    workflow_run_stream,
)


def _iso(moment) -> str | None:
    return moment.isoformat() if moment is not None else None


class WorkflowConsumer(ApiConsumer):
    def render_error(self, error: ApiError) -> dict[str, Any]:
        body = aiflowy_error_body(error)
        if isinstance(error, WorkflowRunFailed):
            body["runId"] = str(error.run_id)
            body["nodeId"] = error.node_id
        elif error.param:
            body["param"] = error.param
        return body

    def fields(self, body: bytes) -> dict[str, Any]:
        return request_fields(body, self.header(b"content-type"))


class RunningParamsConsumer(WorkflowConsumer):
    """`getRunningParams`: the workflow's title, description and start parameters."""

    allowed_methods = ("GET", "POST")

    async def handle_request(self, body: bytes) -> None:
        api_key = await authenticate(self.header(b"authorization"))
        workflow_id = parse_workflow_id(self.fields(body), self.query_param("id"))
        workflow = await workflow_for_key(api_key, workflow_id)
        assert workflow.definition is not None
        await self.send_json(
            {
                "errorCode": 0,
                "title": workflow.title,
                "description": workflow.description,
                "parameters": [p.as_api_dict() for p in input_parameters(workflow.definition)],
            }
        )


class RunConsumer(WorkflowConsumer):
    """`run`: `{id, variables}` → `{errorCode: 0, result}`; `stream` → SSE of the run's events;
    `async` → a run id at once (see `RunStatusConsumer`)."""

    async def handle_request(self, body: bytes) -> None:
        api_key = await authenticate(self.header(b"authorization"))
        request = parse_run(self.parse_json_object(body))
        workflow = await workflow_for_key(api_key, request.workflow_id)
        execution = WorkflowExecution(
            workflow=workflow,
            inputs=workflow_inputs_check(workflow, request.variables),
            api_key_id=api_key.id,
            source=WorkflowRun.Source.API,
        )
        if request.stream:
            execution.source = WorkflowRun.Source.STREAM
            await self.start_sse()
            await self.send_sse_stream(self._events(workflow_run_stream(execution)))
            return
        if request.run_async:
            execution.source = WorkflowRun.Source.ASYNC
            status = await workflow_run_in_background(execution)
            await self.send_json(
                {"errorCode": 0, "runId": str(execution.run_id), "status": status}, status=202
            )
            return
        outcome = await workflow_run(execution)
        error = run_outcome_error(execution, outcome)
        if error is not None:
            raise error
        await self.send_json(
            {"errorCode": 0, "runId": str(execution.run_id), "result": outcome.result}
        )

    @staticmethod
    async def _events(events: AsyncIterator[dict]) -> AsyncIterator[bytes]:
        async for event in events:
            yield sse_event(event, event=event["event"])


class RunStatusConsumer(WorkflowConsumer):
    """`runStatus`: a run's state, and its result once finished. Only the key that started a
    run can see it."""

    allowed_methods = ("GET", "POST")

    async def handle_request(self, body: bytes) -> None:
        api_key = await authenticate(self.header(b"authorization"))
        run_id = parse_run_id(self.fields(body), self.query_param("runId"))
        run = await database_sync_to_async(workflow_run_get)(run_id=run_id, api_key_id=api_key.id)
        if run is None:
            raise NotFound(f"There is no run {run_id} for this API key.", code="run_not_found")
        await self.send_json(
            {
                "errorCode": 0,
                "runId": str(run.run_id),
                "workflowId": run.workflow_id,
                "status": run.status,
                "result": run.result,
                "error": run.error or None,
                "failedNodeId": run.failed_node_id or None,
                "createdAt": _iso(run.created_at),
                "startedAt": _iso(run.started_at),
                "finishedAt": _iso(run.finished_at),
                "durationMs": run.duration_ms,
                "steps": [
                    {
                        "nodeId": step.node_id,
                        "nodeType": step.node_type,
                        "title": step.title,
                        "status": step.status,
                        "error": step.error or None,
                        "durationMs": step.duration_ms,
                    }
                    for step in run.steps.all()
                ],
            }
        )


class WorkflowWorkerConsumer(AsyncConsumer):
    """Runs background runs sent over the channel layer (`{"type": "workflow.run", "run_id"}`).

    A worker hands all of a channel's messages to one consumer instance, one at a time, so
    each run is started as a task and the next message is taken at once. The consumer needs
    no channel of its own (it is never sent to directly), so it does not subscribe to one.
    """

    channel_layer_alias = "__no_channel_layer__"

    async def workflow_run(self, message: dict) -> None:
        spawn(workflow_run_claimed(message.get("run_id")), name="workflow-worker-run")
