"""Loops as Tinyflow runs them: node loops (loopEnable/maxLoopCount/loopBreakCondition),
loopNode bodies, the run's loop cap, and the _state/_chain stand-ins scripts use."""

from __future__ import annotations

import pytest

from workflows.engine import (
    DefinitionError,
    EngineLimits,
    LlmAnswer,
    parse_definition,
    run_workflow,
)


class NoLlm:
    async def chat(self, *args, **kwargs) -> LlmAnswer:  # pragma: no cover - must not run
        raise AssertionError("no LLM in these workflows")


def start(*names: str, data_type: str = "String") -> dict:
    parameters = [{"name": n, "refType": "input", "dataType": data_type} for n in names]
    return {"id": "start1", "type": "startNode", "data": {"parameters": parameters}}


def code(node_id: str, source: str, **data) -> dict:
    node = {"id": node_id, "type": "codeNode", "data": {"engine": "js", "code": source, **data}}
    if "parentId" in data:
        node["parentId"] = data["data_parent"] if "data_parent" in data else data.pop("parentId")
        node["data"].pop("parentId", None)
    return node


def end(**refs: str) -> dict:
    outputs = [{"name": name, "refType": "ref", "ref": ref} for name, ref in refs.items()]
    return {"id": "end1", "type": "endNode", "data": {"outputDefs": outputs}}


def edge(source: str, target: str, **data) -> dict:
    return {"id": f"{source}-{target}", "source": source, "target": target, "data": data}


async def run(flow: dict, variables=None, **limits):
    return await run_workflow(
        parse_definition(flow), variables or {}, llm=NoLlm(), limits=EngineLimits(**limits)
    )


# --- node loops ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_node_loop_runs_until_max_loop_count_re_runs():
    # Chain.scheduleNextForNode: re-run while loopCount < maxLoopCount (1 + max runs).
    flow = {
        "nodes": [
            start(),
            code(
                "count",
                "_result.n = _state.getExecuteCount(); _result.loops = _state.getLoopCount();",
                loopEnable=True,
                maxLoopCount=3,
            ),
            end(n="count.n", loops="count.loops"),
        ],
        "edges": [edge("start1", "count"), edge("count", "end1")],
    }
    result = await run(flow)
    assert result.status == "succeeded", result.error
    assert result.result == {"n": 4, "loops": 3}
    steps = [s for s in result.steps if s.node_id == "count"]
    assert [s.outputs["n"] for s in steps] == [1, 2, 3, 4]
    assert [s.meta.get("loopCount", 0) for s in steps] == [0, 1, 2, 3]


@pytest.mark.asyncio
async def test_a_node_loop_stops_when_its_break_condition_holds():
    # The break condition sees the node's outputs by name and its _state.
    flow = {
        "nodes": [
            start(),
            code(
                "poll",
                "_result.tries = _state.getExecuteCount();",
                loopEnable="true",
                loopBreakCondition="tries >= 5 || _state.getExecuteCount() > 9",
            ),
            end(tries="poll.tries"),
        ],
        "edges": [edge("start1", "poll"), edge("poll", "end1")],
    }
    result = await run(flow)
    assert result.status == "succeeded", result.error
    assert result.result == {"tries": 5}


@pytest.mark.asyncio
async def test_an_endless_node_loop_fails_at_the_runs_loop_cap():
    flow = {
        "nodes": [start(), code("spin", "_result.x = 1;", loopEnable=True), end(x="spin.x")],
        "edges": [edge("start1", "spin"), edge("spin", "end1")],
    }
    result = await run(flow, max_loop_iterations=20)
    assert result.status == "failed"
    assert result.failed_node_id == "spin"
    assert "limit of 20 loop iterations" in result.error
    assert len([s for s in result.steps if s.node_id == "spin"]) == 21


# --- loopNode -------------------------------------------------------------------------------


def loop_flow(loop_ref: str = "start1.items", **loop_data) -> dict:
    return {
        "nodes": [
            start("items", data_type="Array"),
            {
                "id": "loop1",
                "type": "loopNode",
                "data": {
                    "title": "逐个处理",
                    "loopVars": [{"name": "loopVar", "refType": "ref", "ref": loop_ref}],
                    "outputDefs": [
                        {"name": "upper", "refType": "ref", "ref": "up.text"},
                        {"name": "positions", "refType": "ref", "ref": "up.position"},
                    ],
                    **loop_data,
                },
            },
            {
                "id": "up",
                "type": "codeNode",
                "parentId": "loop1",
                "data": {
                    "engine": "js",
                    "code": "_result.text = String(item).toUpperCase(); _result.position = i;",
                    "outputDefs": [{"name": "text"}, {"name": "position"}],
                    "parameters": [
                        {"name": "item", "refType": "ref", "ref": "loop1.loopItem"},
                        {"name": "i", "refType": "ref", "ref": "loop1.index"},
                    ],
                },
            },
            end(upper="loop1.upper", positions="loop1.positions"),
        ],
        "edges": [edge("start1", "loop1"), edge("loop1", "up"), edge("loop1", "end1")],
    }


