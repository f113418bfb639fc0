"""Suspension in the engine: what a suspended run saves, how it resumes, and what cannot
suspend."""

from __future__ import annotations

import json

import pytest

from workflows.engine import (
    InputError,
    LlmAnswer,
    parse_definition,
    resume_workflow,
    run_workflow,
)


class NoLlm:
    async def chat(self, *args, **kwargs) -> LlmAnswer:  # pragma: no cover - must not run
        raise AssertionError("no LLM in these workflows")


def flow() -> dict:
    """start → confirm → end, and start → side → end in parallel."""
    return {
        "nodes": [
            {"id": "start1", "type": "startNode", "data": {"parameters": []}},
            {
                "id": "ok",
                "type": "confirmNode",
                "data": {
                    "message": "Go on?",
                    "confirms": [{"name": "count", "dataType": "Number", "enums": ["1", "2", "3"]}],
                },
            },
            {"id": "side", "type": "codeNode", "data": {"code": "_result.v = 'side';"}},
            {
                "id": "end1",
                "type": "endNode",
                "data": {
                    "outputDefs": [
                        {"name": "confirm", "ref": "ok.confirm"},
                        {"name": "count", "ref": "ok.count"},
                        {"name": "side", "ref": "side.v"},
                    ]
                },
            },
        ],
        "edges": [
            {"id": "a", "source": "start1", "target": "ok"},
            {"id": "b", "source": "start1", "target": "side"},
            {"id": "c", "source": "ok", "target": "end1"},
            {"id": "d", "source": "side", "target": "end1"},
        ],
    }


@pytest.mark.asyncio
async def test_other_branches_finish_and_the_snapshot_resumes_in_a_fresh_engine():
    defn = parse_definition(flow())
    first = await run_workflow(defn, {}, llm=NoLlm())
    assert first.status == "suspended"
    assert first.result is None
    assert sorted((s.node_id, s.status) for s in first.steps) == [
        ("ok", "suspended"),
        ("side", "succeeded"),
        ("start1", "succeeded"),
    ]
    [waiting] = first.waiting_for
    assert waiting["message"] == "Go on?"
    assert [f["name"] for f in waiting["fields"]] == ["confirm__ok", "count__ok"]

    # The snapshot is plain JSON: it survives the database and another process.
    snapshot = json.loads(json.dumps(first.snapshot))
    with pytest.raises(InputError, match='"count"'):
        await resume_workflow(defn, snapshot, {"confirm": "yes"}, llm=NoLlm())
    with pytest.raises(InputError, match="one of 1, 2, 3"):
        await resume_workflow(defn, snapshot, {"confirm": "yes", "count": 9}, llm=NoLlm())

    done = await resume_workflow(defn, snapshot, {"confirm": "no", "count": " 2 "}, llm=NoLlm())
    assert done.status == "succeeded", done.error
    assert done.result == {"confirm": "no", "count": 2, "side": "side"}
    assert [s.node_id for s in done.steps][-2:] == ["ok", "end1"]
    assert len(done.steps) == 5


@pytest.mark.asyncio
async def test_a_confirm_inside_a_loop_body_fails_the_loop_clearly():
    definition = {
        "nodes": [
            {"id": "start1", "type": "startNode", "data": {}},
            {
                "id": "loop1",
                "type": "loopNode",
                "data": {"loopVars": [{"name": "n", "refType": "fixed", "value": "2"}]},
            },
            {"id": "ask", "type": "confirmNode", "parentId": "loop1", "data": {}},
            {"id": "end1", "type": "endNode", "data": {}},
        ],
        "edges": [
            {"id": "a", "source": "start1", "target": "loop1"},
            {"id": "b", "source": "loop1", "target": "ask"},
            {"id": "c", "source": "loop1", "target": "end1"},
        ],
    }
    result = await run_workflow(parse_definition(definition), {}, llm=NoLlm())
    assert result.status == "failed"
    assert "waits for a person, which a loop body cannot" in result.error
