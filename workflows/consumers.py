"""External workflow endpoints, as Channels consumers ahead of Django's middleware.

Each endpoint parses, calls one service and renders with AIFlowy's wire module (a streamed run
with the workflow events' one); errors and the end of every stream are the bases' job.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from channels.db import database_sync_to_async

from aiflowy.errors import BadRequest, NotFound
from aiflowy.validation import json_object
from aiflowy.wire import aiflowy as aiflowy_wire
from aiflowy.wire import workflow as workflow_wire
from apikeys.auth import ApiKeyConsumer, ApiKeySocketConsumer
from apikeys.selectors import ApiKeyPrincipal
from workflows.background import workflow_run_in_background
from workflows.engine import RunResult, input_parameters
from workflows.live import run_group
from workflows.models import WorkflowRun
from workflows.runs import (
    WorkflowExecution,
    run_expired_if_due,
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
        if run.status == WorkflowRun.Status.SUSPENDED:
            run = await database_sync_to_async(run_expired_if_due)(run)
        await self.send_json(aiflowy_wire.run_status_body(run, run.steps.all()))


class WorkflowEventsSocketConsumer(ApiKeySocketConsumer):
    """`ws://…/ws/v1/workflow/events`: a run's node events live, from whichever process runs
    it (channel-layer groups, see `workflows.live`). Frames, each with an optional
    `requestId` that every answer to it carries:

    - `{"action": "run", "id": …, "variables": {…}}` starts a background run and follows it
      (`runAccepted`, then its events);
    - `{"action": "subscribe", "runId": …}` follows a running or background run started with
      the same key (`subscribed`, then its events; a run already at rest answers its
      `runFinished` at once).

    Events are `nodeStarted`, `nodeFinished` and a last `runFinished` per run (status
    `succeeded`, `failed`, `timeout`, `cancelled` or `suspended`); a refused request gets an
    `error` frame with AIFlowy's error body. The key is checked with every frame.
    """

    channel_layer_alias = "default"
    wire = workflow_wire

    async def websocket_connect(self, message: dict) -> None:
        self.following: dict[str, Any] = {}
        await super().websocket_connect(message)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        request_id = content.get("requestId") if isinstance(content, dict) else None
        try:
            if not isinstance(content, dict):
                raise BadRequest("Each frame must be a JSON object.", code="invalid_json")
            api_key = await self.authenticate()
            action = content.get("action")
            if action == "subscribe":
                await self.subscribe(api_key, parse_run_id(content, None), request_id)
            elif action == "run":
                await self.start(api_key, content, request_id)
            else:
                raise BadRequest('"action" must be "run" or "subscribe".', param="action")
        except Exception as exc:
            await self.send_error(exc, requestId=request_id)

    async def follow(self, run_id: uuid.UUID, request_id: Any) -> None:
        self.following[str(run_id)] = request_id
        await self.channel_layer.group_add(run_group(run_id), self.channel_name)

    async def unfollow(self, run_id: str) -> None:
        self.following.pop(run_id, None)
        await self.channel_layer.group_discard(run_group(run_id), self.channel_name)

    async def start(self, api_key: ApiKeyPrincipal, content: dict, request_id: Any) -> None:
        request = parse_run({k: v for k, v in content.items() if k in ("id", "variables")})
        workflow = await workflow_for_key(api_key, request.workflow_id)
        execution = WorkflowExecution(
            workflow=workflow,
            inputs=workflow_inputs_check(workflow, request.variables),
            api_key_id=api_key.id,
            source=WorkflowRun.Source.SOCKET,
        )
        run_id = str(execution.run_id)
        await self.follow(execution.run_id, request_id)
        try:
            status = await workflow_run_in_background(execution)
        except Exception:
            await self.unfollow(run_id)
            raise
        await self.send_json(
            {"event": "runAccepted", "runId": run_id, "status": status, "requestId": request_id}
        )

    async def subscribe(self, api_key: ApiKeyPrincipal, run_id: uuid.UUID, request_id: Any) -> None:
        get = database_sync_to_async(workflow_run_get)
        if await get(run_id=run_id, api_key_id=api_key.id) is None:
            raise NotFound(f"There is no run {run_id} for this API key.", code="run_not_found")
        await self.follow(run_id, request_id)
        # Read again after joining the group: a run that ended in between is answered here.
        run = await get(run_id=run_id, api_key_id=api_key.id)
        if run is not None and run.status in WorkflowRun.FINISHED:
            body = {
                "event": "runFinished",
                "runId": str(run_id),
                "status": run.status,
                "result": run.result,
                "error": run.error or None,
            }
            await self.workflow_event({"run": str(run_id), "event": body})
            return
        await self.send_json(
            {
                "event": "subscribed",
                "runId": str(run_id),
                "status": run.status if run else None,
                "requestId": request_id,
            }
        )

    async def workflow_event(self, message: dict) -> None:
        """An event of a followed run, from the channel layer."""
        run_id = message.get("run")
        if run_id not in self.following:
            return
        body = message["event"]
        await self.send_json({**body, "requestId": self.following[run_id]})
        if body.get("event") == "runFinished":
            await self.unfollow(run_id)

    async def disconnect(self, code: int) -> None:
        for run_id in list(self.following):
            await self.unfollow(run_id)
        await super().disconnect(code)
