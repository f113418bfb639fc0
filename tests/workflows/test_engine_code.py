"""Code nodes: the ``_result`` contract and the JavaScript sandbox's limits."""

from __future__ import annotations

import pytest

from workflows.engine import EngineLimits, LlmAnswer, parse_definition, run_workflow

FAST = EngineLimits(js_timeout_ms=300, js_memory_mb=32)


class NoLlm:
    async def chat(self, *args, **kwargs) -> LlmAnswer:  # pragma: no cover - must not run
        raise AssertionError("no LLM in these workflows")


def code_flow(code: str, *, output_defs: list[str] | None = None, parameters=None, **data):
    if parameters is None:
        parameters = [
            {"name": "a", "refType": "ref", "ref": "start1.a", "dataType": "Number"},
            {"name": "b", "refType": "ref", "ref": "start1.b", "dataType": "Number"},
        ]
    code_data = {"title": "代码", "engine": "js", "code": code, "parameters": parameters, **data}
    if output_defs is not None:
        code_data["outputDefs"] = [{"name": name} for name in output_defs]
    end_outputs = [{"name": name, "ref": f"code1.{name}"} for name in output_defs or []]
    return parse_definition(
        {
            "nodes": [
                {
                    "id": "start1",
                    "type": "startNode",
                    "data": {
                        "parameters": [
                            {"name": "a", "dataType": "Number", "refType": "input"},
                            {"name": "b", "dataType": "Number", "refType": "input"},
                        ]
                    },
                },
                {"id": "code1", "type": "codeNode", "data": code_data},
                {"id": "end1", "type": "endNode", "data": {"outputDefs": end_outputs}},
            ],
            "edges": [
                {"id": "e1", "source": "start1", "target": "code1"},
                {"id": "e2", "source": "code1", "target": "end1"},
            ],
        }
    )


async def run_code_node(code: str, variables=None, **options):
    result = await run_workflow(
        code_flow(code, **options), variables or {"a": 2, "b": 3}, llm=NoLlm(), limits=FAST
    )
    return result


def code_step(result):
    return next(s for s in result.steps if s.node_id == "code1")


@pytest.mark.asyncio
async def test_code_fills_result_whose_keys_are_the_outputs():
    code = "_result.sum = a + b;\n_result.items = [a, b].map(function (x) { return x * 10; });"
    result = await run_code_node(code, output_defs=["sum", "items"])
    assert result.status == "succeeded", result.error
    assert result.result == {"sum": 5, "items": [20, 30]}
    assert code_step(result).inputs == {"a": 2, "b": 3}


@pytest.mark.asyncio
async def test_result_keys_beyond_the_declared_outputs_are_kept():
    # Tinyflow's JavascriptRuntimeEngine returns the whole _result object.
    result = await run_code_node("_result.keep = 1; _result.extra = 2;", output_defs=["keep"])
    assert code_step(result).outputs == {"keep": 1, "extra": 2}


@pytest.mark.asyncio
async def test_every_key_is_kept_when_no_outputs_are_declared():
    result = await run_code_node("_result = {x: 'a', y: {z: [1, null, true]}};")
    assert code_step(result).outputs == {"x": "a", "y": {"z": [1, None, True]}}


@pytest.mark.asyncio
async def test_code_sees_the_callers_variables_by_name():
    result = await run_code_node(
        "_result.greeting = 'hi ' + who;", {"a": 1, "b": 1, "who": "张三"}, output_defs=["greeting"]
    )
    assert result.result == {"greeting": "hi 张三"}


@pytest.mark.asyncio
async def test_no_require_fetch_process_or_other_host_access():
    code = """
    _result.kinds = [typeof require, typeof fetch, typeof process, typeof module,
                     typeof XMLHttpRequest, typeof Deno, typeof Bun].join(',');
    """
    result = await run_code_node(code, output_defs=["kinds"])
    assert result.result == {"kinds": ",".join(["undefined"] * 7)}


@pytest.mark.asyncio
async def test_calling_require_is_a_clean_node_failure():
    result = await run_code_node(
        "var fs = require('fs'); _result.x = fs.readFileSync('/etc/passwd');"
    )
    assert result.status == "failed"
    assert result.error == (
        'node "code1" (代码) failed: ReferenceError: require is not defined (line 1)'
    )


@pytest.mark.asyncio
async def test_an_infinite_loop_is_stopped_by_the_time_limit():
    result = await run_code_node("while (true) {}")
    assert result.status == "failed"
    assert result.error == 'node "code1" (代码) failed: JavaScript took longer than 300 ms'


@pytest.mark.asyncio
async def test_a_memory_bomb_is_stopped_by_the_memory_limit():
    code = "var keep = []; while (true) { keep.push(new Array(100000).fill(1.5)); }"
    result = await run_code_node(code)
    assert result.status == "failed"
    assert "JavaScript used more than 32 MB of memory" in result.error


