"""templateNode renders Enjoy (JFinal) templates as Tinyflow does, through real runs.

Expected texts are what JFinal Enjoy 5.x prints for the same template and data (Tinyflow's
TemplateNode renders ``Engine.getTemplateByString(template).renderToString(parameters)``).
"""

from __future__ import annotations

import pytest

from workflows.engine import DefinitionError, LlmAnswer, parse_definition, run_workflow


class NoLlm:
    async def chat(self, *args, **kwargs) -> LlmAnswer:  # pragma: no cover - must not run
        raise AssertionError("no LLM in these workflows")


def flow(template: str) -> dict:
    return {
        "nodes": [
            {
                "id": "start1",
                "type": "startNode",
                "data": {
                    "parameters": [
                        {"name": "name", "dataType": "String"},
                        {"name": "items", "dataType": "Array"},
                        {"name": "user", "dataType": "Object"},
                        {"name": "n", "dataType": "Number"},
                    ]
                },
            },
            {
                "id": "tpl",
                "type": "templateNode",
                "data": {
                    "title": "模板",
                    "template": template,
                    "parameters": [
                        {"name": "name", "refType": "ref", "ref": "start1.name"},
                        {"name": "items", "refType": "ref", "ref": "start1.items"},
                        {"name": "user", "refType": "ref", "ref": "start1.user"},
                        {"name": "n", "refType": "ref", "ref": "start1.n"},
                    ],
                    "outputDefs": [{"name": "text"}],
                },
            },
            {
                "id": "end1",
                "type": "endNode",
                "data": {"outputDefs": [{"name": "text", "ref": "tpl.text"}]},
            },
        ],
        "edges": [
            {"id": "e1", "source": "start1", "target": "tpl"},
            {"id": "e2", "source": "tpl", "target": "end1"},
        ],
    }


VARIABLES = {
    # Given padded, as a caller may: the start node trims it before any template sees it.
    "name": " Ada ",
    "items": ["apple", "banana", "cherry"],
    "user": {"name": "李雷", "age": 17, "tags": []},
    "n": 7,
}


async def render(template: str, variables: dict | None = None) -> str:
    result = await run_workflow(
        parse_definition(flow(template)), variables or VARIABLES, llm=NoLlm()
    )
    assert result.status == "succeeded", result.error
    return result.result["text"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # Output, ?? and method calls.
        ("Hi #(name.trim().toUpperCase())!", "Hi ADA!"),
        ("#(missing ?? 'guest') / #(user.nickname ?? user.name)", "guest / 李雷"),
        ("#(missing.toUpperCase() ?? 'safe')", "safe"),
        ("[#(missing)]", "[]"),
        ("#(items.size()) #(items.get(1)) #(items[2].substring(0, 3))", "3 banana che"),
        ("#(items.contains('apple')) #(items.join(' | '))", "true apple | banana | cherry"),
        (
            # The caller's " Ada " reaches the template trimmed (Tinyflow trims every text
            # input), so the padding the text methods work on is made here.
            "#set(padded = ' ' + name + ' ')"
            "#(padded.length()) #(padded.trim().length()) #(padded.contains('da')) "
            "#(padded.replace('A', 'E'))",
            "5 3 true  Eda ",
        ),
        ("#('a,b,,c,,'.split(',').size()) #(user.tags.isEmpty())", "4 true"),
        (
            "#(user.get('age')) #(user.containsKey('name')) #(user.keySet())",
            '17 true ["name","age","tags"]',
        ),
        ("#('x'.startsWith('x') && !'x'.endsWith('y'))", "true"),
        # Arithmetic, comparison, logic as in Java.
        ("#(n / 2) #(n % 3) #(n * 1.5) #(-n + 10) #(n / 2.0)", "3 1 10.5 3 3.5"),
        ("#('n=' + n) #(1 + 2 + 'x') #('x' + missing)", "n=7 3x xnull"),
        ("#(n > 5 ? 'big' : 'small') #(n == 7.0) #('a' == 'a') #(1 == '1')", "big true true false"),
        ("#(user.age >= 18 || user.name == '李雷')", "true"),
        # Directives.
        ("#if(n > 10)big#elseif(n > 5)medium#else small#end", "medium"),
        ("#if(user.tags)has#else none#end #if('')x#end#if(0)y#end#if([1])z#end", " none z"),
        (
            "#for(x : items)#(for.index):#(x)#if(!for.last), #end#end",
            "0:apple, 1:banana, 2:cherry",
        ),
        (
            "#for(x : items)#if(for.first)[#end#(for.count)/#(for.size)#if(for.last)]#end#end",
            "[1/32/33/3]",
        ),
        # Text after a bare directive is text: Enjoy keeps the space after "#else".
        ("#for(x : user.tags)#(x)#else empty#end", " empty"),
        ("#for(e : {'a': 1, 'b': 2})#(e.key)=#(e.value);#end", "a=1;b=2;"),
        ("#for(i : [1..5])#if(i == 2)#continue#end#if(i == 4)#break#end#(i)#end", "13"),
        (
            "#for(a : [1, 2])#for(b : ['x'])#(for.outer.index)#(b)#(a)#end#end",
            "0x11x2",
        ),
        ("#set(total = 0)#for(i : [1..4])#set(total += i)#end#(total)", "10"),
        ("#set(a = 1, b = a + 1, s = 'v' + b)#(s)", "v2"),
        (
            "#switch(n)#case(1, 2)low#case(7)seven#default other#end "
            "#switch(name)#case('x')x#default dflt#end",
            "seven  dflt",
        ),
        # Comments, raw text, escapes, and literal # in prose.
        ("a## gone\nb#-- gone --#c", "a\nbc"),
        ("#[[#(name) #if]]# \\#(name) #hashtag #1", "#(name) #if #(name) #hashtag #1"),
    ],
)
async def test_enjoy_templates_render_like_tinyflow(template, expected):
    assert await render(template) == expected


