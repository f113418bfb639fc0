"""external/run through Daphne: typed inputs, validation errors naming the parameter, the
reference ipAddress example, LLM nodes on the fake upstream, SSRF refusal, failures and
scope; every run recorded with its steps."""

from __future__ import annotations

import json
import socket

import pytest

from tests.conftest import wait_until
from tests.workflows.conftest import data_file, finished_run
from workflows.models import WorkflowRun

RUN = "/api/v1/workflow/external/run"
FAMILIES = ["/api/v1/workflow/external", "/api/v1/aiWorkflow/external"]


def typed_definition() -> dict:
    """start (one parameter per data type) → end (echoes them all)."""
    types = {
        "text": "String",
        "count": "Number",
        "flag": "Boolean",
        "options": "Object",
        "items": "Array",
        "photo": "File",
    }
    return {
        "nodes": [
            {
                "id": "start",
                "type": "startNode",
                "data": {
                    "title": "Start",
                    "parameters": [
                        {"name": name, "dataType": data_type, "refType": "input", "required": True}
                        for name, data_type in types.items()
                    ]
                    + [{"name": "note", "dataType": "String", "refType": "input"}],
                },
            },
            {
                "id": "end",
                "type": "endNode",
                "data": {
                    "title": "End",
                    "outputDefs": [
                        {"name": name, "refType": "ref", "ref": f"start.{name}"}
                        for name in [*types, "note"]
                    ],
                },
            },
        ],
        "edges": [{"id": "e1", "source": "start", "target": "end"}],
    }


def llm_definition(bot_ref: str | int, *, out_type: str = "text") -> dict:
    return {
        "nodes": [
            {
                "id": "start",
                "type": "startNode",
                "data": {
                    "parameters": [{"name": "question", "dataType": "String", "required": True}]
                },
            },
            {
                "id": "ask",
                "type": "llmNode",
                "data": {
                    "title": "Ask",
                    "llmId": bot_ref,
                    "systemPrompt": "Answer briefly.",
                    "userPrompt": "Q: {{question}}",
                    "outType": out_type,
                    "parameters": [{"name": "question", "refType": "ref", "ref": "start.question"}],
                },
            },
            {
                "id": "end",
                "type": "endNode",
                "data": {"outputDefs": [{"name": "answer", "refType": "ref", "ref": "ask.output"}]},
            },
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "ask"},
            {"id": "e2", "source": "ask", "target": "end"},
        ],
    }


def http_definition(url: str) -> dict:
    return {
        "nodes": [
            {"id": "start", "type": "startNode", "data": {"parameters": []}},
            {
                "id": "fetch",
                "type": "httpNode",
                "data": {"title": "Fetch", "method": "get", "url": url, "bodyType": "none"},
            },
            {
                "id": "end",
                "type": "endNode",
                "data": {"outputDefs": [{"name": "body", "refType": "ref", "ref": "fetch.body"}]},
            },
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "fetch"},
            {"id": "e2", "source": "fetch", "target": "end"},
        ],
    }


GOOD_VARIABLES = {
    "text": "hello",
    "count": "42",
    "flag": "true",
    "options": '{"a": 1}',
    "items": [1, 2],
    "photo": "https://example.com/cat.png",
}


@pytest.mark.parametrize("family", FAMILIES)
def test_it_runs_with_typed_inputs_and_returns_the_end_outputs(
    http, api_key, make_workflow, family
):
    workflow = make_workflow(typed_definition())
    response = http.post(
        f"{family}/run",
        headers={"Authorization": api_key},
        json={"id": str(workflow.id), "variables": GOOD_VARIABLES},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["errorCode"] == 0
    assert body["result"] == {
        "text": "hello",
        "count": 42,
        "flag": True,
        "options": {"a": 1},
        "items": [1, 2],
        "photo": "https://example.com/cat.png",
        "note": None,
    }
    run = finished_run(run_id=body["runId"])
    assert run.status == WorkflowRun.Status.SUCCEEDED
    assert run.workflow == workflow
    assert run.source == WorkflowRun.Source.API
    assert run.inputs["count"] == 42
    assert run.api_key.name == "test key"
    assert run.duration_ms is not None
    assert [(s.node_id, s.status) for s in run.steps.all()] == [
        ("start", "succeeded"),
        ("end", "succeeded"),
    ]


@pytest.mark.parametrize(
    ("change", "parameter"),
    [
        ({"text": None}, "text"),
        ({"count": ""}, "count"),
        ({"count": "many"}, "count"),
        ({"flag": "perhaps"}, "flag"),
        ({"options": "{not json"}, "options"),
        ({"options": [1]}, "options"),
        ({"items": "nope"}, "items"),
        ({"photo": 12}, "photo"),
    ],
)
def test_each_invalid_input_is_a_400_naming_the_parameter(
    http, api_key, make_workflow, change, parameter
):
    workflow = make_workflow(typed_definition())
    variables = {**GOOD_VARIABLES, **change}
    variables = {k: v for k, v in variables.items() if v is not None}
    response = http.post(
        RUN, headers={"Authorization": api_key}, json={"id": workflow.id, "variables": variables}
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["errorCode"] == 400
    assert f'"{parameter}"' in body["message"]
    assert body["param"] == parameter


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"variables": {}}, "'id'"),
        ({"id": "x1", "variables": {}}, "'id'"),
        ({"id": 1, "variables": [1]}, "'variables'"),
        ({"id": 1, "variables": "text=1"}, "'variables'"),
        ({"id": 1, "stream": "yes"}, "'stream'"),
        ({"id": 1, "stream": True, "async": True}, "'async'"),
    ],
)
def test_bad_request_bodies_are_a_400(http, api_key, body, fragment):
    response = http.post(RUN, headers={"Authorization": api_key}, json=body)
    assert response.status_code == 400
    assert fragment in response.json()["message"]


