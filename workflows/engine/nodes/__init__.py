"""The node types the engine runs, one module each, and the registry that names them.

Each module (``start``, ``end``, ``template``, ``llm``, ``http``, ``code``, ``loop``,
``confirm``, ``search``, ``knowledge``) holds everything about its type — how its settings
are read and checked, which outputs it declares, how it executes — in one ``NODE_TYPE`` (a
:class:`NodeType`, see :mod:`.base` for the contract).
:mod:`..definition` asks :data:`NODE_TYPES` for a type's settings and outputs; the runner
calls :func:`execute_node`. Adding a type is one new module plus one line in ``NODE_TYPES``.
"""

from __future__ import annotations

from typing import Any

from . import code, confirm, end, http, knowledge, llm, loop, search, start, template
from .base import NodeContext, NodeType, resolve_parameters

NODE_TYPES: dict[str, NodeType] = {
    node_type.name: node_type
    for node_type in (
        start.NODE_TYPE,
        end.NODE_TYPE,
        template.NODE_TYPE,
        llm.NODE_TYPE,
        http.NODE_TYPE,
        code.NODE_TYPE,
        loop.NODE_TYPE,
        confirm.NODE_TYPE,
        search.NODE_TYPE,
        knowledge.NODE_TYPE,
    )
}

# Tinyflow node types we know but do not run (yet); named in the error so the author knows.
KNOWN_UNSUPPORTED_NODE_TYPES: frozenset[str] = frozenset()


async def execute_node(ctx: NodeContext) -> dict[str, Any]:
    """Run one attempt of ``ctx.node`` and return its outputs."""
    return await NODE_TYPES[ctx.node.type].execute(ctx)


__all__ = [
    "KNOWN_UNSUPPORTED_NODE_TYPES",
    "NODE_TYPES",
    "NodeContext",
    "NodeType",
    "execute_node",
    "resolve_parameters",
]
