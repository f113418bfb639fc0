"""A key's bot scope holds inside workflows: a key limited to some bots cannot reach another
bot through a workflow whose LLM node names it (by id or by name). A key with no workflow
scope may run every workflow, still within its bot scope."""

from __future__ import annotations

import pytest

from tests.workflows.conftest import finished_run
from tests.workflows.test_run import RUN, llm_definition

VARIABLES = {"question": "why"}


@pytest.mark.parametrize("by", ["id", "name"])
def test_a_workflow_naming_a_bot_outside_the_keys_bots_is_403(
    http, make_key, make_bot, make_workflow, fake_upstream, by
):
    allowed, other = make_bot(name="allowed-bot"), make_bot(name="other-bot")
    key = make_key(bot_ids=[allowed.id])  # no workflow scope: every workflow
    through_other = make_workflow(llm_definition(other.id if by == "id" else other.name))
    calls = len(fake_upstream.requests)
    refused = http.post(
        RUN, headers={"Authorization": key}, json={"id": through_other.id, "variables": VARIABLES}
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["errorCode"] == 403
    assert '"other-bot"' in refused.json()["message"]
    assert len(fake_upstream.requests) == calls  # the bot was never called
    streamed = http.post(
        RUN,
        headers={"Authorization": key},
        json={"id": through_other.id, "variables": VARIABLES, "stream": True},
    )
    assert streamed.status_code == 403

    through_allowed = make_workflow(llm_definition(allowed.id))
    ok = http.post(
        RUN,
        headers={"Authorization": key},
        json={"id": through_allowed.id, "variables": VARIABLES},
    )
    assert ok.status_code == 200, ok.text
    finished_run(run_id=ok.json()["runId"])


def test_a_key_without_a_bot_scope_runs_workflows_on_any_bot(
    http, api_key, make_bot, make_workflow
):
    workflow = make_workflow(llm_definition(make_bot(name="any-bot").id))
    ok = http.post(
        RUN, headers={"Authorization": api_key}, json={"id": workflow.id, "variables": VARIABLES}
    )
    assert ok.status_code == 200, ok.text
    finished_run(run_id=ok.json()["runId"])
