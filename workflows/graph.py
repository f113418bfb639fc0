"""A workflow definition drawn as a static SVG, rendered on the server (the admin's browser may
have no internet, so no JavaScript library or CDN is involved).

Nodes are laid out left to right in layers (a node's layer is the longest edge path that leads
to it), each layer in the order the definition lists its nodes; edges are curves with arrow
heads, conditions are printed on them. It draws whatever `nodes`/`edges` the JSON holds, so an
invalid definition can still be looked at.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

NODE_WIDTH = 210
NODE_HEIGHT = 64
LAYER_GAP = 90
ROW_GAP = 36
MARGIN = 24

COLOURS = {
    "startNode": "#2e7d32",
    "endNode": "#c62828",
    "llmNode": "#6a1b9a",
    "httpNode": "#1565c0",
    "templateNode": "#00838f",
    "codeNode": "#ef6c00",
}
DEFAULT_COLOUR = "#546e7a"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _layers(node_ids: list[str], edges: list[tuple[str, str, str, str]]) -> dict[str, int]:
    """Longest-path layering; bounded, so a cycle in an invalid definition cannot hang it."""
    layer = dict.fromkeys(node_ids, 0)
    for _ in range(len(node_ids)):
        changed = False
        for _edge_id, source, target, _condition in edges:
            if layer[target] < layer[source] + 1 and layer[source] + 1 < len(node_ids):
                layer[target] = layer[source] + 1
                changed = True
        if not changed:
            break
    return layer


def definition_svg(definition: Any) -> SafeString:
    """The definition as an `<svg>` element (every text from the JSON is escaped)."""
    definition = definition if isinstance(definition, Mapping) else {}
    raw_nodes = [n for n in definition.get("nodes") or [] if isinstance(n, Mapping)]
    nodes: dict[str, Mapping[str, Any]] = {}
    for node in raw_nodes:
        node_id = _text(node.get("id"))
        if node_id and node_id not in nodes:
            nodes[node_id] = node
    edges: list[tuple[str, str, str, str]] = []
    for index, edge in enumerate(definition.get("edges") or []):
        if not isinstance(edge, Mapping):
            continue
        source, target = _text(edge.get("source")), _text(edge.get("target"))
        if source in nodes and target in nodes and source != target:
            data = edge.get("data") if isinstance(edge.get("data"), Mapping) else {}
            edges.append(
                (
                    _text(edge.get("id")) or f"edge {index + 1}",
                    source,
                    target,
                    _text(data.get("condition")).strip(),
                )
            )
    if not nodes:
        return mark_safe(
            '<svg xmlns="http://www.w3.org/2000/svg" class="workflow-graph" width="320" '
            f'height="60" role="img" aria-label="{escape(gettext("empty workflow"))}">'
            '<text x="12" y="34" font-family="sans-serif" font-size="14">'
            f"{escape(gettext('(no nodes)'))}</text></svg>"
        )

    layer_of = _layers(list(nodes), edges)
    rows: dict[int, int] = {}
    position: dict[str, tuple[int, int]] = {}
    for node_id in nodes:
        layer = layer_of[node_id]
        row = rows.get(layer, 0)
        rows[layer] = row + 1
        position[node_id] = (
            MARGIN + layer * (NODE_WIDTH + LAYER_GAP),
            MARGIN + row * (NODE_HEIGHT + ROW_GAP),
        )
    width = MARGIN * 2 + (max(layer_of.values()) + 1) * (NODE_WIDTH + LAYER_GAP) - LAYER_GAP
    height = MARGIN * 2 + max(rows.values()) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP + 20

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="workflow-graph" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(gettext("workflow graph"))}" font-family="sans-serif">',
        '<defs><marker id="wf-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#607d8b"/></marker></defs>',
    ]
    for edge_id, source, target, condition in edges:
        sx, sy = position[source]
        tx, ty = position[target]
        x1, y1 = sx + NODE_WIDTH, sy + NODE_HEIGHT // 2
        x2, y2 = tx, ty + NODE_HEIGHT // 2
        if x2 <= x1:  # a back edge (only in an invalid, cyclic definition): loop below
            bottom = max(sy, ty) + NODE_HEIGHT + ROW_GAP // 2
            path = f"M{x1},{y1} C{x1 + 60},{bottom} {x2 - 60},{bottom} {x2},{y2}"
        else:
            mid = (x1 + x2) // 2
            path = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
        title = gettext("edge %(edge)s: %(source)s → %(target)s") % {
            "edge": edge_id,
            "source": source,
            "target": target,
        } + (gettext(" when %(condition)s") % {"condition": condition} if condition else "")
        dashes = 'stroke-dasharray="5 3" ' if condition else ""
        parts.append(
            f'<g class="wf-edge" data-edge-id="{escape(edge_id)}"><title>{escape(title)}</title>'
            f'<path d="{path}" fill="none" stroke="#607d8b" stroke-width="1.6" '
            f'{dashes}marker-end="url(#wf-arrow)"/>'
        )
        if condition:
            parts.append(
                f'<text x="{(x1 + x2) // 2}" y="{(y1 + y2) // 2 - 6}" text-anchor="middle" '
                f'font-size="11" fill="#37474f">{escape(_clip(condition, 34))}</text>'
            )
        parts.append("</g>")
    for node_id, node in nodes.items():
        x, y = position[node_id]
        node_type = _text(node.get("type")) or "?"
        data = node.get("data") if isinstance(node.get("data"), Mapping) else {}
        title = _text(data.get("title")).strip() or node_id
        colour = COLOURS.get(node_type, DEFAULT_COLOUR)
        node_tooltip = gettext("%(title)s (%(type)s, id %(id)s)") % {
            "title": title,
            "type": node_type,
            "id": node_id,
        }
        parts.append(
            f'<g class="wf-node" data-node-id="{escape(node_id)}" '
            f'data-node-type="{escape(node_type)}">'
            f"<title>{escape(node_tooltip)}</title>"
            f'<rect x="{x}" y="{y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="8" '
            f'fill="#ffffff" stroke="{colour}" stroke-width="2"/>'
            f'<rect x="{x}" y="{y}" width="6" height="{NODE_HEIGHT}" rx="3" fill="{colour}"/>'
            f'<text x="{x + 16}" y="{y + 26}" font-size="14" font-weight="bold" '
            f'fill="#263238">{escape(_clip(title, 24))}</text>'
            f'<text x="{x + 16}" y="{y + 47}" font-size="11" fill="{colour}">'
            f"{escape(_clip(f'{node_type} · {node_id}', 32))}</text></g>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))
