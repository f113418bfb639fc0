"""The issue's "done when", end to end: an AIFlowy-format definition (start → LLM → HTTP → end,
with conditions) is imported in the admin, validated, run through external/run with an API key,
and its run shows step by step in the admin."""

from __future__ import annotations

import io
import json

from django.urls import reverse

from tests.workflows.conftest import data_file, finished_run
from workflows.models import Workflow


def test_an_aiflowy_workflow_imports_runs_with_a_key_and_shows_its_steps(
    admin_client, private_http, make_key, llm_bot, loopback_service, fake_upstream
):
    text = json.dumps(data_file("aiflowy_llm_http_condition.json"), ensure_ascii=False)
    text = text.replace("SERVICE_URL", loopback_service.url).replace("BOT_ID", str(llm_bot.id))
    upload = io.BytesIO(text.encode())
    upload.name = "ip-explain.json"

    imported = admin_client.post(reverse("admin:workflows_workflow_import"), {"file": upload})
    assert imported.status_code == 302
    workflow = Workflow.objects.get()
    assert workflow.title == "IP 解读"

    api_key = make_key(workflow_ids=[workflow.id])
    params = private_http.post(
        "/api/v1/workflow/external/getRunningParams",
        headers={"Authorization": api_key},
        data={"id": workflow.id},
    ).json()
    assert [p["name"] for p in params["parameters"]] == ["ipAddress", "detail"]

    response = private_http.post(
        "/api/v1/workflow/external/run",
        headers={"Authorization": api_key},
        json={
            "id": str(workflow.id),
            "variables": {"ipAddress": "218.86.179.185", "detail": "true"},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["errorCode"] == 0
    assert body["result"] == {
        "normalised": "Echo: 218.86.179.185",
        "city": "厦门",
        "status": 200,
        "brief": None,
    }
    # The old single-brace prompt reached the model, and the LLM output reached the HTTP call.
    assert fake_upstream.requests[-1]["messages"][-1]["content"] == "218.86.179.185"
    request = loopback_service.requests[-1]
    assert request["path"] == "/ip/218.86.179.185"
    assert request["headers"]["X-Normalised"] == "Echo: 218.86.179.185"

    run = finished_run(run_id=body["runId"])
    assert run.api_key.allowed_workflows.get() == workflow
    steps = [(s.node_id, s.status) for s in run.steps.all()]
    assert steps[:2] == [("start1", "succeeded"), ("llm1", "succeeded")]
    assert sorted(steps[2:4]) == [("brief1", "skipped"), ("http1", "succeeded")]
    assert steps[4] == ("end1", "succeeded")

    page = admin_client.get(reverse("admin:workflows_workflowrun_change", args=[run.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    for node_id in ("start1", "llm1", "http1", "brief1", "end1"):
        assert node_id in html
    assert "skipped" in html
    assert "厦门" in html
    assert "218.86.179.185" in html
    assert "/ip/218.86.179.185" in html