@pytest.mark.asyncio
async def test_a_loop_node_runs_its_body_per_item_and_collects_results_in_order():
    result = await run(loop_flow(), {"items": ["a", "b", "c"]})
    assert result.status == "succeeded", result.error
    assert result.result == {"upper": ["A", "B", "C"], "positions": [0, 1, 2]}
    body = [s for s in result.steps if s.node_id == "up"]
    assert [s.meta["loop"] for s in body] == [{"nodeId": "loop1", "index": i} for i in range(3)]
    loop_step = next(s for s in result.steps if s.node_id == "loop1")
    assert loop_step.meta["iterations"] == 3
    # The end node ran after the loop, once.
    assert [s.node_id for s in result.steps][-1] == "end1"


@pytest.mark.asyncio
async def test_a_loop_over_a_number_iterates_indexes_and_zero_items_give_empty_lists():
    flow = loop_flow("start1.items")
    result = await run(flow, {"items": []})
    assert result.status == "succeeded", result.error
    assert result.result == {"upper": [], "positions": []}

    flow["nodes"][0] = start("items", data_type="Number")
    result = await run(flow, {"items": "2"})
    assert result.result == {"upper": ["0", "1"], "positions": [0, 1]}


@pytest.mark.asyncio
async def test_a_failing_body_node_fails_the_loop_naming_the_iteration():
    flow = loop_flow()
    flow["nodes"][2]["data"]["code"] = "if (i == 1) { throw new Error('bad item ' + item); }"
    result = await run(flow, {"items": ["a", "b", "c"]})
    assert result.status == "failed"
    assert result.failed_node_id == "loop1"
    assert 'iteration 2 (index 1): node "up" failed: Error: bad item b' in result.error


@pytest.mark.asyncio
async def test_loop_iterations_count_against_the_runs_cap():
    result = await run(loop_flow(), {"items": list(range(30))}, max_loop_iterations=10)
    assert result.status == "failed"
    assert "limit of 10 loop iterations" in result.error


@pytest.mark.asyncio
async def test_a_loop_that_is_not_given_a_list_fails_clearly():
    flow = loop_flow()
    flow["nodes"][0] = start("items", data_type="Object")
    result = await run(flow, {"items": {"a": 1}})
    assert result.status == "failed"
    assert 'loop variable "loopVar" must be a list or a whole number' in result.error


def test_edges_between_a_loop_body_and_the_outside_are_refused():
    flow = loop_flow()
    flow["edges"].append(edge("up", "end1"))
    with pytest.raises(DefinitionError, match="different loop bodies"):
        parse_definition(flow)


def test_a_loops_outputs_are_checked_against_its_body():
    flow = loop_flow()
    flow["nodes"][1]["data"]["outputDefs"][0]["ref"] = "up.nothing"
    with pytest.raises(DefinitionError, match=r'refers to "up\.nothing"'):
        parse_definition(flow)


# --- _state and _chain ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_documented_join_idiom_runs_and_joins_once():
    # A join node guarded by ``_state.isUpstreamFullyExecuted()`` (Tinyflow's idiom for waiting
    # on every branch) runs once, after both branches.
    flow = {
        "nodes": [
            start("n", data_type="Number"),
            code("left", "_result.v = n + 1;", parameters=[{"name": "n", "ref": "start1.n"}]),
            code("right", "_result.v = n * 10;", parameters=[{"name": "n", "ref": "start1.n"}]),
            code(
                "join",
                "_result.sum = a + b; _result.seen = _state.getExecuteCount();"
                "_result.memoryKeys = Object.keys(_chain.getState().getMemory()).length > 0;",
                condition="_state.isUpstreamFullyExecuted()",
                parameters=[{"name": "a", "ref": "left.v"}, {"name": "b", "ref": "right.v"}],
            ),
            end(sum="join.sum", seen="join.seen", memoryKeys="join.memoryKeys"),
        ],
        "edges": [
            edge("start1", "left"),
            edge("start1", "right"),
            edge("left", "join"),
            edge("right", "join"),
            edge("join", "end1"),
        ],
    }
    result = await run(flow, {"n": 4})
    assert result.status == "succeeded", result.error
    assert result.result == {"sum": 45, "seen": 1, "memoryKeys": True}


