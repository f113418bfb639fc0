"""codeNode: JavaScript in the sandbox of :mod:`..js`. The code fills ``_result``, whose keys
are the outputs (all of them, declared in ``outputDefs`` or not, as in Tinyflow). AIFlowy also
offers qlexpress and groovy; those are refused when the definition is saved, naming the engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import DefinitionError
from ..js import run_code
from ..model import Parameter, loose_text
from .base import NodeContext, NodeType, render, resolve_parameters

JS_ENGINES = frozenset({"js", "javascript"})


def parse_config(data: Mapping[str, Any], node_id: str, where: str) -> dict[str, Any]:
    engine = (loose_text(data.get("engine")) or "js").strip()
    if engine.lower() not in JS_ENGINES:
        raise DefinitionError(
            f'{where}: code engine "{engine}" is not supported (only JavaScript: "js")',
            node_id=node_id,
        )
    code = loose_text(data.get("code"))
    if code is None:
        raise DefinitionError(f"{where}: the code node has no code", node_id=node_id)
    return {"engine": "js", "code": code}


def declared_outputs(
    data: Mapping[str, Any], params: tuple[Parameter, ...], output_defs: tuple[Parameter, ...]
) -> frozenset[str] | None:
    # Without outputDefs, whatever the code puts in _result is an output: unknown until it runs.
    return frozenset(p.name for p in output_defs) if output_defs else None


async def execute(ctx: NodeContext) -> dict[str, Any]:
    node = ctx.node
    params = resolve_parameters(node.parameters, ctx.memory)
    ctx.inputs.update(params)
    # Tinyflow fills {{…}} in the code before running it; single braces are JavaScript.
    code = render(ctx, node.config["code"], params, single_brace=False, strict=False)
    variables = {**ctx.memory.bare(), **params}
    # Tinyflow's _state/_chain, when the script uses them (read-only stand-ins, see ..state).
    prelude, state = ctx.script_state(code) if ctx.script_state else ("", {})
    result = await run_code(
        prelude + code,
        {**variables, **state},
        timeout_ms=ctx.limits.js_timeout_ms,
        memory_mb=ctx.limits.js_memory_mb,
    )
    # Every key of _result is kept, declared or not, as Tinyflow's JavascriptRuntimeEngine
    # returns the whole object.
    return result


NODE_TYPE = NodeType(
    name="codeNode",
    execute=execute,
    parse_config=parse_config,
    declared_outputs=declared_outputs,
)