def test_run_needs_json(http, api_key):
    response = http.post(RUN, headers={"Authorization": api_key}, content=b"id=1")
    assert response.status_code == 400
    assert "JSON" in response.json()["message"]


def test_the_reference_ip_address_example_runs_against_a_loopback_service(
    private_http, api_key, make_workflow, loopback_service
):
    definition = json.loads(
        json.dumps(data_file("aiflowy_ip_lookup.json")).replace("SERVICE_URL", loopback_service.url)
    )
    workflow = make_workflow(definition, title="获取IP信息")
    response = private_http.post(
        RUN,
        headers={"Authorization": api_key},
        json={"id": str(workflow.id), "variables": {"ipAddress": "218.86.179.185"}},
    )
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["info"] == {
        "ip": "218.86.179.185",
        "country": "中国",
        "region": "福建",
        "city": "厦门",
    }
    assert result["city"] == "厦门"
    assert result["status"] == 200
    assert loopback_service.requests[-1]["path"] == "/ip/218.86.179.185"
    run = finished_run(run_id=response.json()["runId"])
    http_step = run.steps.get(node_id="http_query")
    assert http_step.inputs == {"ip": "218.86.179.185"}
    assert http_step.outputs["statusCode"] == 200
    assert http_step.meta["url"].endswith("/ip/218.86.179.185")


def test_the_default_server_refuses_loopback_addresses_and_names_the_node(
    http, api_key, make_workflow, loopback_service
):
    before = len(loopback_service.requests)
    workflow = make_workflow(http_definition(f"{loopback_service.url}/ip/1.2.3.4"))
    response = http.post(RUN, headers={"Authorization": api_key}, json={"id": workflow.id})
    assert response.status_code == 500
    body = response.json()
    assert body["errorCode"] == 500
    assert 'node "fetch" (Fetch) failed' in body["message"]
    assert "refusing to connect" in body["message"]
    assert body["nodeId"] == "fetch"
    assert len(loopback_service.requests) == before
    run = finished_run(run_id=body["runId"])
    assert run.status == WorkflowRun.Status.FAILED
    assert run.failed_node_id == "fetch"
    assert run.result is None
    step = run.steps.get(node_id="fetch")
    assert step.status == "failed"
    assert "refusing to connect" in step.error


def test_a_failing_node_is_named_and_recorded(
    private_http, api_key, make_workflow, loopback_service
):
    workflow = make_workflow(http_definition(f"{loopback_service.url}/status/503"))
    response = private_http.post(RUN, headers={"Authorization": api_key}, json={"id": workflow.id})
    assert response.status_code == 500
    body = response.json()
    assert body["message"].startswith('node "fetch" (Fetch) failed:')
    assert "503" in body["message"]
    run = finished_run(run_id=body["runId"])
    assert (run.status, run.failed_node_id) == (WorkflowRun.Status.FAILED, "fetch")
    assert "HTTP 503" in run.error
    assert [(s.node_id, s.status) for s in run.steps.all()] == [
        ("start", "succeeded"),
        ("fetch", "failed"),
    ]


@pytest.mark.parametrize("by", ["id", "id-as-string", "name"])
def test_an_llm_node_answers_through_the_named_bot(
    http, api_key, make_workflow, llm_bot, fake_upstream, by
):
    bot_ref = {"id": llm_bot.id, "id-as-string": str(llm_bot.id), "name": llm_bot.name}[by]
    workflow = make_workflow(llm_definition(bot_ref))
    response = http.post(
        RUN,
        headers={"Authorization": api_key},
        json={"id": workflow.id, "variables": {"question": "why is the sky blue"}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"answer": "Echo: Q: why is the sky blue"}
    sent = fake_upstream.requests[-1]
    assert sent["model"] == "fake-model"
    assert sent["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Q: why is the sky blue"},
    ]
    assert sent["temperature"] == 0.5
    assert not sent.get("stream")
    step = finished_run(run_id=response.json()["runId"]).steps.get(node_id="ask")
    assert step.meta["userPrompt"] == "Q: why is the sky blue"
    assert step.meta["completionTokens"] > 0