@pytest.mark.asyncio
async def test_a_script_error_reports_message_and_line():
    result = await run_code_node("var x = 1;\nthrow new Error('bad input');")
    assert result.error == 'node "code1" (代码) failed: Error: bad input (line 2)'


@pytest.mark.asyncio
async def test_a_syntax_error_is_a_node_failure():
    result = await run_code_node("_result.x = (1 + ;")
    assert result.status == "failed"
    assert "SyntaxError" in result.error


@pytest.mark.asyncio
async def test_result_must_be_an_object():
    result = await run_code_node("_result = 42;")
    assert result.error == (
        'node "code1" (代码) failed: TypeError: _result must be an object, got number'
    )


@pytest.mark.asyncio
async def test_nothing_survives_from_one_evaluation_to_the_next():
    await run_code_node("globalThis.leak = 'secret'; _result.x = 1;")
    second = await run_code_node("_result.seen = typeof leak;", output_defs=["seen"])
    assert second.result == {"seen": "undefined"}


@pytest.mark.asyncio
async def test_placeholders_in_code_are_filled_like_tinyflow():
    result = await run_code_node("_result.text = '{{a}}-{{b}}';", output_defs=["text"])
    assert result.result == {"text": "2-3"}


@pytest.mark.asyncio
async def test_a_callers_text_in_a_placeholder_stays_data_and_never_runs():
    # Issue 13: this input used to be spliced into the script and ran.
    attack = 'x"; _result.greeting="INJECTED "+typeof eval; //'
    parameters = [{"name": "name", "refType": "input"}]
    for code in (
        '_result.greeting = "Hello {{name}}";',
        "_result.greeting = 'Hello {{name}}';",
        "_result.greeting = `Hello {{name}}`;",
        "_result.greeting = 'Hello ' + {{name}};",
    ):
        result = await run_code_node(
            code, {"name": attack}, output_defs=["greeting"], parameters=parameters
        )
        assert result.status == "succeeded", (code, result.error)
        assert result.result == {"greeting": "Hello " + attack}, code


@pytest.mark.asyncio
async def test_placeholders_in_code_carry_values_and_skip_comments():
    code = """
    // {{a}} in a comment stays as written
    _result.sum = {{a}} + {{b}};                   /* {{b}} too */
    _result.text = ('{{a}}' + "{{b}}").length + `:{{a}}`;
    _result.re = /{{a}}/.source;
    _result.missing = [{{nobody}} === null, '{{nobody}}'];
    """
    result = await run_code_node(code, output_defs=["sum", "text", "re", "missing"])
    assert result.status == "succeeded", result.error
    assert result.result == {
        "sum": 5,
        "text": "2:2",
        "re": "{{a}}",
        "missing": [True, "{{nobody}}"],
    }


@pytest.mark.asyncio
async def test_binary_buffers_outside_the_memory_limit_are_not_available():
    # Issue 13: a 1.5 GB ArrayBuffer filled inside a 32 MB sandbox used to succeed.
    result = await run_code_node(
        "var big = new ArrayBuffer(1536 * 1024 * 1024);"
        " new Uint8Array(big).fill(1); _result.size = big.byteLength;"
    )
    assert result.status == "failed"
    assert result.error == (
        'node "code1" (代码) failed: ReferenceError: ArrayBuffer is not defined (line 1)'
    )
    kinds = await run_code_node(
        "_result.kinds = [typeof Uint8Array, typeof Float64Array, typeof DataView,"
        " typeof SharedArrayBuffer, typeof WebAssembly, typeof Atomics].join(',');",
        output_defs=["kinds"],
    )
    assert kinds.result == {"kinds": ",".join(["undefined"] * 6)}


@pytest.mark.asyncio
async def test_no_state_survives_between_runs_on_a_reused_sandbox():
    polluter = """
    Array.prototype.evil = 1; Object.prototype.evil = 2; String.prototype.trim = null;
    JSON.parse = null; Math = 5; var v = 1; implicit = 2; let l = 3;
    Object.defineProperty(globalThis, 'stuck', {value: 1, configurable: false});
    /(secret-[0-9]+)/.test('the secret-42');
    Promise.resolve().then(function () { globalThis.late = 'leak'; });
    _result.done = 1;
    """
    observer = """
    _result.seen = [typeof [].evil, typeof ({}).evil, typeof ' x '.trim, typeof JSON.parse,
      typeof Math, typeof v, typeof implicit, typeof l, typeof stuck, typeof late,
      String(RegExp.$1), String(RegExp.lastMatch)].join(',');
    """
    # More runs than worker threads, so that every sandbox has run the polluter.
    for _ in range(12):
        await run_code_node(polluter)
        seen = await run_code_node(observer, {"b": 1}, output_defs=["seen"])
        assert seen.status == "succeeded", seen.error
        assert seen.result == {
            "seen": "undefined,undefined,function,function,object,undefined,undefined,"
            "undefined,undefined,undefined,undefined,undefined"
        }


