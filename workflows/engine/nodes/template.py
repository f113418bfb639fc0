"""templateNode: text from an Enjoy template (Tinyflow renders this node with JFinal Enjoy).

The template is compiled once when the definition is parsed (:mod:`..enjoy`, cached by text),
so a syntax error is refused on save naming the node and the line, and a run only renders.
Names resolve to the node's own parameters, then the run's values by dotted path
(``#(start1.name)``); literal text also fills ``{{name}}`` placeholders as other nodes do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..enjoy import EnjoyError, compile_template
from ..errors import DefinitionError, NodeFailed
from ..model import Parameter
from ..values import make_lookup, render_text
from .base import (
    NodeContext,
    NodeType,
    first_output_names,
    named_output,
    resolve_parameters,
)


def parse_config(data: Mapping[str, Any], node_id: str, where: str) -> dict[str, Any]:
    template = data.get("template")
    source = template if isinstance(template, str) else ""
    try:
        compiled = compile_template(source)
    except EnjoyError as exc:
        raise DefinitionError(f"{where}: {exc}", node_id=node_id) from None
    return {"template": source, "compiled": compiled}


def declared_outputs(
    data: Mapping[str, Any], params: tuple[Parameter, ...], output_defs: tuple[Parameter, ...]
) -> frozenset[str] | None:
    return frozenset(first_output_names(output_defs))


async def execute(ctx: NodeContext) -> dict[str, Any]:
    params = resolve_parameters(ctx.node.parameters, ctx.memory)
    ctx.inputs.update(params)
    lookup = make_lookup(params, ctx.memory)
    own_names = frozenset(params)

    def fill(text: str) -> str:
        return render_text(text, lookup, own_names=own_names)

    try:
        text = ctx.node.config["compiled"].render(params, lookup, fill)
    except EnjoyError as exc:
        raise NodeFailed(str(exc)) from None
    return named_output(ctx.node, text)


NODE_TYPE = NodeType(
    name="templateNode",
    execute=execute,
    parse_config=parse_config,
    declared_outputs=declared_outputs,
    awaits=False,
)
