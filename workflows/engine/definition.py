"""Parse and validate AIFlowy/Tinyflow workflow JSON.

We accept the JSON the Tinyflow editor saves, unchanged (unknown keys such as ``position`` or
``measured`` are kept in ``raw`` and ignored), and refuse anything we could not run *before*
a run starts, with a message that names the node or edge at fault. The rules, and where they
differ from Tinyflow's engine, are in ``docs/workflow-format.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from .errors import DefinitionError
from .model import (
    EdgeDef,
    NodeDef,
    Parameter,
    loose_bool,
    loose_number,
    loose_text,
    parse_parameters,
)
from .nodes import KNOWN_UNSUPPORTED_NODE_TYPES, NODE_TYPES
from .values import split_path

SUPPORTED_NODE_TYPES = frozenset(NODE_TYPES)

__all__ = [
    "KNOWN_UNSUPPORTED_NODE_TYPES",
    "SUPPORTED_NODE_TYPES",
    "EdgeDef",
    "NodeDef",
    "Parameter",
    "StartParameter",
    "WorkflowDefinition",
    "input_parameters",
    "parse_definition",
]


@dataclass(frozen=True)
class WorkflowDefinition:
    """A definition that passed validation; ``order`` is a topological order of all nodes."""

    nodes: Mapping[str, NodeDef]
    edges: tuple[EdgeDef, ...]
    start_id: str
    end_ids: tuple[str, ...]
    order: tuple[str, ...]
    incoming: Mapping[str, tuple[EdgeDef, ...]]
    outgoing: Mapping[str, tuple[EdgeDef, ...]]
    reachable: frozenset[str]
    raw: Mapping[str, Any]
    # Edges that close a cycle (Tinyflow's back-edges), by source node, kept out of
    # ``incoming``/``outgoing``; and for each, the nodes its loop runs again.
    back_edges: Mapping[str, tuple[EdgeDef, ...]] = field(default_factory=dict)
    loop_regions: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def scope_of(self, node_id: str) -> str | None:
        """The loopNode whose body holds ``node_id`` (None: the main graph)."""
        return self.nodes[node_id].parent_id

    @property
    def start(self) -> NodeDef:
        return self.nodes[self.start_id]

    # What the scheduler derives from the graph: computed on first use and shared, read-only,
    # by every run of this definition (a saved workflow is parsed once and run many times).

    @cached_property
    def position(self) -> Mapping[str, int]:
        """Each node's index in ``order``."""
        return {node_id: index for index, node_id in enumerate(self.order)}

    @cached_property
    def next_edges(self) -> Mapping[str, tuple[EdgeDef, ...]]:
        """Each node's outgoing edges within its own scope (a loop's edges into its body are
        left out: the loop runs its body itself)."""
        return {
            node_id: tuple(
                e
                for e in self.outgoing[node_id]
                if self.nodes[e.target].parent_id == node.parent_id
            )
            for node_id, node in self.nodes.items()
        }

    @cached_property
    def incoming_ids(self) -> Mapping[str, tuple[str, ...]]:
        """Each node's incoming edges from reachable nodes: the ones it waits for."""
        return {
            node_id: tuple(e.id for e in self.incoming[node_id] if e.source in self.reachable)
            for node_id in self.nodes
        }

    @cached_property
    def _scope_counts(self) -> dict[str | None, Mapping[str, int]]:
        return {}

    def scope_counts(self, parent: str | None) -> Mapping[str, int]:
        """For the nodes of one scope (None: the main graph; else a loopNode's body), how many
        incoming edges each waits for."""
        counts = self._scope_counts.get(parent)
        if counts is None:
            counts = self._scope_counts[parent] = {
                node_id: len(self.incoming_ids[node_id])
                for node_id, node in self.nodes.items()
                if node.parent_id == parent
            }
        return counts


# --------------------------------------------------------------------------------------------
# Graph


