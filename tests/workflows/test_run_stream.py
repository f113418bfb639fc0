"""external/run with `"stream": true`: the run's events as SSE, ending with runFinished; a
client that goes away cancels the run, which is recorded as cancelled."""

from __future__ import annotations

from tests.conftest import assert_sse_headers, post_and_hang_up, wait_until
from tests.workflows.conftest import finished_run, sse_events
from tests.workflows.test_run import http_definition, llm_definition
from workflows.models import WorkflowRun

RUN = "/api/v1/workflow/external/run"


def test_it_streams_node_events_llm_tokens_and_run_finished(
    http, api_key, make_workflow, llm_bot, fake_upstream
):
    workflow = make_workflow(llm_definition(llm_bot.id))
    with http.stream(
        "POST",
        RUN,
        headers={"Authorization": api_key},
        json={"id": workflow.id, "variables": {"question": "one two three"}, "stream": True},
    ) as response:
        assert response.status_code == 200
        assert_sse_headers(response)
        text = response.read().decode()
    events = sse_events(text)
    names = [name for name, _ in events]
    assert all(name == data["event"] for name, data in events)
    assert names[0] == "runStarted"
    assert names[-1] == "runFinished"
    run_id = events[0][1]["runId"]
    assert events[0][1]["workflowId"] == workflow.id

    node_events = [(name, data["nodeId"]) for name, data in events if name.startswith("node")]
    assert node_events == [
        ("nodeStarted", "start"),
        ("nodeFinished", "start"),
        ("nodeStarted", "ask"),
        ("nodeFinished", "ask"),
        ("nodeStarted", "end"),
        ("nodeFinished", "end"),
    ]
    tokens = [data for name, data in events if name == "llmToken"]
    assert len(tokens) > 1
    assert {t["nodeId"] for t in tokens} == {"ask"}
    assert "".join(t["delta"] for t in tokens) == "Echo: Q: one two three"
    first_token = names.index("llmToken")
    assert names.index("nodeStarted", 2) < first_token < names.index("nodeFinished", 3)

    finished = events[-1][1]
    assert finished["status"] == "succeeded"
    assert finished["result"] == {"answer": "Echo: Q: one two three"}
    assert finished["runId"] == run_id
    assert fake_upstream.requests[-1]["stream"] is True

    run = finished_run(run_id=run_id)
    assert run.source == WorkflowRun.Source.STREAM
    assert run.status == WorkflowRun.Status.SUCCEEDED
    assert run.steps.count() == 3


def test_a_failed_streamed_run_ends_with_run_finished_naming_the_node(
    http, api_key, make_workflow, loopback_service
):
    workflow = make_workflow(http_definition(f"{loopback_service.url}/ip/1.1.1.1"))
    response = http.post(
        RUN, headers={"Authorization": api_key}, json={"id": workflow.id, "stream": True}
    )
    assert response.status_code == 200
    events = sse_events(response.text)
    name, finished = events[-1]
    assert name == "runFinished"
    assert finished["status"] == "failed"
    assert finished["result"] is None
    assert 'node "fetch" (Fetch) failed' in finished["error"]
    assert ("nodeFinished", "failed") in [
        (n, d.get("status")) for n, d in events if d.get("nodeId") == "fetch"
    ]
    assert finished_run(run_id=finished["runId"]).failed_node_id == "fetch"


def test_input_errors_are_plain_json_before_the_stream_starts(
    http, api_key, make_workflow, llm_bot
):
    workflow = make_workflow(llm_definition(llm_bot.id))
    response = http.post(
        RUN, headers={"Authorization": api_key}, json={"id": workflow.id, "stream": True}
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert '"question"' in response.json()["message"]


def test_a_client_disconnect_cancels_the_run_and_records_it(
    live_server_url, api_key, make_workflow, make_bot, fake_upstream
):
    slow = make_bot(model="slow")
    workflow = make_workflow(llm_definition(slow.id))
    abandoned_before = fake_upstream.abandoned_streams
    post_and_hang_up(
        live_server_url,
        RUN,
        api_key=api_key,
        marker=b"event: llmToken",
        count=3,
        body={"id": workflow.id, "variables": {"question": "tell me"}, "stream": True},
    )
    run = finished_run(workflow=workflow)
    assert run.status == WorkflowRun.Status.CANCELLED
    assert "went away" in run.error
    steps = {step.node_id: step.status for step in run.steps.all()}
    assert steps == {"start": "succeeded", "ask": "cancelled"}
    wait_until(lambda: fake_upstream.abandoned_streams > abandoned_before)
