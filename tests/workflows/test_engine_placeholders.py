"""Placeholders in text fields and how parameters are resolved (ref / fixed / input)."""

from __future__ import annotations

import pytest

from workflows.engine import LlmAnswer, parse_definition, run_workflow


class NoLlm:
    async def chat(self, *args, **kwargs) -> LlmAnswer:  # pragma: no cover - must not run
        raise AssertionError("no LLM in these workflows")


def template_flow(template: str, parameters: list[dict], start_params=("a", "b")) -> object:
    return parse_definition(
        {
            "nodes": [
                {
                    "id": "start1",
                    "type": "startNode",
                    "data": {
                        "parameters": [
                            {"name": name, "refType": "INPUT", "dataType": "String"}
                            for name in start_params
                        ]
                    },
                },
                {
                    "id": "tpl",
                    "type": "templateNode",
                    "data": {"title": "模板", "template": template, "parameters": parameters},
                },
                {
                    "id": "end1",
                    "type": "endNode",
                    "data": {"outputDefs": [{"name": "text", "ref": "tpl.output"}]},
                },
            ],
            "edges": [
                {"id": "e1", "source": "start1", "target": "tpl"},
                {"id": "e2", "source": "tpl", "target": "end1"},
            ],
        }
    )


async def render(template: str, variables: dict, parameters: list[dict] | None = None):
    if parameters is None:
        parameters = [{"name": "a", "refType": "ref", "ref": "start1.a"}]
    result = await run_workflow(template_flow(template, parameters), variables, llm=NoLlm())
    return result


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {{a}}!", "Hello 世界!"),
        ("Hello {{ a }}!", "Hello 世界!"),
        ("{{missing ?? 'fallback'}}", "fallback"),
        ('{{missing ?? "double"}}', "double"),
        ("[{{missing ??}}]", "[]"),
        ("{{missing ?? a}}", "世界"),
        ("Enjoy #(a) and #(missing ?? 'x') and [#(missing)]", "Enjoy 世界 and x and []"),
        ("single {a} stays for own parameters", "single 世界 stays for own parameters"),
        ("but {b} is not a parameter of this node", "but {b} is not a parameter of this node"),
        ("{{start1.b}} and {{b}}", "B and B"),
        # {{ }} takes no expressions; Enjoy directives run (see test_engine_enjoy.py).
        (
            "{{a + 1}} stays, Enjoy runs: #(a.length()) #if(a)x#end",
            "{{a + 1}} stays, Enjoy runs: 2 x",
        ),
    ],
)
async def test_template_placeholders(template, expected):
    result = await render(template, {"a": "世界", "b": "B"})
    assert result.status == "succeeded", result.error
    assert result.result["text"] == (template if expected is None else expected)


@pytest.mark.asyncio
async def test_objects_render_as_json_and_paths_reach_inside():
    # "user" is not declared by the start node: extra variables are kept and found by name.
    parameters = [{"name": "user", "refType": "input"}]
    flow = template_flow("{{user}} / {{user.name}} / {{user.tags[1]}}", parameters)
    result = await run_workflow(flow, {"user": {"name": "李雷", "tags": ["x", "y"]}}, llm=NoLlm())
    assert result.result["text"] == '{"name":"李雷","tags":["x","y"]} / 李雷 / y'


@pytest.mark.asyncio
async def test_filled_values_are_not_scanned_again():
    result = await render("{{a}}", {"a": "{{b}} #(b) {a}", "b": "leak"})
    assert result.result["text"] == "{{b}} #(b) {a}"


@pytest.mark.asyncio
async def test_a_placeholder_without_value_fails_the_node_naming_it():
    result = await render("Hi {{nobody}}", {"a": "x"})
    assert result.status == "failed"
    assert result.failed_node_id == "tpl"
    assert result.error.startswith('node "tpl" (模板) failed: placeholder {{nobody}} has no value')


@pytest.mark.asyncio
async def test_ref_type_is_case_insensitive():
    parameters = [
        {"name": "x", "refType": "REF", "ref": "start1.a"},
        {"name": "y", "refType": "FIXED", "value": "fixed-{{b}}"},
        {"name": "b", "refType": "INPUT"},
    ]
    result = await render("{{x}} {{y}} {{b}}", {"a": "1", "b": "2"}, parameters)
    assert result.status == "succeeded", result.error
    assert result.result["text"] == "1 fixed-2 2"


@pytest.mark.asyncio
async def test_ref_type_is_inferred_when_absent():
    parameters = [
        {"name": "x", "ref": "start1.a"},
        {"name": "y", "value": "literal"},
        {"name": "b"},
    ]
    result = await render("{{x}} {{y}} {{b}}", {"a": "1", "b": "2"}, parameters)
    assert result.result["text"] == "1 literal 2"


@pytest.mark.asyncio
async def test_parameters_coerce_numeric_strings_to_their_data_type():
    parameters = [
        {"name": "n", "ref": "start1.a", "dataType": "Number"},
        {"name": "flag", "value": "true", "dataType": "Boolean"},
    ]
    flow = template_flow("{{n}} {{flag}}", parameters)
    result = await run_workflow(flow, {"a": "0042"}, llm=NoLlm())
    assert result.result["text"] == "42 true"
    step = next(s for s in result.steps if s.node_id == "tpl")
    assert step.inputs == {"n": 42, "flag": True}


@pytest.mark.asyncio
async def test_a_required_parameter_without_value_fails_the_node():
    parameters = [{"name": "x", "ref": "start1.b", "required": True}]
    result = await render("{{x}}", {"a": "1"}, parameters)
    assert result.status == "failed"
    assert 'parameter "x" is required but has no value (from "start1.b")' in result.error


@pytest.mark.asyncio
async def test_end_node_fixed_values_fill_placeholders():
    defn = parse_definition(
        {
            "nodes": [
                {
                    "id": "s",
                    "type": "startNode",
                    "data": {"parameters": [{"name": "who", "refType": "input"}]},
                },
                {
                    "id": "e",
                    "type": "endNode",
                    "data": {
                        "outputDefs": [
                            {"name": "greeting", "refType": "fixed", "value": "hello {{who}}"},
                            {"name": "plain", "refType": "fixed", "value": 5, "dataType": "Number"},
                            {"name": "who"},
                        ]
                    },
                },
            ],
            "edges": [{"id": "e1", "source": "s", "target": "e"}],
        }
    )
    result = await run_workflow(defn, {"who": "世界"}, llm=NoLlm())
    assert result.result == {"greeting": "hello 世界", "plain": 5, "who": "世界"}
