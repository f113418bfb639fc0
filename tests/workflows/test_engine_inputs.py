"""Checking and coercing the caller's variables against the start node."""

from __future__ import annotations

import pytest

from workflows.engine import (
    EngineLimits,
    InputError,
    LlmAnswer,
    parse_definition,
    run_workflow,
    validate_inputs,
)


def definition(*parameters: dict):
    return parse_definition(
        {
            "nodes": [
                {"id": "start1", "type": "startNode", "data": {"parameters": list(parameters)}},
                {"id": "end1", "type": "endNode", "data": {"outputDefs": []}},
            ],
            "edges": [{"id": "e1", "source": "start1", "target": "end1"}],
        }
    )


def param(name: str, data_type: str | None = "String", **extra) -> dict:
    result = {"name": name, "refType": "input", **extra}
    if data_type is not None:
        result["dataType"] = data_type
    return result


@pytest.mark.parametrize("value", [None, "", "   "])
def test_it_rejects_a_missing_or_empty_required_parameter(value):
    defn = definition(param("ipAddress", required=True, description="IP地址"))
    variables = {} if value is None else {"ipAddress": value}
    with pytest.raises(InputError, match='"ipAddress"') as info:
        validate_inputs(defn, variables)
    assert info.value.parameter == "ipAddress"
    assert "IP地址" in str(info.value)


def test_it_applies_defaults_and_keeps_unknown_variables():
    defn = definition(param("lang", defaultValue="zh-CN"), param("n", "Number", defaultValue="3"))
    assert validate_inputs(defn, {"extra": {"a": 1}}) == {
        "lang": "zh-CN",
        "n": 3,
        "extra": {"a": 1},
    }


def test_it_leaves_out_optional_parameters_that_were_not_given():
    defn = definition(param("opt"), param("count", "Number"))
    assert validate_inputs(defn, {"count": ""}) == {}


@pytest.mark.parametrize(
    ("data_type", "given", "expected"),
    [
        ("String", "text", "text"),
        ("String", 12, "12"),
        ("String", {"a": 1}, '{"a":1}'),
        ("Number", "42", 42),
        ("Number", " 2.5 ", 2.5),
        ("Number", 7, 7),
        ("Boolean", "true", True),
        ("Boolean", "FALSE", False),
        ("Boolean", True, True),
        ("Object", '{"a": 1}', {"a": 1}),
        ("Object", {"a": 1}, {"a": 1}),
        ("Array", "[1, 2]", [1, 2]),
        ("Array<Number>", ["1", 2], [1, 2]),
        ("Array<String>", ["a", "b"], ["a", "b"]),
        ("File", "https://files.example/a.png", "https://files.example/a.png"),
        ("File", "http://files.example/a.pdf", "http://files.example/a.pdf"),
        ("array<file>", ["https://x.example/1"], ["https://x.example/1"]),
        (None, "anything", "anything"),
    ],
)
def test_it_coerces_each_data_type(data_type, given, expected):
    defn = definition(param("v", data_type))
    assert validate_inputs(defn, {"v": given})["v"] == expected


@pytest.mark.parametrize(
    ("data_type", "given", "fragment"),
    [
        ("Number", "abc", "expected a number"),
        ("Number", True, "expected a number"),
        ("Boolean", "yes", "expected a boolean"),
        ("Object", "[1]", "expected an object"),
        ("Object", 5, "expected an object"),
        ("Array", "{}", "expected an array"),
        ("Array<Number>", [1, "x"], "item 1"),
        ("File", "ftp://files.example/a.png", "file URL"),
        ("File", "not a url", "file URL"),
        ("File", "https://", "file URL"),
    ],
)
def test_it_rejects_values_that_do_not_fit_the_data_type(data_type, given, fragment):
    defn = definition(param("v", data_type))
    with pytest.raises(InputError, match=fragment) as info:
        validate_inputs(defn, {"v": given})
    assert info.value.parameter == "v"
    assert '"v"' in str(info.value)


def test_it_checks_enums_of_plain_values():
    defn = definition(param("color", enums=["red", "green"]))
    assert validate_inputs(defn, {"color": "red"}) == {"color": "red"}
    with pytest.raises(InputError, match="one of red, green"):
        validate_inputs(defn, {"color": "blue"})


def test_validated_variables_validate_again_unchanged():
    defn = definition(param("n", "Number"), param("f", "File"), param("o", "Object"))
    once = validate_inputs(defn, {"n": "3", "f": "https://x.example/a", "o": '{"k": [1]}'})
    assert validate_inputs(defn, once) == once


def test_it_rejects_variables_that_are_not_an_object():
    with pytest.raises(InputError, match="JSON object"):
        validate_inputs(definition(), ["a"])


class _NeverCalled:
    async def chat(self, *args, **kwargs) -> LlmAnswer:  # pragma: no cover - must not run
        raise AssertionError("no node may run")


@pytest.mark.asyncio
async def test_run_workflow_refuses_missing_required_input_before_any_node_runs():
    defn = definition(param("ipAddress", required=True))
    with pytest.raises(InputError, match="ipAddress"):
        await run_workflow(defn, {}, llm=_NeverCalled(), limits=EngineLimits())
