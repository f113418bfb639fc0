"""external/run with `"async": true` and the runStatus endpoint.

Background runs are durable jobs: run by a job worker process from the PostgreSQL queue
(the `workflow_worker` fixture starts one then), or asyncio tasks of the web process in the
embedded mode (SQLite), so these tests exercise whichever mode the suite runs in.
"""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import wait_until
from tests.workflows.test_run import (
    GOOD_VARIABLES,
    http_definition,
    llm_definition,
    typed_definition,
)
from workflows.models import WorkflowRun

RUN = "/api/v1/workflow/external/run"
STATUS = "/api/v1/workflow/external/runStatus"


@pytest.fixture(autouse=True)
def _background_runner(workflow_worker):
    return workflow_worker


def poll_status(http, api_key: str, run_id: str) -> dict:
    def finished():
        body = http.get(STATUS, headers={"Authorization": api_key}, params={"runId": run_id}).json()
        return body if body["status"] in WorkflowRun.FINISHED else None

    return wait_until(finished, timeout=30)


def start_async_run(http, api_key: str, workflow) -> str:
    """Start `workflow` in the background with valid inputs; its run id."""
    return http.post(
        RUN,
        headers={"Authorization": api_key},
        json={"id": workflow.id, "variables": GOOD_VARIABLES, "async": True},
    ).json()["runId"]


def test_an_async_run_answers_at_once_and_its_status_gives_the_result(
    http, api_key, make_workflow, llm_bot
):
    workflow = make_workflow(llm_definition(llm_bot.id))
    response = http.post(
        RUN,
        headers={"Authorization": api_key},
        json={"id": workflow.id, "variables": {"question": "later"}, "async": True},
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["errorCode"] == 0
    assert accepted["status"] == "queued"
    run_id = accepted["runId"]
    assert WorkflowRun.objects.filter(run_id=run_id).exists()

    status = poll_status(http, api_key, run_id)
    assert status["errorCode"] == 0
    assert status["runId"] == run_id
    assert status["workflowId"] == workflow.id
    assert status["status"] == "succeeded"
    assert status["result"] == {"answer": "Echo: Q: later"}
    assert status["error"] is None
    assert status["durationMs"] is not None
    assert [(s["nodeId"], s["status"]) for s in status["steps"]] == [
        ("start", "succeeded"),
        ("ask", "succeeded"),
        ("end", "succeeded"),
    ]
    run = WorkflowRun.objects.get(run_id=run_id)
    assert run.source == WorkflowRun.Source.ASYNC
    assert run.steps.count() == 3


def test_status_works_by_post_and_on_the_aiflowy_path(http, api_key, make_workflow):
    workflow = make_workflow(typed_definition())
    run_id = start_async_run(http, api_key, workflow)
    poll_status(http, api_key, run_id)
    for body in ({"json": {"runId": run_id}}, {"data": {"runId": run_id}}):
        response = http.post(
            "/api/v1/aiWorkflow/external/runStatus", headers={"Authorization": api_key}, **body
        )
        assert response.status_code == 200
        assert response.json()["result"]["count"] == 42


def test_a_failing_async_run_reports_the_node(http, api_key, make_workflow, loopback_service):
    workflow = make_workflow(http_definition(f"{loopback_service.url}/ip/1.1.1.1"))
    run_id = http.post(
        RUN, headers={"Authorization": api_key}, json={"id": workflow.id, "async": True}
    ).json()["runId"]
    status = poll_status(http, api_key, run_id)
    assert status["status"] == "failed"
    assert status["result"] is None
    assert status["failedNodeId"] == "fetch"
    assert 'node "fetch" (Fetch) failed' in status["error"]


def test_inputs_are_checked_before_an_async_run_is_accepted(http, api_key, make_workflow):
    workflow = make_workflow(typed_definition())
    response = http.post(
        RUN,
        headers={"Authorization": api_key},
        json={"id": workflow.id, "variables": {}, "async": True},
    )
    assert response.status_code == 400
    assert '"text"' in response.json()["message"]
    assert not WorkflowRun.objects.exists()


def test_another_keys_run_does_not_exist(http, api_key, make_key, make_workflow):
    workflow = make_workflow(typed_definition())
    run_id = start_async_run(http, api_key, workflow)
    poll_status(http, api_key, run_id)
    stranger = make_key(name="stranger")
    response = http.get(STATUS, headers={"Authorization": stranger}, params={"runId": run_id})
    assert response.status_code == 404
    assert response.json()["errorCode"] == 404


@pytest.mark.parametrize(("params", "status"), [({}, 400), ({"runId": "nope"}, 400)])
def test_status_needs_a_run_id(http, api_key, params, status):
    response = http.get(STATUS, headers={"Authorization": api_key}, params=params)
    assert response.status_code == status
    assert "runId" in response.json()["message"]


def test_status_of_an_unknown_run_is_404(http, api_key):
    response = http.get(
        STATUS, headers={"Authorization": api_key}, params={"runId": str(uuid.uuid4())}
    )
    assert response.status_code == 404


def test_status_needs_a_key(http):
    response = http.get(STATUS, params={"runId": str(uuid.uuid4())})
    assert response.status_code == 401