def _load(data: Any) -> Mapping[str, Any]:
    if isinstance(data, bytes | bytearray):
        data = data.decode("utf-8")
    if isinstance(data, str):
        if not data.strip():
            raise DefinitionError("the workflow definition is empty")
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise DefinitionError(f"the workflow definition is not valid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise DefinitionError("the workflow definition must be a JSON object")
    return data


def _topological_order(
    node_ids: list[str], outgoing: dict[str, list[EdgeDef]], incoming: dict[str, list[EdgeDef]]
) -> list[str]:
    remaining = {node_id: len(incoming[node_id]) for node_id in node_ids}
    queue = [node_id for node_id in node_ids if remaining[node_id] == 0]
    order: list[str] = []
    while queue:
        node_id = queue.pop(0)
        order.append(node_id)
        for edge in outgoing[node_id]:
            remaining[edge.target] -= 1
            if remaining[edge.target] == 0:
                queue.append(edge.target)
    if len(order) != len(node_ids):
        stuck = [node_id for node_id in node_ids if remaining[node_id] > 0]
        cycle_edge = next(
            (edge for node_id in stuck for edge in incoming[node_id] if edge.source in stuck),
            None,
        )
        names = ", ".join(f'"{node_id}"' for node_id in stuck)
        raise DefinitionError(
            f"the workflow has a cycle: nodes {names} depend on each other"
            + (f' (edge "{cycle_edge.id}" closes it)' if cycle_edge else ""),
            node_id=stuck[0],
            edge_id=cycle_edge.id if cycle_edge else None,
        )
    return order


def _back_edges(
    start_id: str,
    node_ids: list[str],
    outgoing: dict[str, list[EdgeDef]],
    incoming: dict[str, list[EdgeDef]],
) -> tuple[dict[str, tuple[EdgeDef, ...]], dict[str, frozenset[str]]]:
    """Take the edges that close a cycle out of ``outgoing``/``incoming`` (in place).

    A back-edge is one that leads to a node on the current path of a depth-first walk from
    the start node, as Tinyflow's editor draws a loop back to an earlier node. Its *region*
    is every node on a path from its target to its source; running the edge runs the region
    again. Only the source (where the loop decides) may have edges leaving the region, so
    that what follows the loop runs once, after it. Cycles that the start node cannot reach
    stay in the graph and are refused as cycles.
    """
    found: list[EdgeDef] = []
    state: dict[str, int] = {}  # 1 on the path, 2 done
    stack: list[tuple[str, int]] = [(start_id, 0)]
    state[start_id] = 1
    while stack:
        node_id, index = stack[-1]
        edges = outgoing[node_id]
        if index >= len(edges):
            state[node_id] = 2
            stack.pop()
            continue
        stack[-1] = (node_id, index + 1)
        edge = edges[index]
        seen = state.get(edge.target)
        if seen == 1:
            found.append(edge)
        elif seen is None:
            state[edge.target] = 1
            stack.append((edge.target, 0))
    by_source: dict[str, tuple[EdgeDef, ...]] = {}
    for edge in found:
        outgoing[edge.source].remove(edge)
        incoming[edge.target].remove(edge)
        by_source[edge.source] = (*by_source.get(edge.source, ()), edge)
    regions: dict[str, frozenset[str]] = {}
    for edge in found:
        after = _reachable(edge.target, outgoing)
        before = _reaching(edge.source, incoming)
        region = frozenset(after & before)
        for node_id in region:
            for leaving in outgoing[node_id]:
                if leaving.target not in region and node_id != edge.source:
                    raise DefinitionError(
                        f'edge "{edge.id}" loops back from "{edge.source}" to "{edge.target}", '
                        f'but edge "{leaving.id}" leaves that loop from "{node_id}": a loop '
                        f'may only be left from the node that loops back ("{edge.source}")',
                        node_id=node_id,
                        edge_id=leaving.id,
                    )
        regions[edge.id] = region
    return by_source, regions


def _reaching(target_id: str, incoming: Mapping[str, list[EdgeDef]]) -> set[str]:
    seen = {target_id}
    stack = [target_id]
    while stack:
        for edge in incoming[stack.pop()]:
            if edge.source not in seen:
                seen.add(edge.source)
                stack.append(edge.source)
    return seen


def _reachable(start_id: str, outgoing: Mapping[str, list[EdgeDef]]) -> set[str]:
    seen = {start_id}
    stack = [start_id]
    while stack:
        for edge in outgoing[stack.pop()]:
            if edge.target not in seen:
                seen.add(edge.target)
                stack.append(edge.target)
    return seen


# --------------------------------------------------------------------------------------------
# References


def _check_refs(
    node: NodeDef,
    parameters: tuple[Parameter, ...],
    nodes: Mapping[str, NodeDef],
    ancestors: Mapping[str, set[str]],
    start_names: frozenset[str],
    what: str,
) -> None:
    for parameter in parameters:
        _check_refs(node, parameter.children, nodes, ancestors, start_names, what)
        if parameter.ref_type != "ref" or not parameter.ref:
            continue
        ref = parameter.ref
        prefix = f'{node.label}: {what} "{parameter.name}" refers to "{ref}"'
        parts = split_path(ref)
        if not parts or not isinstance(parts[0], str):
            raise DefinitionError(f"{prefix}, which is not a valid reference", node_id=node.id)
        names = [str(part) for part in parts]
        source_id = next(
            (
                ".".join(names[:i])
                for i in range(len(names) - 1, 0, -1)
                if ".".join(names[:i]) in nodes
            ),
            None,
        )
        if source_id is None:
            if names[0] in start_names:
                continue
            raise DefinitionError(
                f"{prefix}, which is neither an output of an upstream node nor a start parameter",
                node_id=node.id,
            )
        source = nodes[source_id]
        if source_id not in ancestors[node.id]:
            raise DefinitionError(
                f'{prefix}, but node "{source_id}" does not run before it '
                "(there is no path of edges from it)",
                node_id=node.id,
            )
        output = names[len(source_id.split("."))]
        if source.outputs is not None and output not in source.outputs:
            available = ", ".join(sorted(source.outputs)) or "none"
            raise DefinitionError(
                f'{prefix}, but {source.label} has no output "{output}" (its outputs: {available})',
                node_id=node.id,
            )


def _body_of(loop_id: str, parents: Mapping[str, str]) -> set[str]:
    """Every node inside ``loop_id``'s body, nested loops' bodies included."""
    body: set[str] = set()
    frontier = {loop_id}
    while frontier:
        frontier = {node_id for node_id, parent in parents.items() if parent in frontier} - body
        body |= frontier
    return body


def _check_parents(
    headers: list[tuple[str, str, str, Mapping[str, Any]]], parents: Mapping[str, str]
) -> None:
    types = {h[0]: h[1] for h in headers}
    for node_id, node_type, _title, _data in headers:
        parent = parents.get(node_id)
        if parent is None:
            continue
        if types.get(parent) != "loopNode":
            raise DefinitionError(
                f'node "{node_id}" has parentId "{parent}", which is not a loopNode',
                node_id=node_id,
            )
        if node_type in ("startNode", "endNode"):
            raise DefinitionError(
                f'node "{node_id}": a {node_type} cannot be inside a loop body', node_id=node_id
            )
        if node_id in _body_of(node_id, parents):
            raise DefinitionError(f'node "{node_id}" is inside its own loop body', node_id=node_id)


def parse_definition(data: Mapping[str, Any] | str | bytes) -> WorkflowDefinition:
    """Validate a workflow definition (a dict or its JSON text) and return it parsed.

    Raises :class:`DefinitionError` naming the offending node or edge.
    """
    root = _load(data)
    raw_nodes = root.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise DefinitionError("the workflow has no nodes")
    raw_edges = root.get("edges")
    if raw_edges is None:
        raw_edges = []
    if not isinstance(raw_edges, list):
        raise DefinitionError("the workflow's edges must be a list")

    # Pass 1: identity and type of every node.
    headers: list[tuple[str, str, str, Mapping[str, Any]]] = []
    parents: dict[str, str] = {}
    seen: set[str] = set()
    for index, raw in enumerate(raw_nodes):
        if not isinstance(raw, Mapping):
            raise DefinitionError(f"node #{index + 1} is not an object")
        node_id = loose_text(raw.get("id"))
        if node_id is None:
            raise DefinitionError(f"node #{index + 1} has no id")
        if node_id in seen:
            raise DefinitionError(f'two nodes have the same id "{node_id}"', node_id=node_id)
        seen.add(node_id)
        data_raw = raw.get("data")
        node_data: Mapping[str, Any] = data_raw if isinstance(data_raw, Mapping) else {}
        title = loose_text(node_data.get("title")) or loose_text(raw.get("label")) or node_id
        node_type = loose_text(raw.get("type"))
        label = f'node "{node_id}"' + (f" ({title})" if title != node_id else "")
        if node_type is None:
            raise DefinitionError(f"{label} has no type", node_id=node_id)
        if node_type in KNOWN_UNSUPPORTED_NODE_TYPES:
            raise DefinitionError(
                f'{label}: node type "{node_type}" is not supported yet', node_id=node_id
            )
        if node_type not in SUPPORTED_NODE_TYPES:
            raise DefinitionError(f'{label}: unknown node type "{node_type}"', node_id=node_id)
        headers.append((node_id, node_type, title, node_data))
        parent_id = loose_text(raw.get("parentId"))
        if parent_id:
            parents[node_id] = parent_id.strip()

    starts = [h for h in headers if h[1] == "startNode"]
    ends = [h for h in headers if h[1] == "endNode"]
    if not starts:
        raise DefinitionError("the workflow has no start node (startNode)")
    if len(starts) > 1:
        ids = ", ".join(f'"{h[0]}"' for h in starts)
        raise DefinitionError(
            f"the workflow has {len(starts)} start nodes ({ids}); it needs exactly one",
            node_id=starts[1][0],
        )
    if not ends:
        raise DefinitionError("the workflow has no end node (endNode)")
    start_id = starts[0][0]
    _check_parents(headers, parents)

    # Edges.
    node_ids = [h[0] for h in headers]
    node_types = {h[0]: h[1] for h in headers}
    incoming: dict[str, list[EdgeDef]] = {node_id: [] for node_id in node_ids}
    outgoing: dict[str, list[EdgeDef]] = {node_id: [] for node_id in node_ids}
    edges: list[EdgeDef] = []
    edge_ids: set[str] = set()
    for index, raw in enumerate(raw_edges):
        if not isinstance(raw, Mapping):
            raise DefinitionError(f"edge #{index + 1} is not an object")
        source = loose_text(raw.get("source"))
        target = loose_text(raw.get("target"))
        edge_id = loose_text(raw.get("id")) or f"{source}->{target}"
        if edge_id in edge_ids:
            edge_id = f"{edge_id}#{index + 1}"
        edge_ids.add(edge_id)
        for end, value in (("source", source), ("target", target)):
            if value is None:
                raise DefinitionError(f'edge "{edge_id}" has no {end}', edge_id=edge_id)
            if value not in incoming:
                raise DefinitionError(
                    f'edge "{edge_id}" points to a node that does not exist: {end} "{value}"',
                    edge_id=edge_id,
                )
        assert source is not None and target is not None
        if source == target:
            raise DefinitionError(
                f'edge "{edge_id}" connects node "{source}" to itself (a cycle)',
                node_id=source,
                edge_id=edge_id,
            )
        if node_types[target] == "startNode":
            raise DefinitionError(
                f'edge "{edge_id}" leads into the start node "{target}"; nothing may run '
                "before the start node",
                node_id=target,
                edge_id=edge_id,
            )
        if node_types[source] == "endNode":
            raise DefinitionError(
                f'edge "{edge_id}" leaves the end node "{source}"; an end node must be last',
                node_id=source,
                edge_id=edge_id,
            )
        if parents.get(source) != parents.get(target) and parents.get(target) != source:
            raise DefinitionError(
                f'edge "{edge_id}" connects "{source}" and "{target}", which are in different '
                "loop bodies: a loop body is entered only from its loopNode and left when it "
                "finishes",
                edge_id=edge_id,
            )
        edge_data = raw.get("data") if isinstance(raw.get("data"), Mapping) else {}
        condition = loose_text(edge_data.get("condition"))
        edge = EdgeDef(edge_id, source, target, condition.strip() if condition else None)
        edges.append(edge)
        incoming[target].append(edge)
        outgoing[source].append(edge)
    if not edges:
        raise DefinitionError(
            "the workflow has no edges: connect the start node to the other nodes"
        )

    back_edges, loop_regions = _back_edges(start_id, node_ids, outgoing, incoming)
    order = _topological_order(node_ids, outgoing, incoming)
    reachable = _reachable(start_id, outgoing)
    if not any(h[0] in reachable for h in ends):
        raise DefinitionError(
            f'no end node can be reached from the start node "{start_id}"', node_id=start_id
        )
    ancestors: dict[str, set[str]] = {}
    for node_id in order:
        found: set[str] = set()
        for edge in incoming[node_id]:
            found.add(edge.source)
            found |= ancestors[edge.source]
        ancestors[node_id] = found

    # Pass 2: every node's settings, then the references between them.
    nodes: dict[str, NodeDef] = {}
    for node_id, node_type, title, node_data in headers:
        where = f'node "{node_id}"' + (f" ({title})" if title != node_id else "")
        params = parse_parameters(node_data, "parameters", where, node_id)
        # The editor writes refType "ref" without a ref into every node's outputDefs; only an
        # end node's outputDefs are references.
        output_defs = parse_parameters(
            node_data,
            "outputDefs",
            where,
            node_id,
            references=NODE_TYPES[node_type].output_defs_are_refs,
        )
        condition = loose_text(node_data.get("condition"))
        retry_enable = loose_bool(node_data.get("retryEnable"))
        max_retry = loose_number(
            node_data.get("maxRetryCount"), f"{where}: maxRetryCount", node_id, integer=True
        )
        interval = loose_number(
            node_data.get("retryIntervalMs"), f"{where}: retryIntervalMs", node_id, integer=True
        )
        kind = NODE_TYPES[node_type]
        config = kind.parse_config(node_data, node_id, where)
        loop_enable = loose_bool(node_data.get("loopEnable"))
        max_loop = loose_number(
            node_data.get("maxLoopCount"), f"{where}: maxLoopCount", node_id, integer=True
        )
        loop_interval = loose_number(
            node_data.get("loopIntervalMs"), f"{where}: loopIntervalMs", node_id, integer=True
        )
        break_condition = loose_text(node_data.get("loopBreakCondition"))
        nodes[node_id] = NodeDef(
            id=node_id,
            type=node_type,
            title=title,
            data=node_data,
            parameters=params,
            output_defs=output_defs,
            condition=condition.strip() if condition else None,
            retry_enable=retry_enable,
            max_retry_count=max(0, int(max_retry)) if max_retry is not None else 3,
            retry_interval_ms=max(0, int(interval)) if interval is not None else 1000,
            outputs=kind.declared_outputs(node_data, params, output_defs),
            config=MappingProxyType(config),
            loop_enable=loop_enable,
            max_loop_count=max(0, int(max_loop)) if max_loop is not None else 0,
            loop_break_condition=break_condition.strip() if break_condition else None,
            loop_interval_ms=max(0, int(loop_interval)) if loop_interval is not None else 0,
            parent_id=parents.get(node_id),
        )

    start_names = frozenset(p.name for p in nodes[start_id].parameters)
    for node in nodes.values():
        # Nodes no edge leads to (drafts left on the canvas) never run: their refs don't matter.
        if node.id not in reachable:
            continue
        kind = NODE_TYPES[node.type]
        if kind.parameters_are_refs:
            _check_refs(node, node.parameters, nodes, ancestors, start_names, "parameter")
        if kind.output_defs_are_refs:
            _check_refs(node, node.output_defs, nodes, ancestors, start_names, "output")
        for key in kind.ref_parameter_keys:
            extra = node.config.get(key)
            if extra:
                _check_refs(node, extra, nodes, ancestors, start_names, "parameter")
        if node.type == "loopNode":
            # A loop's outputs are collected from its body after each iteration.
            body = {node.id: _body_of(node.id, parents) | ancestors[node.id]}
            _check_refs(node, node.output_defs, nodes, body, start_names, "output")

    return WorkflowDefinition(
        nodes=MappingProxyType(nodes),
        edges=tuple(edges),
        start_id=start_id,
        end_ids=tuple(h[0] for h in ends),
        order=tuple(order),
        incoming=MappingProxyType({k: tuple(v) for k, v in incoming.items()}),
        outgoing=MappingProxyType({k: tuple(v) for k, v in outgoing.items()}),
        reachable=frozenset(reachable),
        raw=root,
        back_edges=MappingProxyType(back_edges),
        loop_regions=MappingProxyType(loop_regions),
    )


# --------------------------------------------------------------------------------------------
# The start node's parameters, as callers see them


@dataclass(frozen=True, slots=True)
class StartParameter:
    """A run input as ``getRunningParams`` reports it."""

    id: str | None
    name: str
    data_type: str
    description: str
    ref_type: str
    required: bool
    default_value: Any = None
    enums: list[Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def input_parameters(defn: WorkflowDefinition) -> list[StartParameter]:
    """The start node's parameters; ``refType`` and ``dataType`` as written in the definition."""
    return [
        StartParameter(
            id=p.id,
            name=p.name,
            data_type=p.data_type_raw or "String",
            description=p.description or "",
            ref_type=p.ref_type_raw or "input",
            required=p.required,
            default_value=p.default_value,
            enums=p.enums,
            extra=dict(p.form_hints),
        )
        for p in defn.start.parameters
    ]
