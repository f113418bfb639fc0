"""Parsing and validating workflow definitions, and the start node's parameters."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from aiflowy.wire.aiflowy import running_params_body
from workflows.engine import (
    DefinitionError,
    WorkflowDefinition,
    input_parameters,
    parse_definition,
)

DATA = Path(__file__).parent / "data"


def node(node_id: str, node_type: str, **data) -> dict:
    return {"id": node_id, "type": node_type, "data": data}


def edge(source: str, target: str, edge_id: str | None = None, **data) -> dict:
    result = {"id": edge_id or f"{source}-{target}", "source": source, "target": target}
    if data:
        result["data"] = data
    return result


START = node(
    "start1",
    "startNode",
    title="开始",
    parameters=[{"name": "ip", "dataType": "String", "refType": "input", "required": True}],
)
END = node("end1", "endNode", title="结束", outputDefs=[{"name": "ip", "ref": "start1.ip"}])


def minimal(**changes) -> dict:
    flow = {"nodes": [copy.deepcopy(START), copy.deepcopy(END)], "edges": [edge("start1", "end1")]}
    flow.update(changes)
    return flow


def test_it_parses_a_minimal_workflow_from_dict_and_json_text():
    from_dict = parse_definition(minimal())
    from_text = parse_definition(json.dumps(minimal()))
    assert isinstance(from_dict, WorkflowDefinition)
    assert from_dict.start_id == from_text.start_id == "start1"
    assert from_dict.end_ids == ("end1",)
    assert from_dict.order == ("start1", "end1")


def test_it_accepts_the_aiflowy_export_and_keeps_unknown_keys():
    raw = json.loads((DATA / "aiflowy_export.json").read_text("utf-8"))
    defn = parse_definition(raw)
    assert defn.start_id == "yUcXR8GnK1wrnN3T"
    assert defn.raw["viewport"] == {"x": 12.5, "y": 40, "zoom": 0.75}
    http = defn.nodes["Bm0nJZ4tqGxmZ6ej"]
    assert http.title == "Http 请求"
    assert http.parameters[0].ref_type == "ref"  # "REF" in the export
    assert http.max_retry_count == 3  # "3" in the export
    condition_edges = [e for e in defn.edges if e.condition]
    assert {e.condition for e in condition_edges} == {"statusCode == 200", "statusCode != 200"}


def test_it_rejects_invalid_json_text():
    with pytest.raises(DefinitionError, match="not valid JSON"):
        parse_definition("{nodes: [")


def test_it_rejects_a_workflow_without_start_node():
    flow = minimal(nodes=[copy.deepcopy(END)], edges=[])
    with pytest.raises(DefinitionError, match="no start node"):
        parse_definition(flow)


def test_it_rejects_two_start_nodes_naming_them():
    second = copy.deepcopy(START)
    second["id"] = "start2"
    flow = minimal()
    flow["nodes"].append(second)
    flow["edges"].append(edge("start2", "end1"))
    with pytest.raises(DefinitionError, match='"start1", "start2"') as info:
        parse_definition(flow)
    assert info.value.node_id == "start2"


def test_it_rejects_a_workflow_without_end_node():
    flow = minimal(nodes=[copy.deepcopy(START)], edges=[])
    with pytest.raises(DefinitionError, match="no end node"):
        parse_definition(flow)


def test_it_rejects_a_workflow_without_edges():
    with pytest.raises(DefinitionError, match="no edges"):
        parse_definition(minimal(edges=[]))


def test_it_rejects_an_edge_to_a_missing_node():
    flow = minimal()
    flow["edges"].append(edge("start1", "ghost", "e-ghost"))
    with pytest.raises(DefinitionError, match='target "ghost"') as info:
        parse_definition(flow)
    assert info.value.edge_id == "e-ghost"
    assert "e-ghost" in str(info.value)


def test_it_rejects_an_edge_from_a_missing_node():
    flow = minimal()
    flow["edges"].append(edge("ghost", "end1", "e-ghost"))
    with pytest.raises(DefinitionError, match='source "ghost"'):
        parse_definition(flow)


def test_it_rejects_a_cycle_the_start_node_does_not_reach_naming_the_nodes():
    # A cycle reached from the start is a loop (tests/workflows/test_engine_loops.py).
    flow = minimal(
        nodes=[
            copy.deepcopy(START),
            node("a", "templateNode", template="a"),
            node("b", "templateNode", template="b"),
            copy.deepcopy(END),
        ],
        edges=[edge("start1", "end1"), edge("a", "b"), edge("b", "a", "back")],
    )
    with pytest.raises(DefinitionError, match="cycle") as info:
        parse_definition(flow)
    assert '"a"' in str(info.value) and '"b"' in str(info.value)


def test_it_rejects_an_edge_from_a_node_to_itself():
    flow = minimal(
        nodes=[copy.deepcopy(START), node("a", "templateNode", template="a"), copy.deepcopy(END)],
        edges=[edge("start1", "a"), edge("a", "a", "self"), edge("a", "end1")],
    )
    with pytest.raises(DefinitionError, match="itself"):
        parse_definition(flow)


def test_it_rejects_an_unknown_node_type():
    flow = minimal()
    flow["nodes"].append(node("x1", "fooNode", title="奇怪"))
    with pytest.raises(DefinitionError, match='unknown node type "fooNode"') as info:
        parse_definition(flow)
    assert info.value.node_id == "x1"


def test_it_rejects_a_code_node_with_another_engine_naming_it():
    flow = minimal(
        nodes=[
            copy.deepcopy(START),
            node("code1", "codeNode", title="代码", engine="groovy", code="_result.a = 1"),
            copy.deepcopy(END),
        ],
        edges=[edge("start1", "code1"), edge("code1", "end1")],
    )
    with pytest.raises(DefinitionError, match='engine "groovy"') as info:
        parse_definition(flow)
    assert info.value.node_id == "code1"


@pytest.mark.parametrize("engine", ["js", "JavaScript", "javascript"])
def test_it_accepts_javascript_engine_spellings(engine):
    flow = minimal(
        nodes=[
            copy.deepcopy(START),
            node("code1", "codeNode", engine=engine, code="_result.a = 1"),
            copy.deepcopy(END),
        ],
        edges=[edge("start1", "code1"), edge("code1", "end1")],
    )
    config = parse_definition(flow).nodes["code1"].config
    assert config["engine"] == "js"
    assert config["code"] == "_result.a = 1"


def _with_end_ref(ref: str, extra_nodes=(), extra_edges=None) -> dict:
    end = node("end1", "endNode", outputDefs=[{"name": "out", "refType": "ref", "ref": ref}])
    return {
        "nodes": [copy.deepcopy(START), *extra_nodes, end],
        "edges": extra_edges or [edge("start1", "end1")],
    }


def test_it_rejects_a_ref_to_an_undeclared_output():
    with pytest.raises(DefinitionError, match='no output "ipAdress"') as info:
        parse_definition(_with_end_ref("start1.ipAdress"))
    assert info.value.node_id == "end1"
    assert "its outputs: ip" in str(info.value)


def test_it_rejects_a_ref_to_an_unknown_name():
    with pytest.raises(DefinitionError, match=r'"nothing\.here"'):
        parse_definition(_with_end_ref("nothing.here"))


def test_it_rejects_a_ref_to_a_node_that_does_not_run_before():
    side = node("side", "templateNode", template="x")
    flow = _with_end_ref(
        "side.output",
        extra_nodes=[side],
        extra_edges=[edge("start1", "end1"), edge("start1", "side")],
    )
    with pytest.raises(DefinitionError, match='node "side" does not run before it'):
        parse_definition(flow)


def test_it_accepts_deep_json_paths_and_bare_start_parameter_names():
    http = node("http1", "httpNode", url="https://example.com")
    flow = {
        "nodes": [
            copy.deepcopy(START),
            http,
            node(
                "end1",
                "endNode",
                outputDefs=[
                    {"name": "a", "ref": "http1.body.data.items[0].ip"},
                    {"name": "b", "refType": "REF", "ref": "ip"},
                    {"name": "c", "ref": "http1.statusCode"},
                ],
            ),
        ],
        "edges": [edge("start1", "http1"), edge("http1", "end1")],
    }
    defn = parse_definition(flow)
    assert [p.ref_type for p in defn.nodes["end1"].output_defs] == ["ref", "ref", "ref"]


def test_it_infers_ref_type_when_absent():
    end = node(
        "end1",
        "endNode",
        outputDefs=[
            {"name": "a", "ref": "start1.ip"},
            {"name": "b", "value": "fixed text"},
            {"name": "ip"},
        ],
    )
    defn = parse_definition(
        {"nodes": [copy.deepcopy(START), end], "edges": [edge("start1", "end1")]}
    )
    assert [p.ref_type for p in defn.nodes["end1"].output_defs] == ["ref", "fixed", "input"]


def test_it_accepts_numeric_strings_where_numbers_are_meant():
    llm = node(
        "llm1",
        "llmNode",
        llmId="42",
        temperature="0.3",
        topP="0.9",
        userPrompt="hi",
        retryEnable="true",
        maxRetryCount="2",
        retryIntervalMs="10",
    )
    flow = {
        "nodes": [copy.deepcopy(START), llm, copy.deepcopy(END)],
        "edges": [edge("start1", "llm1"), edge("llm1", "end1")],
    }
    parsed = parse_definition(flow).nodes["llm1"]
    assert parsed.config["llm_id"] == 42
    assert parsed.config["temperature"] == 0.3
    assert parsed.retry_enable is True
    assert (parsed.max_retry_count, parsed.retry_interval_ms) == (2, 10)


def test_it_rejects_a_non_numeric_retry_count():
    flow = minimal()
    flow["nodes"][1]["data"]["maxRetryCount"] = "many"
    with pytest.raises(DefinitionError, match="maxRetryCount"):
        parse_definition(flow)


def test_it_rejects_an_end_node_that_cannot_be_reached():
    flow = minimal(
        nodes=[copy.deepcopy(START), node("a", "templateNode", template="x"), copy.deepcopy(END)],
        edges=[edge("start1", "a")],
    )
    with pytest.raises(DefinitionError, match="no end node can be reached"):
        parse_definition(flow)


def as_listed(parameter) -> dict:
    """The parameter as getRunningParams lists it (AIFlowy's wire)."""
    return running_params_body(title="", description="", parameters=[parameter])["parameters"][0]


def test_input_parameters_report_refType_as_written_and_form_hints():
    raw = json.loads((DATA / "aiflowy_export.json").read_text("utf-8"))
    params = input_parameters(parse_definition(raw))
    assert as_listed(params[0]) == {
        "id": "3BE5GftyH8y7CUfF",
        "name": "ipAddress",
        "dataType": "String",
        "description": "IP地址",
        "refType": "INPUT",
        "required": True,
        "formType": "input",
        "formLabel": "IP 地址",
        "formPlaceholder": "例如 218.86.179.185",
    }
    assert params[1].default_value == "zh-CN"
    assert set(as_listed(params[1])) == {
        "id",
        "name",
        "dataType",
        "description",
        "refType",
        "required",
    }


def test_input_parameters_default_refType_to_input():
    flow = minimal()
    flow["nodes"][0]["data"]["parameters"] = [{"name": "q", "description": "问题"}]
    flow["nodes"][1]["data"]["outputDefs"] = []
    (param,) = input_parameters(parse_definition(flow))
    assert as_listed(param) == {
        "id": None,
        "name": "q",
        "dataType": "String",
        "description": "问题",
        "refType": "input",
        "required": False,
    }


def test_nodes_left_unconnected_on_the_canvas_are_not_validated_for_refs_or_run():
    flow = minimal()
    flow["nodes"].append(
        node("draft", "templateNode", parameters=[{"name": "x", "ref": "nowhere.output"}])
    )
    defn = parse_definition(flow)
    assert "draft" not in defn.reachable
