"""Definitions written as Tinyflow's documentation and editor shape them — a loop, a
``_state`` join, a confirm step — run end to end through the workflow HTTP API and give
Tinyflow's answers; a suspended run resumes through ``external/resume``."""

from __future__ import annotations

import io
from datetime import timedelta

from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from tests.workflows.conftest import finished_run, sse_events
from workflows.models import WorkflowRun

RUN = "/api/v1/workflow/external/run"
RESUME = "/api/v1/workflow/external/resume"
STATUS = "/api/v1/workflow/external/runStatus"


def start(*parameters: dict) -> dict:
    return {
        "id": "start_1",
        "type": "startNode",
        "data": {"title": "开始", "parameters": list(parameters)},
    }


def edge(source: str, target: str, **data) -> dict:
    return {"id": f"xy-edge__{source}-{target}", "source": source, "target": target, "data": data}


def confirm_flow() -> dict:
    """start → confirm (choose a city among the caller's list) → end, as the editor saves it."""
    return {
        "nodes": [
            start(
                {"name": "cities", "dataType": "Array", "refType": "input", "required": True},
            ),
            {
                "id": "confirm_1",
                "type": "confirmNode",
                "data": {
                    "title": "确认",
                    "message": "请选择城市",
                    "confirms": [
                        {
                            "name": "city",
                            "description": "城市",
                            "dataType": "String",
                            "refType": "ref",
                            "ref": "start_1.cities",
                        }
                    ],
                },
            },
            {
                "id": "end_1",
                "type": "endNode",
                "data": {
                    "outputDefs": [
                        {"name": "confirmed", "refType": "ref", "ref": "confirm_1.confirm"},
                        {"name": "city", "refType": "ref", "ref": "confirm_1.city"},
                    ]
                },
            },
        ],
        "edges": [edge("start_1", "confirm_1"), edge("confirm_1", "end_1")],
    }


def test_a_confirm_step_suspends_and_resumes_with_the_same_key(http, make_workflow, make_key):
    workflow = make_workflow(confirm_flow())
    key = make_key(workflow_ids=[workflow.id])
    started = http.post(
        RUN,
        headers={"Authorization": key},
        json={"id": workflow.id, "variables": {"cities": ["厦门", "福州"]}},
    )
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["errorCode"] == 0
    assert body["status"] == "suspended"
    run_id = body["runId"]
    [waiting] = body["waitingFor"]
    assert waiting["nodeId"] == "confirm_1"
    assert waiting["message"] == "请选择城市"
    fields = {f["shortName"]: f for f in waiting["fields"]}
    assert fields["confirm"]["enums"] == ["yes", "no"]
    assert fields["confirm"]["name"] == "confirm__confirm_1"
    assert fields["city"]["enums"] == ["厦门", "福州"]
    assert fields["city"]["label"] == "城市"

    status = http.post(STATUS, headers={"Authorization": key}, json={"runId": run_id}).json()
    assert status["status"] == "suspended"
    assert status["waitingFor"] == body["waitingFor"]
    assert status["expiresAt"]

    # Another key cannot resume it; bad values are refused in AIFlowy's envelope.
    other = make_key(workflow_ids=[workflow.id])
    refused = http.post(RESUME, headers={"Authorization": other}, json={"runId": run_id})
    assert refused.status_code == 404
    assert refused.json()["errorCode"] != 0
    bad = http.post(
        RESUME,
        headers={"Authorization": key},
        json={"runId": run_id, "values": {"confirm": "maybe", "city": "厦门"}},
    )
    assert bad.status_code == 400
    assert "yes, no" in bad.json()["message"]

    resumed = http.post(
        RESUME,
        headers={"Authorization": key},
        json={"runId": run_id, "values": {"confirm__confirm_1": "yes", "city": "福州"}},
    )
    assert resumed.status_code == 200, resumed.text
    assert resumed.json() == {
        "errorCode": 0,
        "runId": run_id,
        "result": {"confirmed": "yes", "city": "福州"},
    }
    run = finished_run(run_id=run_id)
    assert run.status == "succeeded"
    assert run.resume_state is None
    steps = list(run.steps.values_list("node_id", "status"))
    assert ("confirm_1", "suspended") in steps
    assert steps[-2:] == [("confirm_1", "succeeded"), ("end_1", "succeeded")]

    again = http.post(RESUME, headers={"Authorization": key}, json={"runId": run_id})
    assert again.status_code == 400
    assert "is not waiting for confirmation" in again.json()["message"]