def test_an_llm_node_uses_the_bot_model_and_system_prompt(
    http, api_key, make_workflow, make_bot, fake_upstream
):
    bot = make_bot(name="poet", model="poet-model", system_prompt="You rhyme.")
    definition = llm_definition(bot.id)
    definition["nodes"][1]["data"]["systemPrompt"] = ""
    workflow = make_workflow(definition)
    response = http.post(
        RUN,
        headers={"Authorization": api_key},
        json={"id": workflow.id, "variables": {"question": "cats"}},
    )
    assert response.status_code == 200
    sent = fake_upstream.requests[-1]
    assert sent["model"] == "poet-model"
    assert sent["messages"][0] == {"role": "system", "content": "You rhyme."}
    finished_run(run_id=response.json()["runId"])


@pytest.mark.parametrize(
    ("bot_ref", "fragment"),
    [("no-such-bot", 'llmId "no-such-bot" names no bot'), (987654, "names no bot")],
)
def test_an_unknown_bot_fails_the_llm_node(http, api_key, make_workflow, bot_ref, fragment):
    workflow = make_workflow(llm_definition(bot_ref))
    response = http.post(
        RUN,
        headers={"Authorization": api_key},
        json={"id": workflow.id, "variables": {"question": "x"}},
    )
    assert response.status_code == 500
    assert 'node "ask" (Ask) failed' in response.json()["message"]
    assert fragment in response.json()["message"]
    assert finished_run(run_id=response.json()["runId"]).failed_node_id == "ask"


def test_an_upstream_failure_fails_the_node_without_leaking_details(
    http, api_key, make_workflow, make_bot
):
    failing = make_bot(model="fail500")
    workflow = make_workflow(llm_definition(failing.id))
    response = http.post(
        RUN,
        headers={"Authorization": api_key},
        json={"id": workflow.id, "variables": {"question": "x"}},
    )
    assert response.status_code == 500
    message = response.json()["message"]
    assert 'node "ask" (Ask) failed' in message
    assert "HTTP 500" in message
    assert "secret upstream detail" not in message
    finished_run(run_id=response.json()["runId"])


def test_the_demo_workflow_runs_on_the_echo_provider(http, api_key, make_workflow):
    from bots.models import Bot, LlmProvider
    from demo.workflows import demo_workflow_definition

    echo = LlmProvider.objects.create(name="echo", kind=LlmProvider.Kind.ECHO)
    bot = Bot.objects.create(name="demo", provider=echo)
    workflow = make_workflow(demo_workflow_definition(bot.id))
    response = http.post(
        RUN,
        headers={"Authorization": api_key},
        json={"id": workflow.id, "variables": {"topic": "the sea"}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {
        "sentence": "Echo: Write one sentence about the sea.",
        "text": "About the sea: Echo: Write one sentence about the sea.",
    }
    finished_run(run_id=response.json()["runId"])


def test_a_key_scoped_to_another_workflow_gets_403(http, make_key, make_workflow):
    allowed = make_workflow(typed_definition())
    other = make_workflow(typed_definition())
    key = make_key(workflow_ids=[allowed.id])
    response = http.post(
        RUN, headers={"Authorization": key}, json={"id": other.id, "variables": GOOD_VARIABLES}
    )
    assert response.status_code == 403
    assert response.json()["errorCode"] == 403
    ok = http.post(
        RUN, headers={"Authorization": key}, json={"id": allowed.id, "variables": GOOD_VARIABLES}
    )
    assert ok.status_code == 200
    finished_run(run_id=ok.json()["runId"])


def test_unknown_and_disabled_workflows_are_404(http, api_key, make_workflow):
    disabled = make_workflow(typed_definition(), enabled=False)
    for workflow_id in (999_999, disabled.id):
        response = http.post(RUN, headers={"Authorization": api_key}, json={"id": workflow_id})
        assert response.status_code == 404
        assert response.json()["errorCode"] == 404


def test_a_stored_definition_that_no_longer_validates_is_reported(http, api_key, make_workflow):
    workflow = make_workflow(typed_definition())
    type(workflow).objects.filter(pk=workflow.pk).update(definition={"nodes": []})
    response = http.post(RUN, headers={"Authorization": api_key}, json={"id": workflow.id})
    assert response.status_code == 500
    assert "definition is invalid" in response.json()["message"]


def test_it_needs_a_key(http, make_workflow):
    workflow = make_workflow(typed_definition())
    response = http.post(RUN, json={"id": workflow.id, "variables": GOOD_VARIABLES})
    assert response.status_code == 401


def test_a_client_that_goes_away_cancels_a_plain_run(
    live_server_url, api_key, make_workflow, make_bot, fake_upstream
):
    hanging = make_bot(model="hang")
    workflow = make_workflow(llm_definition(hanging.id))
    asked_before = sum(1 for r in fake_upstream.requests if r.get("model") == "hang")
    host, port = live_server_url.removeprefix("http://").split(":")
    body = json.dumps({"id": workflow.id, "variables": {"question": "wait"}}).encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST {RUN} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        wait_until(
            lambda: (
                sum(1 for r in fake_upstream.requests if r.get("model") == "hang") > asked_before
            )
        )
    run = finished_run(workflow=workflow)
    assert run.status == WorkflowRun.Status.CANCELLED
    assert {step.node_id: step.status for step in run.steps.all()} == {
        "start": "succeeded",
        "ask": "cancelled",
    }
