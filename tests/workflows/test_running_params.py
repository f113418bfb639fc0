"""getRunningParams through Daphne: every request form AIFlowy callers use, both path families."""

from __future__ import annotations

import pytest

from tests.workflows.conftest import data_file

FAMILIES = ["/api/v1/workflow/external", "/api/v1/aiWorkflow/external"]

EXPECTED_PARAMETERS = [
    {
        "id": "3BE5GftyH8y7CUfF",
        "name": "ipAddress",
        "dataType": "String",
        "description": "IP地址",
        "refType": "INPUT",
        "required": True,
    }
]


@pytest.fixture
def ip_workflow(make_workflow):
    return make_workflow(
        data_file("aiflowy_ip_lookup.json"),
        title="获取IP信息",
        description="根据输入的IP地址，获取详细的IP信息。",
    )


def request_forms(workflow_id: int) -> dict:
    return {
        "form": {"method": "POST", "data": {"id": str(workflow_id)}},
        "json": {"method": "POST", "json": {"id": str(workflow_id)}},
        "query": {"method": "GET", "params": {"id": workflow_id}},
        "multipart": {"method": "POST", "files": {"id": (None, str(workflow_id))}},
    }


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("form", ["form", "json", "query", "multipart"])
def test_it_returns_title_description_and_start_parameters(
    http, api_key, ip_workflow, family, form
):
    options = request_forms(ip_workflow.id)[form]
    response = http.request(
        options.pop("method"),
        f"{family}/getRunningParams",
        headers={"Authorization": api_key},
        **options,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "errorCode": 0,
        "title": "获取IP信息",
        "description": "根据输入的IP地址，获取详细的IP信息。",
        "parameters": EXPECTED_PARAMETERS,
    }


def test_it_accepts_the_bearer_form_of_the_key(http, api_key, ip_workflow):
    response = http.post(
        "/api/v1/workflow/external/getRunningParams",
        headers={"Authorization": f"Bearer {api_key}"},
        data={"id": ip_workflow.id},
    )
    assert response.status_code == 200
    assert response.json()["parameters"][0]["name"] == "ipAddress"


def test_it_passes_form_hints_through(http, api_key, make_workflow):
    from demo.workflows import demo_workflow_definition

    workflow = make_workflow(demo_workflow_definition("any-bot"))
    response = http.get(
        "/api/v1/workflow/external/getRunningParams",
        headers={"Authorization": api_key},
        params={"id": workflow.id},
    )
    topic, audience = response.json()["parameters"]
    assert topic["formLabel"] == "Topic"
    assert topic["required"] is True
    assert audience["required"] is False


def test_it_needs_an_id(http, api_key):
    response = http.post(
        "/api/v1/workflow/external/getRunningParams",
        headers={"Authorization": api_key},
        data={},
    )
    assert response.status_code == 400
    assert response.json()["errorCode"] == 400
    assert "'id'" in response.json()["message"]


def test_a_non_numeric_id_is_a_400(http, api_key):
    response = http.post(
        "/api/v1/workflow/external/getRunningParams",
        headers={"Authorization": api_key},
        json={"id": "abc"},
    )
    assert response.status_code == 400
    assert "id" in response.json()["message"]


def test_unknown_or_disabled_workflow_is_404(http, api_key, make_workflow):
    disabled = make_workflow(data_file("aiflowy_ip_lookup.json"), enabled=False)
    for workflow_id in (999_999, disabled.id):
        response = http.post(
            "/api/v1/workflow/external/getRunningParams",
            headers={"Authorization": api_key},
            data={"id": workflow_id},
        )
        assert response.status_code == 404
        assert response.json()["errorCode"] == 404


@pytest.mark.parametrize("header", [None, "af-unknown"])
def test_it_needs_a_valid_key(http, ip_workflow, header):
    headers = {"Authorization": header} if header else {}
    response = http.post(
        "/api/v1/workflow/external/getRunningParams", headers=headers, data={"id": ip_workflow.id}
    )
    assert response.status_code == 401
    assert response.json()["errorCode"] == 401


def test_a_key_scoped_to_another_workflow_gets_403(http, make_key, make_workflow, ip_workflow):
    other = make_workflow(data_file("aiflowy_ip_lookup.json"))
    key = make_key(workflow_ids=[other.id])
    allowed = http.post(
        "/api/v1/workflow/external/getRunningParams",
        headers={"Authorization": key},
        data={"id": other.id},
    )
    assert allowed.status_code == 200
    denied = http.post(
        "/api/v1/workflow/external/getRunningParams",
        headers={"Authorization": key},
        data={"id": ip_workflow.id},
    )
    assert denied.status_code == 403
    assert denied.json()["errorCode"] == 403


def test_other_methods_are_refused(http, api_key, ip_workflow):
    response = http.put(
        "/api/v1/workflow/external/getRunningParams",
        headers={"Authorization": api_key},
        json={"id": ip_workflow.id},
    )
    assert response.status_code == 405
