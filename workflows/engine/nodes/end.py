"""endNode: the run's result. Its ``outputDefs`` are references (or fixed values filled from
its own parameters); what they resolve to is the end node's outputs and the run's result."""

from __future__ import annotations

from typing import Any

from .base import NodeContext, NodeType, resolve_parameters


async def execute(ctx: NodeContext) -> dict[str, Any]:
    own = resolve_parameters(ctx.node.parameters, ctx.memory)
    ctx.inputs.update(own)
    return resolve_parameters(ctx.node.output_defs, ctx.memory, own=own, what="output")


NODE_TYPE = NodeType(name="endNode", execute=execute, output_defs_are_refs=True)