def test_a_suspended_run_expires(http, make_workflow, make_key):
    workflow = make_workflow(confirm_flow())
    key = make_key(workflow_ids=[workflow.id])
    run_ids = [
        http.post(
            RUN,
            headers={"Authorization": key},
            json={"id": workflow.id, "variables": {"cities": ["a"]}},
        ).json()["runId"]
        for _ in range(3)
    ]
    for run_id in run_ids:
        finished_run(run_id=run_id)
    past = timezone.now() - timedelta(seconds=1)
    WorkflowRun.objects.filter(run_id__in=run_ids).update(expires_at=past)

    # Whoever comes first expires it: the sweep, a status call, a resume call.
    call_command("expireworkflowruns", stdout=io.StringIO())
    assert WorkflowRun.objects.get(run_id=run_ids[0]).status == "failed"
    WorkflowRun.objects.filter(run_id__in=run_ids[1:]).update(status="suspended")
    status = http.post(STATUS, headers={"Authorization": key}, json={"runId": run_ids[1]}).json()
    assert status["status"] == "failed"
    assert "expired" in status["error"]
    expired = http.post(
        RESUME,
        headers={"Authorization": key},
        json={"runId": run_ids[2], "values": {"confirm": "yes", "city": "a"}},
    )
    assert expired.status_code == 400
    assert "expired" in expired.json()["message"]
    assert WorkflowRun.objects.get(run_id=run_ids[2]).status == "failed"


def test_a_required_input_at_a_later_node_suspends_the_run(http, make_workflow, make_key):
    # ChainState.resolveParameters: a required INPUT parameter without a value suspends.
    definition = {
        "nodes": [
            start(),
            {
                "id": "tpl_1",
                "type": "templateNode",
                "data": {
                    "template": "Hello #(name)",
                    "parameters": [
                        {
                            "name": "name",
                            "refType": "input",
                            "required": True,
                            "description": "姓名",
                        }
                    ],
                    "outputDefs": [{"name": "output"}],
                },
            },
            {
                "id": "end_1",
                "type": "endNode",
                "data": {"outputDefs": [{"name": "text", "ref": "tpl_1.output"}]},
            },
        ],
        "edges": [edge("start_1", "tpl_1"), edge("tpl_1", "end_1")],
    }
    workflow = make_workflow(definition)
    key = make_key(workflow_ids=[workflow.id])
    body = http.post(RUN, headers={"Authorization": key}, json={"id": workflow.id}).json()
    assert body["status"] == "suspended"
    assert [f["name"] for f in body["waitingFor"][0]["fields"]] == ["name"]
    resumed = http.post(
        RESUME,
        headers={"Authorization": key},
        json={"runId": body["runId"], "values": {"name": " Ann "}},
    ).json()
    assert resumed["result"] == {"text": "Hello Ann"}