@pytest.mark.asyncio
async def test_a_directive_alone_on_its_line_leaves_no_blank_line():
    template = "Fruits:\n#for(x : items)\n  - #(x)\n#end\nDone.\n"
    assert await render(template) == "Fruits:\n  - apple\n  - banana\n  - cherry\nDone.\n"
    template = "#if(n > 1)\n  many\n  #else\n  one\n#end\n"
    assert await render(template) == "  many\n"


@pytest.mark.asyncio
async def test_names_reach_run_values_by_path_and_mustache_still_fills():
    template = "#(start1.user.name) {{name}} #(start1.items[0])"
    # " Ada " arrives trimmed: the start node trims text inputs, as Tinyflow does.
    assert await render(template) == "李雷 Ada apple"


@pytest.mark.asyncio
async def test_templates_cannot_reach_python_objects():
    for template in (
        "#(name.__class__)",
        "#(name.__len__())",
        "#(items.append('x'))",
        "#(name.format())",
        "#(user.items())",
    ):
        result = await run_workflow(parse_definition(flow(template)), VARIABLES, llm=NoLlm())
        if result.status == "succeeded":
            # A field that is not a map key is null and prints nothing.
            assert result.result["text"] == "", template
        else:
            assert "has no method" in result.error, (template, result.error)


@pytest.mark.asyncio
async def test_a_runtime_error_names_the_node_and_the_line():
    template = "line one\n#for(x : items)\n#(x.size())\n#end"
    result = await run_workflow(parse_definition(flow(template)), VARIABLES, llm=NoLlm())
    assert result.status == "failed"
    assert result.failed_node_id == "tpl"
    assert (
        result.error == 'node "tpl" (模板) failed: template line 3: a string has no method size()'
    )
    result = await run_workflow(parse_definition(flow("ok\n#(n / 0)")), VARIABLES, llm=NoLlm())
    assert result.error == 'node "tpl" (模板) failed: template line 2: division by zero'


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("a\n#if(n > 1)\nb", "template line 2: #if is not closed with #end"),
        ("a\nb #end", "template line 2: #end without a matching #if, #for or #switch"),
        ("#(1 +)", "template line 1: expected a value, found the end"),
        ("\n\n#for(x items)#end", "template line 3: expected ':'"),
        ("#set(x)", "template line 1: #set needs an assignment such as x = 1"),
        ("#(a b)", "template line 1: unexpected 'b'"),
    ],
)
def test_a_syntax_error_is_refused_on_save_naming_the_node_and_the_line(template, message):
    with pytest.raises(DefinitionError) as caught:
        parse_definition(flow(template))
    assert caught.value.node_id == "tpl"
    assert str(caught.value).startswith('node "tpl" (模板): ')
    assert message in str(caught.value)


@pytest.mark.asyncio
async def test_runaway_templates_stop_with_an_error():
    result = await run_workflow(
        parse_definition(flow("#for(i : [1..200000])x#end")), VARIABLES, llm=NoLlm()
    )
    assert result.status == "failed"
    assert "more than 100000 loop iterations" in result.error
    grow = "#set(s = 'xxxxxxxxxx')#for(i : [1..30])#set(s = s + s)#end#(s.length())"
    result = await run_workflow(parse_definition(flow(grow)), VARIABLES, llm=NoLlm())
    assert result.status == "failed"
    assert "text longer than" in result.error
