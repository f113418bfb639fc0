"""Engine time of long node chains: a 100-node templateNode chain and a 100-node codeNode
chain, each run in-process (no HTTP, no database) so only the engine is measured.

    python -m benchmarks.workflow_nodes [--nodes 100] [--runs 30]

`make bench-workflow-nodes` runs it. Reports the median and the best wall time of one run
(definition parsed once, as a saved workflow is). Targets (issue 13): template chain ≤ 5 ms,
code chain ≤ 50 ms. A machine reference (a fixed pure-Python loop) is printed first.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from workflows.engine import LlmAnswer, parse_definition, run_workflow

TEMPLATE = (
    "#if(prev)#(prev.substring(0, 3))#else start#end-#(n + 1)"
    "#for(x : ['a', 'b'])#(x.toUpperCase())#end"
)
CODE = "_result.out = (typeof prev === 'string' ? prev : '').slice(0, 3) + '-' + (n + 1);"


class NoLlm:
    async def chat(self, *args, **kwargs) -> LlmAnswer:  # pragma: no cover - never called
        raise AssertionError("no LLM in the benchmark")


def chain(node_type: str, count: int) -> dict:
    nodes = [
        {
            "id": "start",
            "type": "startNode",
            "data": {"parameters": [{"name": "n", "dataType": "Number"}]},
        }
    ]
    edges = []
    previous = "start"
    for index in range(count):
        node_id = f"n{index}"
        parameters = [{"name": "n", "refType": "ref", "ref": "start.n"}]
        if previous != "start":
            parameters.append({"name": "prev", "refType": "ref", "ref": f"{previous}.out"})
        data: dict = {"parameters": parameters, "outputDefs": [{"name": "out"}]}
        if node_type == "templateNode":
            data["template"] = TEMPLATE
        else:
            data["code"] = CODE
        nodes.append({"id": node_id, "type": node_type, "data": data})
        edges.append({"id": f"e{index}", "source": previous, "target": node_id})
        previous = node_id
    nodes.append(
        {
            "id": "end",
            "type": "endNode",
            "data": {"outputDefs": [{"name": "out", "ref": f"{previous}.out"}]},
        }
    )
    edges.append({"id": "e-end", "source": previous, "target": "end"})
    return {"nodes": nodes, "edges": edges}


async def measure(node_type: str, count: int, runs: int) -> tuple[float, float]:
    definition = parse_definition(chain(node_type, count))
    durations = []
    for _ in range(runs + 2):
        started = time.perf_counter()
        result = await run_workflow(definition, {"n": 1}, llm=NoLlm())
        durations.append((time.perf_counter() - started) * 1000)
        if result.status != "succeeded":
            raise SystemExit(f"{node_type} chain failed: {result.error}")
    durations = durations[2:]  # warm-up: first compile, first V8 isolate
    return statistics.median(durations), min(durations)


def machine_reference() -> float:
    """Seconds for ten million pure-Python additions: how fast this machine is right now.
    Shared machines differ by 3x from one session to the next; engine times are comparable
    across runs only next to this number."""
    started = time.perf_counter()
    total = 0
    for value in range(10_000_000):
        total += value
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    print(f"machine reference: 10M pure-Python additions in {machine_reference():.2f} s")
    for label, node_type in (("template", "templateNode"), ("code", "codeNode")):
        median, best = asyncio.run(measure(node_type, args.nodes, args.runs))
        print(
            f"{args.nodes}-node {label} chain: median {median:.1f} ms, best {best:.1f} ms "
            f"engine time per run ({args.runs} runs)"
        )


if __name__ == "__main__":
    main()