@pytest.mark.asyncio
async def test_a_join_whose_branch_did_not_fire_is_skipped_as_in_tinyflow():
    flow = {
        "nodes": [
            start("n", data_type="Number"),
            code("left", "_result.v = 1;"),
            code("right", "_result.v = 2;"),
            code("join", "_result.v = 3;", condition="_state.isUpstreamFullyExecuted()"),
            code("other", "_result.v = 4;"),
            {
                "id": "end1",
                "type": "endNode",
                "data": {"outputDefs": [{"name": "v", "refType": "ref", "ref": "other.v"}]},
            },
        ],
        "edges": [
            edge("start1", "left"),
            edge("start1", "right"),
            edge("left", "join"),
            edge("right", "join", condition="n > 100"),
            edge("start1", "other"),
            edge("other", "end1"),
        ],
    }
    result = await run(flow, {"n": 1})
    assert result.status == "succeeded", result.error
    assert next(s for s in result.steps if s.node_id == "join").status == "skipped"


@pytest.mark.asyncio
async def test_state_and_chain_are_read_only_and_expose_node_states():
    flow = {
        "nodes": [
            start(),
            code("first", "_result.v = 1;"),
            code(
                "second",
                "try { _state = null; } catch (e) {}\n"
                "_result.count = _chain.getNodeState('first').getExecuteCount();\n"
                "_result.status = _chain.getNodeState('first').getStatus();\n"
                "_result.value = _chain.getState().getMemory().get('first.v');\n"
                "_result.still = typeof _state.getExecuteCount;",
            ),
            end(count="second.count", status="second.status", value="second.value"),
        ],
        "edges": [edge("start1", "first"), edge("first", "second"), edge("second", "end1")],
    }
    result = await run(flow)
    assert result.status == "succeeded", result.error
    assert result.result == {"count": 1, "status": "succeeded", "value": 1}
    second = next(s for s in result.steps if s.node_id == "second")
    assert second.outputs["still"] == "function"


@pytest.mark.asyncio
async def test_script_errors_keep_their_line_numbers_with_state():
    flow = {
        "nodes": [
            start(),
            code("bad", "var n = _state.getExecuteCount();\nnope();"),
            end(),
        ],
        "edges": [edge("start1", "bad"), edge("bad", "end1")],
    }
    result = await run(flow)
    assert result.status == "failed"
    assert "(line 2)" in result.error


# --- back-edges -------------------------------------------------------------------------------


def retry_flow() -> dict:
    """start → attempt → check →(not done) attempt, check →(done) end: Tinyflow's loop drawn
    as an edge back to an earlier node."""
    return {
        "nodes": [
            start(),
            code("attempt", "_result.n = _state.getExecuteCount();"),
            code(
                "check",
                "_result.done = n >= 3; _result.n = n;",
                parameters=[{"name": "n", "ref": "attempt.n"}],
            ),
            end(n="check.n"),
        ],
        "edges": [
            edge("start1", "attempt"),
            edge("attempt", "check"),
            edge("check", "attempt", condition="!done"),
            edge("check", "end1", condition="done"),
        ],
    }


@pytest.mark.asyncio
async def test_a_back_edge_runs_the_loop_again_until_its_condition_fails():
    result = await run(retry_flow())
    assert result.status == "succeeded", result.error
    assert result.result == {"n": 3}
    assert [s.node_id for s in result.steps] == [
        "start1",
        *["attempt", "check"] * 3,
        "end1",
    ]
    assert result.steps[2].meta["loopsBackTo"] == "attempt"


@pytest.mark.asyncio
async def test_a_back_edge_loop_is_bounded_by_the_runs_cap():
    flow = retry_flow()
    flow["edges"][2]["data"]["condition"] = "true"
    result = await run(flow, max_loop_iterations=5)
    assert result.status == "failed"
    assert result.failed_node_id == "check"
    assert "limit of 5 loop iterations" in result.error


def test_a_back_edge_loop_may_be_left_only_where_it_loops_back():
    flow = retry_flow()
    flow["edges"].append(edge("attempt", "end1"))
    with pytest.raises(DefinitionError, match="may only be left from the node that loops back"):
        parse_definition(flow)
