"""startNode: the run's entry; its parameters are the caller's variables (validated by
:func:`..inputs.validate_inputs` before the run), and its outputs are those values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import Parameter
from .base import NodeContext, NodeType


def declared_outputs(
    data: Mapping[str, Any], params: tuple[Parameter, ...], output_defs: tuple[Parameter, ...]
) -> frozenset[str] | None:
    return frozenset(p.name for p in params)


async def execute(ctx: NodeContext) -> dict[str, Any]:
    values = ctx.memory.values
    return {p.name: values[p.name] for p in ctx.node.parameters if p.name in values}


NODE_TYPE = NodeType(
    name="startNode",
    execute=execute,
    declared_outputs=declared_outputs,
    # Its parameters are the run's inputs, not references to earlier values.
    parameters_are_refs=False,
    awaits=False,
)
