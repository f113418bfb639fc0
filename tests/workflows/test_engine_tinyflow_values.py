"""Value rules as Tinyflow's (tinyflow-java 2.0.x), each citing the code it matches."""

from __future__ import annotations

import pytest

from workflows.engine import InputError, LlmAnswer, parse_definition, run_workflow, validate_inputs


class NoLlm:
    async def chat(self, *args, **kwargs) -> LlmAnswer:  # pragma: no cover - must not run
        raise AssertionError("no LLM in these workflows")


def start_end(parameters: list[dict], outputs: list[dict]):
    return parse_definition(
        {
            "nodes": [
                {"id": "start1", "type": "startNode", "data": {"parameters": parameters}},
                {"id": "end1", "type": "endNode", "data": {"outputDefs": outputs}},
            ],
            "edges": [{"id": "e1", "source": "start1", "target": "end1"}],
        }
    )


def test_input_strings_are_trimmed():
    # ChainState.resolveParameters: ``value = ((String) value).trim()``.
    defn = start_end([{"name": "city", "refType": "input"}], [])
    assert validate_inputs(defn, {"city": "  厦门 \n"}) == {"city": "厦门"}


@pytest.mark.parametrize(("given", "expected"), [("1", True), (" 1 ", True), ("0", False)])
def test_boolean_accepts_one_and_zero(given, expected):
    # ChainState.resolveParameters: ``"true".equalsIgnoreCase(v) || "1".equalsIgnoreCase(v)``.
    defn = start_end([{"name": "detail", "dataType": "Boolean", "refType": "input"}], [])
    assert validate_inputs(defn, {"detail": given}) == {"detail": expected}


def test_boolean_still_refuses_other_text():
    # Deliberate difference: Tinyflow reads "yes" as false; we say it is not a boolean.
    defn = start_end([{"name": "detail", "dataType": "Boolean", "refType": "input"}], [])
    with pytest.raises(InputError, match="expected a boolean"):
        validate_inputs(defn, {"detail": "yes"})


@pytest.mark.asyncio
async def test_an_object_for_a_string_parameter_becomes_json_text():
    defn = start_end(
        [{"name": "payload", "dataType": "String", "refType": "input"}],
        [{"name": "text", "ref": "start1.payload"}],
    )
    result = await run_workflow(defn, {"payload": {"城市": "厦门", "n": [1, 2]}}, llm=NoLlm())
    assert result.status == "succeeded", result.error
    assert result.result == {"text": '{"城市":"厦门","n":[1,2]}'}


@pytest.mark.asyncio
async def test_an_end_nodes_empty_fixed_value_uses_its_default_value():
    # EndNode.execute: ``StringUtil.getFirstWithText(value, outputDef.getDefaultValue())``.
    defn = start_end(
        [{"name": "name", "refType": "input"}],
        [
            {"name": "greeting", "refType": "fixed", "value": "", "defaultValue": "你好"},
            {"name": "missing", "refType": "fixed", "value": "{{nick ?? ''}}", "defaultValue": "x"},
            {"name": "given", "refType": "fixed", "value": "hi {{name}}", "defaultValue": "x"},
        ],
    )
    result = await run_workflow(defn, {"name": "Ann"}, llm=NoLlm())
    assert result.status == "succeeded", result.error
    assert result.result == {"greeting": "你好", "missing": "x", "given": "hi Ann"}
