"""The workflow checker's messages in the operator's language, for the admin.

The engine (`workflows/engine/`, plain Python without Django) writes its definition errors in
English, and the API passes them on as they are. The admin shows them translated: each
message shape the checker writes is listed below once, in English with `{name}` holes; a
message is matched against the shapes, its translated template (`gettext`, msgid with
`%(name)s`) is filled with the captured parts, and the parts are translated the same way
(`node "llm" (Write)` → `节点 "llm"（Write）`). A message of no known shape stays English.
"""

from __future__ import annotations

import re
from functools import cache

from django.utils.functional import lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_noop as _noop

# Most specific first: the first shape that matches the whole message wins.
CHECKER_SHAPES = [
    _noop("Invalid workflow definition: {error}"),
    _noop('{label}: {what} "{name}" refers to "{ref}", which is not a valid reference'),
    _noop(
        '{label}: {what} "{name}" refers to "{ref}", which is neither an output of an upstream '
        "node nor a start parameter"
    ),
    _noop(
        '{label}: {what} "{name}" refers to "{ref}", but node "{source}" does not run before '
        "it (there is no path of edges from it)"
    ),
    _noop(
        '{label}: {what} "{name}" refers to "{ref}", but {source} has no output "{output}" '
        "(its outputs: {available})"
    ),
    _noop("{what} must be a whole number, got {value}"),
    _noop("{what} must be a number, got {value}"),
    _noop("{where}: each parameter must be an object"),
    _noop("{where}: a parameter has no name"),
    _noop('{where}: parameter "{name}" is a reference but no value is selected for it'),
    _noop("the workflow definition is empty"),
    _noop("the workflow definition is not valid JSON: {detail}"),
    _noop("the workflow definition must be a JSON object"),
    _noop('the workflow has a cycle: nodes {names} depend on each other (edge "{edge}" closes it)'),
    _noop("the workflow has a cycle: nodes {names} depend on each other"),
    _noop("the workflow has no nodes"),
    _noop("the workflow's edges must be a list"),
    _noop("the workflow has no start node (startNode)"),
    _noop("the workflow has {count} start nodes ({ids}); it needs exactly one"),
    _noop("the workflow has no end node (endNode)"),
    _noop("the workflow has no edges: connect the start node to the other nodes"),
    _noop('no end node can be reached from the start node "{node}"'),
    _noop("node #{number} is not an object"),
    _noop("node #{number} has no id"),
    _noop('two nodes have the same id "{node}"'),
    _noop("edge #{number} is not an object"),
    _noop('edge "{edge}" points to a node that does not exist: {end} "{node}"'),
    _noop('edge "{edge}" connects node "{node}" to itself (a cycle)'),
    _noop(
        'edge "{edge}" leads into the start node "{node}"; nothing may run before the start node'
    ),
    _noop('edge "{edge}" leaves the end node "{node}"; an end node must be last'),
    _noop('edge "{edge}" has no {end}'),
    _noop('{where}: node type "{type}" is not supported yet'),
    _noop('{where}: unknown node type "{type}"'),
    _noop("{where}: the HTTP node has no URL"),
    _noop('{where}: unknown HTTP method "{method}"'),
    _noop('{where}: unknown bodyType "{body_type}" (use one of: {choices})'),
    _noop("{where}: the LLM node has no user prompt"),
    _noop('{where}: code engine "{engine}" is not supported (only JavaScript: "js")'),
    _noop("{where}: the code node has no code"),
    _noop("{label} has no type"),
    # A test run's inputs (the engine's input checks).
    _noop("variables must be a JSON object"),
    _noop("missing required parameter {parameter}"),
    _noop("invalid value for parameter {parameter}: must be one of {choices}"),
    _noop("invalid value for parameter {parameter}: {detail}"),
    _noop('node "{node}" ({title})'),
    _noop('node "{node}"'),
    _noop('edge "{edge}"'),
    _noop("{message} ({hints})"),
]
_HOLE = re.compile(r"\{(\w+)\}")


def _msgid(shape: str) -> str:
    """The catalog's msgid of a shape: `{name}` holes as `%(name)s`."""
    return _HOLE.sub(r"%(\1)s", shape)


@cache
def _patterns() -> list[tuple[re.Pattern, str]]:
    compiled = []
    for shape in CHECKER_SHAPES:
        pieces = _HOLE.split(shape)
        regex = "".join(
            re.escape(piece) if index % 2 == 0 else f"(?P<{piece}>.+?)"
            for index, piece in enumerate(pieces)
        )
        compiled.append((re.compile(f"^{regex}$", re.S), _msgid(shape)))
    return compiled


def checker_message(message: str, *, depth: int = 0) -> str:
    """`message` in the active language, if it has a known shape; else unchanged."""
    if depth > 4:
        return message
    for pattern, msgid in _patterns():
        match = pattern.match(message)
        if match is None:
            continue
        parts = {
            name: checker_message(value, depth=depth + 1) if name != "detail" else value
            for name, value in match.groupdict().items()
        }
        if "hints" in parts:
            parts["hints"] = ", ".join(
                checker_message(hint.strip(), depth=depth + 1) for hint in match["hints"].split(",")
            )
        return gettext(msgid) % parts
    return message


checker_message_lazy = lazy(checker_message, str)