@pytest.mark.asyncio
async def test_a_sandbox_that_timed_out_is_replaced():
    first = await run_code_node("globalThis.half = 1; while (true) {}")
    assert first.error == 'node "code1" (代码) failed: JavaScript took longer than 300 ms'
    after = await run_code_node("_result.ok = typeof half;", output_defs=["ok"])
    assert after.result == {"ok": "undefined"}


@pytest.mark.asyncio
async def test_retry_applies_to_code_nodes_too():
    defn = code_flow(
        "throw new Error('always')", retryEnable=True, maxRetryCount=1, retryIntervalMs=0
    )
    result = await run_workflow(defn, {"a": 1, "b": 2}, llm=NoLlm(), limits=FAST)
    assert code_step(result).attempts == 2
    assert result.error.endswith("(after 2 attempts)")


@pytest.mark.asyncio
async def test_variables_named_like_builtins_do_not_break_the_sandbox():
    result = await run_code_node(
        "_result.kinds = typeof eval + ',' + typeof globalThis + ',' + typeof JSON;",
        {"a": 1, "b": 2, "eval": "x", "globalThis": "y", "JSON": "z"},
        output_defs=["kinds"],
    )
    assert result.status == "succeeded", result.error
    assert result.result == {"kinds": "string,string,string"}


PARALLEL_CODE_NODES = """
import asyncio
from workflows.engine import LlmAnswer, parse_definition, run_workflow

class NoLlm:
    async def chat(self, *args, **kwargs):
        return LlmAnswer("")

def definition(width):
    nodes = [{"id": "start", "type": "startNode", "data": {"parameters": []}}]
    nodes += [
        {"id": f"c{i}", "type": "codeNode", "data": {
            "code": "var s = 0; for (var i = 0; i < 100000; i++) { s += i }; _result = {v: s}",
            "outputDefs": [{"name": "v", "dataType": "Number"}]}}
        for i in range(width)
    ]
    nodes.append({"id": "end", "type": "endNode", "data": {"outputDefs": [
        {"name": f"v{i}", "refType": "ref", "ref": f"c{i}.v"} for i in range(width)]}})
    edges = [{"id": f"s{i}", "source": "start", "target": f"c{i}"} for i in range(width)]
    edges += [{"id": f"e{i}", "source": f"c{i}", "target": "end"} for i in range(width)]
    return parse_definition({"nodes": nodes, "edges": edges})

async def main():
    for _ in range(5):
        result = await run_workflow(definition(6), {}, llm=NoLlm())
        assert result.status == "succeeded", result.error
    print("ok")

asyncio.run(main())
"""


def test_parallel_code_nodes_do_not_crash_the_process():
    """Six code nodes on parallel branches, five runs: V8 isolates used from several threads
    at once crashed the whole process (a segfault) in about half of such runs when every
    evaluation created and destroyed its own isolate. Run in a child
    process, so that a crash fails this test instead of ending the test session."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    child = subprocess.run(
        [sys.executable, "-c", PARALLEL_CODE_NODES],
        cwd=ROOT,
        # Four JavaScript threads, each with its own long-lived isolate.
        env={**os.environ, "AIFLOWY_JS_WORKERS": "4"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == "ok"


@pytest.mark.asyncio
async def test_the_engine_can_give_scripts_read_only_globals_with_methods():
    # How the engine hands scripts its view of a run (e.g. Tinyflow's _state): JSON data,
    # frozen, plus trusted setup code that wraps it in methods. Nothing of it survives.
    from workflows.engine.js import run_code

    setup = """
    globalThis._state = Object.freeze({
      getExecuteCount() { return _stateData.count; },
      isUpstreamFullyExecuted() { return _stateData.upstream.every(Boolean); },
    });
    """
    code = """
    _stateData.count = 99;                                   // ignored: frozen
    try { _stateData.upstream.push(false); } catch (e) { _result.pushRefused = true; }
    try { _state.getExecuteCount = null; } catch (e) {}
    _result.count = _state.getExecuteCount();
    _result.joined = _state.isUpstreamFullyExecuted();
    """
    result = await run_code(
        code,
        {"a": 1},
        timeout_ms=300,
        memory_mb=32,
        read_only={"_stateData": {"count": 2, "upstream": [True, True]}},
        setup=setup,
    )
    assert result == {"pushRefused": True, "count": 2, "joined": True}
    after = await run_code(
        "_result.kinds = typeof _state + ',' + typeof _stateData;",
        {},
        timeout_ms=300,
        memory_mb=32,
    )
    assert after == {"kinds": "undefined,undefined"}
