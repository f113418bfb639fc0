"""endNode: the run's result. Its ``outputDefs`` are references (or fixed values filled from
its own parameters); what they resolve to is the end node's outputs and the run's result.

A fixed value that comes out empty falls back to the output's ``defaultValue``, as in
Tinyflow's ``EndNode`` (``StringUtil.getFirstWithText(value, defaultValue)``)."""

from __future__ import annotations

from typing import Any

from ..values import is_blank
from .base import NodeContext, NodeType, resolve_parameters


async def execute(ctx: NodeContext) -> dict[str, Any]:
    own = resolve_parameters(ctx.node.parameters, ctx.memory)
    ctx.inputs.update(own)
    outputs = resolve_parameters(ctx.node.output_defs, ctx.memory, own=own, what="output")
    for output in ctx.node.output_defs:
        if (
            output.ref_type == "fixed"
            and is_blank(outputs.get(output.name))
            and output.default_value not in (None, "")
        ):
            outputs[output.name] = output.default_value
    return outputs


NODE_TYPE = NodeType(name="endNode", execute=execute, output_defs_are_refs=True, awaits=False)
