"""loopNode: run the loop's body once per item of a list (or ``n`` times for a number).

Tinyflow's shape (``LoopNode``/``LoopNodeParser``): the first of ``loopVars`` names what to
iterate; the body is every node whose ``parentId`` is the loop, entered through the loop's
edges to them. While an iteration runs, ``<loopId>.loopItem`` is the item (the index when
iterating a number) and ``<loopId>.index`` its 0-based position. After each iteration every
``outputDefs`` entry (a reference into the body, or a fixed value) is appended to a list of
that name: the loop's outputs are those lists, in item order. The loop's other edges run once
the last iteration has finished.

Differences (docs/workflow-format.md): an iteration ends when its whole body has finished (not
each time a body node without outgoing edges finishes), and zero iterations give empty lists
rather than no outputs. Iterations count against the run's loop cap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import DefinitionError, NodeFailed
from ..model import Parameter, parse_parameters
from ..values import render_value
from .base import NodeContext, NodeType, resolve_parameters


def parse_config(data: Mapping[str, Any], node_id: str, where: str) -> dict[str, Any]:
    loop_vars = parse_parameters(data, "loopVars", where, node_id)
    if not loop_vars:
        raise DefinitionError(
            f"{where}: the loop has nothing to iterate (loopVars is empty)", node_id=node_id
        )
    return {"loop_vars": loop_vars[:1]}


def declared_outputs(
    data: Mapping[str, Any], params: tuple[Parameter, ...], output_defs: tuple[Parameter, ...]
) -> frozenset[str] | None:
    return frozenset({"index", "loopItem", *(p.name for p in output_defs)})


def _items(value: Any, name: str) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return list(range(max(0, value)))
    shown = "nothing" if value is None else render_value(value)[:80]
    raise NodeFailed(f'loop variable "{name}" must be a list or a whole number, got {shown}')


async def execute(ctx: NodeContext) -> dict[str, Any]:
    node = ctx.node
    loop_var: Parameter = node.config["loop_vars"][0]
    values = resolve_parameters((loop_var,), ctx.memory)
    ctx.inputs.update(values)
    items = _items(values.get(loop_var.name), loop_var.name)
    collected: dict[str, list[Any]] = {p.name: [] for p in node.output_defs}
    assert ctx.run_body is not None, "the runner runs loop bodies"
    try:
        for index, item in enumerate(items):
            await ctx.run_body(index, item)
            for output in node.output_defs:
                if output.ref_type == "ref" and output.ref:
                    value = ctx.memory.resolve(output.ref)
                elif output.ref_type == "fixed":
                    value = output.value
                else:
                    value = ctx.memory.resolve(output.name)
                collected[output.name].append(value)
    finally:
        ctx.memory.values.pop(f"{node.id}.index", None)
        ctx.memory.values.pop(f"{node.id}.loopItem", None)
    ctx.meta["iterations"] = len(items)
    return collected


NODE_TYPE = NodeType(
    name="loopNode",
    execute=execute,
    parse_config=parse_config,
    declared_outputs=declared_outputs,
    ref_parameter_keys=("loop_vars",),
)
