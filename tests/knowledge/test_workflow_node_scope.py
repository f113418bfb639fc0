"""A key's knowledge-base scope holds inside workflows, as its bot scope does: a key limited
to some knowledge bases cannot search another through a workflow's knowledgeNode (403 before
the run starts, on every run path); one within its scope runs."""

from __future__ import annotations

from tests.knowledge.conftest import PUSH, call, corpus_items, ok_data
from tests.knowledge.test_workflow_node import RUN, definition
from tests.workflows.conftest import finished_run
from workflows.definitions import workflow_create
from workflows.models import WorkflowRun

VARIABLES = {"question": "忘记了密码怎么办？"}


def test_a_workflow_searching_a_knowledge_base_outside_the_keys_scope_is_403(
    http, api_key, make_key, make_kb
):
    mine, other = make_kb(name="mine"), make_kb(name="secret-handbook")
    ok_data(call(http, PUSH, api_key, {"kbId": other.id, "data": corpus_items()}))
    key = make_key(knowledge_base_ids=[mine.id])  # no workflow scope: every workflow
    through_other = workflow_create(title="other", definition=definition(other.id))
    runs_before = WorkflowRun.objects.count()

    for extra in ({}, {"stream": True}, {"async": True}):
        refused = http.post(
            RUN,
            headers={"Authorization": key},
            json={"id": through_other.id, "variables": VARIABLES, **extra},
        )
        assert refused.status_code == 403, (extra, refused.text)
        body = refused.json()
        assert body["errorCode"] == 403 and '"secret-handbook"' in body["message"], body
    assert WorkflowRun.objects.count() == runs_before  # no run started, nothing searched

    through_mine = workflow_create(title="mine", definition=definition(mine.id))
    ok = http.post(
        RUN, headers={"Authorization": key}, json={"id": through_mine.id, "variables": VARIABLES}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["errorCode"] == 0, ok.text
    finished_run(run_id=ok.json()["runId"])


def test_a_key_without_a_knowledge_base_scope_runs_workflows_on_any_knowledge_base(
    http, api_key, make_key, bot, kb
):
    ok_data(call(http, PUSH, api_key, {"kbId": kb.id, "data": corpus_items()}))
    workflow = workflow_create(title="any", definition=definition(kb.id))
    for key in (api_key, make_key(bot_ids=[bot.id])):
        ok = http.post(
            RUN, headers={"Authorization": key}, json={"id": workflow.id, "variables": VARIABLES}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["result"]["documents"], ok.text
        finished_run(run_id=ok.json()["runId"])
