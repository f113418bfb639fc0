"""The workflow endpoints in the OpenAPI document (see `aiflowy.openapi`), under both path
families (`/api/v1/workflow/external/…` and `/api/v1/aiWorkflow/external/…`)."""

from __future__ import annotations

from aiflowy.openapi import Operation, return_type
from aiflowy.wire import aiflowy as aiflowy_wire
from aiflowy.wire import workflow as workflow_wire
from workflows.schemas import ResumeRequest, RunIdRequest, RunRequest, WorkflowIdRequest

ERROR = return_type(aiflowy_wire.error_body)
# A run (or a resumed one) either finishes with its result or waits for a person again.
RunOutcome = return_type(aiflowy_wire.run_result_body) | return_type(
    aiflowy_wire.run_suspended_body
)
FAMILIES = ("workflow", "aiWorkflow")


def _paths(name: str) -> tuple[str, ...]:
    return tuple(f"/api/v1/{family}/external/{name}" for family in FAMILIES)


OPERATIONS = [
    Operation(
        method="post",
        paths=_paths("run"),
        summary="Run a workflow",
        tag="Workflows",
        description="`{errorCode: 0, runId, result}`; with `stream: true` named events "
        "(`runStarted`, `nodeStarted`, `llmToken`, `nodeFinished`, always a last "
        "`runFinished`); with `async: true` a 202 and the run id (see runStatus). A run that "
        "reaches a human-input node answers `status: suspended` with `waitingFor` and "
        "`expiresAt`: continue it with `resume`.",
        body=RunRequest,
        responses={
            200: RunOutcome,
            202: return_type(aiflowy_wire.run_accepted_body),
        },
        named_events={
            "runStarted": workflow_wire.RunStartedEvent,
            "nodeStarted": workflow_wire.NodeStartedEvent,
            "llmToken": workflow_wire.LlmTokenEvent,
            "nodeFinished": workflow_wire.NodeFinishedEvent,
            "runFinished": workflow_wire.RunFinishedEvent,
        },
        error=ERROR,
        error_statuses=(400, 401, 403, 404, 429, 500, 503, 504),
    ),
    *(
        Operation(
            method=method,
            paths=_paths("getRunningParams"),
            summary="A workflow's title, description and start parameters",
            tag="Workflows",
            body=WorkflowIdRequest if method == "post" else None,
            form_body=method == "post",
            query=WorkflowIdRequest if method == "get" else None,
            responses={200: return_type(aiflowy_wire.running_params_body)},
            error=ERROR,
        )
        for method in ("get", "post")
    ),
    *(
        Operation(
            method=method,
            paths=_paths("runStatus"),
            summary="A run's state, and its result once finished",
            tag="Workflows",
            body=RunIdRequest if method == "post" else None,
            form_body=method == "post",
            query=RunIdRequest if method == "get" else None,
            responses={200: return_type(aiflowy_wire.run_status_body)},
            error=ERROR,
        )
        for method in ("get", "post")
    ),
    Operation(
        method="post",
        paths=_paths("resume"),
        summary="Continue a suspended run with a person's values",
        tag="Workflows",
        description="`{runId, values}` for a run started with the same key that waits for a "
        "person (`status: suspended`): answers like `run`, with the result or what the run "
        "waits for next. A run that is not suspended, or whose wait expired, is a 400.",
        body=ResumeRequest,
        responses={200: RunOutcome},
        error=ERROR,
        error_statuses=(400, 401, 403, 404, 429, 500, 503, 504),
    ),
]
