"""knowledgeNode in a workflow (Tinyflow's shape): the query from a placeholder or a
reference, limit, minimum score and mode; outputs the documents and a joined text; its step
shows in the run's history like any node."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from tests.knowledge.conftest import PUSH, call, corpus_items, ok_data
from tests.workflows.conftest import finished_run
from workflows.definitions import workflow_create
from workflows.engine import DefinitionError, parse_definition

RUN = "/api/v1/workflow/external/run"


def definition(kb_id, **knowledge_data) -> dict:
    knowledge = {
        "title": "知识库",
        "knowledgeId": str(kb_id),
        "keyword": "{{question}}",
        "limit": "2",
        "parameters": [{"name": "question", "refType": "ref", "ref": "start.question"}],
        **knowledge_data,
    }
    return {
        "nodes": [
            {
                "id": "start",
                "type": "startNode",
                "data": {
                    "title": "Start",
                    "parameters": [{"name": "question", "dataType": "String", "required": True}],
                },
            },
            {"id": "kb1", "type": "knowledgeNode", "data": knowledge},
            {
                "id": "end",
                "type": "endNode",
                "data": {
                    "title": "End",
                    "outputDefs": [
                        {"name": "text", "refType": "ref", "ref": "kb1.text"},
                        {"name": "documents", "refType": "ref", "ref": "kb1.documents"},
                    ],
                },
            },
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "kb1"},
            {"id": "e2", "source": "kb1", "target": "end"},
        ],
    }


@pytest.mark.parametrize("mode", ["fullTextRecall", "embedding", "mixedRecall"])
def test_a_knowledge_node_outputs_the_best_documents_and_their_text(http, api_key, kb, mode):
    ok_data(call(http, PUSH, api_key, {"kbId": kb.id, "data": corpus_items()}))
    workflow = workflow_create(title="handbook", definition=definition(kb.id, searchMode=mode))
    response = http.post(
        RUN,
        headers={"Authorization": api_key},
        json={"id": workflow.id, "variables": {"question": "忘记了密码怎么办？"}},
    )
    body = response.json()
    assert body["errorCode"] == 0, body
    documents = body["result"]["documents"]
    assert 1 <= len(documents) <= 2 and documents[0]["q"] == "如何重置电脑登录密码？"
    assert body["result"]["text"].startswith("如何重置电脑登录密码？\n访问内部门户的账户页面")
    step = finished_run(run_id=body["runId"]).steps.get(node_id="kb1")
    assert step.status == "succeeded"
    assert step.inputs["query"] == "忘记了密码怎么办？" and step.inputs["limit"] == 2

    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    run = finished_run(run_id=body["runId"])
    page = admin.get(reverse("admin:workflows_workflowrun_change", args=[run.pk])).content.decode()
    assert "kb1" in page and "如何重置电脑登录密码" in page


def test_an_unknown_knowledge_base_fails_the_node_with_a_readable_error(http, api_key, kb):
    workflow = workflow_create(title="broken", definition=definition(999_999))
    body = http.post(
        RUN,
        headers={"Authorization": api_key},
        json={"id": workflow.id, "variables": {"question": "x"}},
    ).json()
    assert body["errorCode"] != 0
    assert "knowledge base '999999' does not exist" in body["message"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"knowledgeId": ""}, "names no knowledgeId"),
        ({"searchMode": "fuzzy"}, "searchMode must be one of"),
        ({"minScore": 3}, "minScore must be between 0 and 1"),
        ({"limit": "many"}, "limit must be a number"),
    ],
)
def test_bad_settings_are_refused_before_any_run(data, message):
    with pytest.raises(DefinitionError, match=message):
        parse_definition(definition(1, **data))
