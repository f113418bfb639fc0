"""A run that waits for a person answers `run`, `runStatus`, `resume` and its stream exactly as
the OpenAPI document says (`waitingFor`, `expiresAt`): the fuzz test never reaches a suspended
run, so this one walks it through the live server and checks each answer with schemathesis
against the served document."""

from __future__ import annotations

import pytest
import schemathesis

from config.openapi import schema
from tests.workflows.conftest import sse_events
from tests.workflows.test_tinyflow_semantics import confirm_flow

pytestmark = pytest.mark.django_db(transaction=True)

DOCUMENT = schemathesis.openapi.from_dict(schema())


def conforms(path: str, response) -> None:
    """Raises (naming the mismatch) unless the answer is documented for `path`."""
    DOCUMENT[path]["POST"].validate_response(response)


@pytest.mark.parametrize("family", ["workflow", "aiWorkflow"])
def test_a_suspended_run_answers_as_documented(http, make_workflow, make_key, family):
    base = f"/api/v1/{family}/external"
    workflow = make_workflow(confirm_flow())
    key = make_key(workflow_ids=[workflow.id])
    headers = {"Authorization": f"Bearer {key}"}
    body = {"id": workflow.id, "variables": {"cities": ["厦门", "福州"]}}

    started = http.post(f"{base}/run", headers=headers, json=body)
    assert started.json()["status"] == "suspended"
    conforms(f"{base}/run", started)
    run_id = started.json()["runId"]

    status = http.post(f"{base}/runStatus", headers=headers, json={"runId": run_id})
    assert status.json()["waitingFor"]
    conforms(f"{base}/runStatus", status)

    refused = http.post(f"{base}/resume", headers=headers, json={"runId": run_id, "values": 3})
    assert refused.status_code == 400
    conforms(f"{base}/resume", refused)

    resumed = http.post(
        f"{base}/resume",
        headers=headers,
        json={"runId": run_id, "values": {"confirm": "yes", "city": "福州"}},
    )
    assert resumed.json()["result"] == {"confirmed": "yes", "city": "福州"}
    conforms(f"{base}/resume", resumed)

    streamed = http.post(f"{base}/run", headers=headers, json={**body, "stream": True})
    name, last = sse_events(streamed.text)[-1]
    assert (name, last["status"]) == ("runFinished", "suspended")
    conforms(f"{base}/run", streamed)
