"""Workflow engine time: runs definitions in-process with no server, database or events, and
reports the median wall time of the engine's `run_workflow` per shape.

    python -m benchmarks.workflow_engine [--repeat 20]

Shapes: a 100-node template chain (the issue's reference), a 200-wide fan-out (start → 200
template nodes → one end joining them), a 1,000-iteration loopNode (a template node in its
body) and a 1,000-iteration node loop (``loopEnable`` with ``maxLoopCount`` 999). `make bench`
runs it after the HTTP benchmark. Numbers depend on the machine and its load; compare shapes
measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from workflows.engine import EngineLimits, LlmAnswer, parse_definition, run_workflow


class NoLlm:
    async def chat(self, *args: Any, **kwargs: Any) -> LlmAnswer:  # pragma: no cover
        raise AssertionError("the benchmark definitions have no LLM node")


def _start(*names: str, data_type: str = "String") -> dict:
    parameters = [{"name": n, "refType": "input", "dataType": data_type} for n in names]
    return {"id": "start", "type": "startNode", "data": {"parameters": parameters}}


def _template(node_id: str, text: str, params: list[dict], parent: str | None = None) -> dict:
    node = {
        "id": node_id,
        "type": "templateNode",
        "data": {"template": text, "parameters": params, "outputDefs": [{"name": "output"}]},
    }
    if parent:
        node["parentId"] = parent
    return node


def _end(outputs: list[dict]) -> dict:
    return {"id": "end", "type": "endNode", "data": {"outputDefs": outputs}}


def _edge(source: str, target: str) -> dict:
    return {"id": f"{source}->{target}", "source": source, "target": target}


def template_chain(length: int = 100) -> tuple[dict, dict]:
    nodes, edges, previous = [_start("text")], [], "start"
    for index in range(length):
        node_id = f"t{index}"
        ref = f"{previous}.text" if previous == "start" else f"{previous}.output"
        nodes.append(_template(node_id, "#(x)", [{"name": "x", "ref": ref}]))
        edges.append(_edge(previous, node_id))
        previous = node_id
    nodes.append(_end([{"name": "text", "ref": f"{previous}.output"}]))
    edges.append(_edge(previous, "end"))
    return {"nodes": nodes, "edges": edges}, {"text": "hello"}


def fan_out(width: int = 200) -> tuple[dict, dict]:
    nodes, edges = [_start("text")], []
    for index in range(width):
        node_id = f"f{index}"
        nodes.append(_template(node_id, f"{index}:#(x)", [{"name": "x", "ref": "start.text"}]))
        edges += [_edge("start", node_id), _edge(node_id, "end")]
    nodes.append(_end([{"name": "last", "ref": f"f{width - 1}.output"}]))
    return {"nodes": nodes, "edges": edges}, {"text": "hello"}


def loop_node(iterations: int = 1000) -> tuple[dict, dict]:
    loop = {
        "id": "loop",
        "type": "loopNode",
        "data": {
            "loopVars": [{"name": "items", "ref": "start.n"}],
            "outputDefs": [{"name": "texts", "ref": "body.output"}],
        },
    }
    body = _template("body", "#(i)", [{"name": "i", "ref": "loop.index"}], parent="loop")
    nodes = [
        _start("n", data_type="Number"),
        loop,
        body,
        _end([{"name": "t", "ref": "loop.texts"}]),
    ]
    edges = [_edge("start", "loop"), _edge("loop", "body"), _edge("loop", "end")]
    return {"nodes": nodes, "edges": edges}, {"n": iterations}


def node_loop(iterations: int = 1000) -> tuple[dict, dict]:
    node = _template("again", "#(x)", [{"name": "x", "ref": "start.text"}])
    node["data"].update(loopEnable=True, maxLoopCount=iterations - 1, loopIntervalMs=0)
    nodes = [_start("text"), node, _end([{"name": "t", "ref": "again.output"}])]
    return {"nodes": nodes, "edges": [_edge("start", "again"), _edge("again", "end")]}, {
        "text": "x"
    }


SHAPES = {
    "100-node template chain": template_chain,
    "200-wide fan-out": fan_out,
    "1,000-iteration loopNode": loop_node,
    "1,000-iteration node loop": node_loop,
}


async def measure(definition: dict, variables: dict, repeat: int) -> float:
    defn = parse_definition(definition)
    limits = EngineLimits(max_parallel_nodes=8)
    times = []
    for _ in range(repeat + 1):  # the first run warms up
        started = time.perf_counter()
        result = await run_workflow(defn, variables, llm=NoLlm(), limits=limits)
        times.append(time.perf_counter() - started)
        assert result.status == "succeeded", result.error
    return statistics.median(times[1:]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description="workflow engine time")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print("workflow engine (median engine time per run, in-process):")
    for name, build in SHAPES.items():
        definition, variables = build()
        milliseconds = asyncio.run(measure(definition, variables, args.repeat))
        print(f"  {name:<28} {milliseconds:8.1f} ms")


if __name__ == "__main__":
    main()
