"""templateNode: text from a template with the node's parameters and the run's values filled
in (``{{name}}`` and Tinyflow's Enjoy ``#(name)``; no template code is evaluated)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import Parameter
from .base import (
    NodeContext,
    NodeType,
    first_output_names,
    named_output,
    render,
    resolve_parameters,
)


def parse_config(data: Mapping[str, Any], node_id: str, where: str) -> dict[str, Any]:
    template = data.get("template")
    return {"template": template if isinstance(template, str) else ""}


def declared_outputs(
    data: Mapping[str, Any], params: tuple[Parameter, ...], output_defs: tuple[Parameter, ...]
) -> frozenset[str] | None:
    return frozenset(first_output_names(output_defs))


async def execute(ctx: NodeContext) -> dict[str, Any]:
    params = resolve_parameters(ctx.node.parameters, ctx.memory)
    ctx.inputs.update(params)
    text = render(ctx, ctx.node.config["template"], params, enjoy=True)
    return named_output(ctx.node, text)


NODE_TYPE = NodeType(
    name="templateNode",
    execute=execute,
    parse_config=parse_config,
    declared_outputs=declared_outputs,
)