def test_a_loop_node_and_a_state_join_give_tinyflows_answers(http, make_workflow, make_key):
    """A loopNode over the caller's list whose body is a code node (loopItem/index), two
    branches joined by a node guarded with ``_state.isUpstreamFullyExecuted()``, and a node
    loop stopped by ``_state.getExecuteCount()``."""
    definition = {
        "nodes": [
            start({"name": "words", "dataType": "Array", "refType": "input", "required": True}),
            {
                "id": "loop_1",
                "type": "loopNode",
                "data": {
                    "title": "循环",
                    "loopVars": [{"name": "loopVar", "refType": "ref", "ref": "start_1.words"}],
                    "outputDefs": [{"name": "shout", "refType": "ref", "ref": "code_1.shout"}],
                },
            },
            {
                "id": "code_1",
                "type": "codeNode",
                "parentId": "loop_1",
                "data": {
                    "engine": "js",
                    "code": "_result.shout = index + ':' + word.toUpperCase();",
                    "parameters": [
                        {"name": "word", "refType": "ref", "ref": "loop_1.loopItem"},
                        {"name": "index", "refType": "ref", "ref": "loop_1.index"},
                    ],
                },
            },
            {
                "id": "count_1",
                "type": "codeNode",
                "data": {
                    "engine": "js",
                    "code": "_result.times = _state.getExecuteCount();",
                    "loopEnable": True,
                    "loopIntervalMs": 0,
                    "loopBreakCondition": "_state.getExecuteCount() >= 3",
                    "outputDefs": [{"name": "times"}],
                },
            },
            {
                "id": "join_1",
                "type": "codeNode",
                "data": {
                    "engine": "js",
                    "condition": "_state.isUpstreamFullyExecuted()",
                    "code": "_result.text = shout.join(' ') + ' x' + times;",
                    "parameters": [
                        {"name": "shout", "refType": "ref", "ref": "loop_1.shout"},
                        {"name": "times", "refType": "ref", "ref": "count_1.times"},
                    ],
                    "outputDefs": [{"name": "text"}],
                },
            },
            {
                "id": "end_1",
                "type": "endNode",
                "data": {"outputDefs": [{"name": "text", "ref": "join_1.text"}]},
            },
        ],
        "edges": [
            edge("start_1", "loop_1"),
            edge("loop_1", "code_1"),
            edge("loop_1", "join_1"),
            edge("start_1", "count_1"),
            edge("count_1", "join_1"),
            edge("join_1", "end_1"),
        ],
    }
    workflow = make_workflow(definition)
    key = make_key(workflow_ids=[workflow.id])
    response = http.post(
        RUN,
        headers={"Authorization": key},
        json={"id": workflow.id, "variables": {"words": ["a", "b"]}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"text": "0:A 1:B x3"}
    run = finished_run(run_id=response.json()["runId"])
    loops = [s.meta.get("loop") for s in run.steps.all() if s.node_id == "code_1"]
    assert loops == [{"nodeId": "loop_1", "index": 0}, {"nodeId": "loop_1", "index": 1}]
    assert [s.node_id for s in run.steps.all()].count("count_1") == 3


def test_the_admin_lists_suspended_runs_and_an_operator_confirms_one(
    admin_client, http, make_workflow, make_key
):
    workflow = make_workflow(confirm_flow())
    key = make_key(workflow_ids=[workflow.id])
    run_id = http.post(
        RUN,
        headers={"Authorization": key},
        json={"id": workflow.id, "variables": {"cities": ["厦门", "福州"]}},
    ).json()["runId"]
    run = finished_run(run_id=run_id)

    listing = admin_client.get(
        reverse("admin:workflows_workflowrun_changelist"), {"status": "suspended"}
    )
    assert run_id in listing.content.decode()
    page = admin_client.get(reverse("admin:workflows_workflowrun_change", args=[run.pk]))
    confirm_url = reverse("admin:workflows_workflowrun_confirm", args=[run.pk])
    assert confirm_url in page.content.decode()

    form = admin_client.get(confirm_url)
    text = form.content.decode()
    assert "请选择城市" in text
    assert 'value="福州"' in text
    done = admin_client.post(
        confirm_url, {"confirm-confirm__confirm_1": "no", "confirm-city__confirm_1": "福州"}
    )
    assert done.status_code == 302
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.result == {"confirmed": "no", "city": "福州"}
    assert run.waiting_for is None


def test_a_streamed_run_that_suspends_ends_with_what_it_waits_for(http, make_workflow, make_key):
    workflow = make_workflow(confirm_flow())
    key = make_key(workflow_ids=[workflow.id])
    response = http.post(
        RUN,
        headers={"Authorization": key},
        json={"id": workflow.id, "variables": {"cities": ["厦门"]}, "stream": True},
    )
    events = sse_events(response.text)
    name, last = events[-1]
    assert name == "runFinished"
    assert last["status"] == "suspended"
    assert last["waitingFor"][0]["nodeId"] == "confirm_1"
    assert [f["shortName"] for f in last["waitingFor"][0]["fields"]] == ["confirm", "city"]
    resumed = http.post(
        RESUME,
        headers={"Authorization": key},
        json={"runId": last["runId"], "values": {"confirm": "yes", "city": "厦门"}},
    )
    assert resumed.json()["result"] == {"confirmed": "yes", "city": "厦门"}
