"""codeNode: JavaScript in the sandbox of :mod:`..js`. The code fills ``_result``, whose keys
are the outputs (all of them, declared in ``outputDefs`` or not, as in Tinyflow). AIFlowy also
offers qlexpress and groovy; those are refused when the definition is saved, naming the engine.

``{{name}}`` placeholders in the code: Tinyflow fills them before running the script. Filling
them by splicing text let a caller's value become code (input
``x"; _result.greeting = "INJECTED"; //`` ran), so here the code is rewritten once, when the
definition is parsed, to *read* the values instead: inside a string literal
``'Hi {{name}}!'`` becomes ``('Hi ' + <text of name> + '!')``, inside a template literal
``${<text of name>}``, and in code ``{{count}} + 1`` becomes ``(<value of count>) + 1``. The
values travel to V8 as JSON data (``__aiflowyPlaceholders``), never as source text.
Placeholders in comments and regular expression literals are left as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import DefinitionError
from ..js import run_code
from ..model import Parameter, loose_text
from ..values import make_lookup, render_text, split_path
from .base import NodeContext, NodeType, resolve_parameters

JS_ENGINES = frozenset({"js", "javascript"})
PLACEHOLDERS = "__aiflowyPlaceholders"

_PLACEHOLDER_RE = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
# After one of these (or at the start), "/" starts a regular expression, not a division.
_REGEX_PRECEDERS = set("(,=:[!&|?{};+-*%<>~^")
_REGEX_KEYWORDS = ("return", "typeof", "case", "do", "else", "in", "of", "void", "yield")


def _regex_may_start(code: str, index: int) -> bool:
    before = code[:index].rstrip()
    if not before:
        return True
    if before[-1] in _REGEX_PRECEDERS:
        return True
    return any(
        before.endswith(word) and (len(before) == len(word) or not before[-len(word) - 1].isalnum())
        for word in _REGEX_KEYWORDS
    )


def _end_of_string(code: str, start: int) -> int:
    quote = code[start]
    index = start + 1
    while index < len(code):
        char = code[index]
        if char == "\\":
            index += 2
            continue
        if char == quote or (char == "\n" and quote != "`"):
            return index + 1
        index += 1
    return len(code)


def _end_of_regex(code: str, start: int) -> int:
    index, in_class = start + 1, False
    while index < len(code) and code[index] != "\n":
        char = code[index]
        if char == "\\":
            index += 2
            continue
        if char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "/" and not in_class:
            return index + 1
        index += 1
    return index


def rewrite_placeholders(code: str) -> tuple[str, tuple[str, ...]]:
    """``code`` with each ``{{expr}}`` turned into a read of ``__aiflowyPlaceholders``, and
    the expressions in order. Text that is not a placeholder is kept byte for byte."""
    if "{{" not in code:
        return code, ()
    expressions: list[str] = []

    def slot(match: re.Match[str], form: str) -> str:
        expressions.append(match.group(1))
        return f"{PLACEHOLDERS}.{form}[{len(expressions) - 1}]"

    out: list[str] = []
    index = 0
    while index < len(code):
        char = code[index]
        pair = code[index : index + 2]
        if pair == "//":
            end = code.find("\n", index)
            end = len(code) if end < 0 else end
        elif pair == "/*":
            end = code.find("*/", index + 2)
            end = len(code) if end < 0 else end + 2
        elif char == "/" and _regex_may_start(code, index):
            end = _end_of_regex(code, index)
        elif char in "'\"":
            end = _end_of_string(code, index)
            literal = code[index:end]
            if _PLACEHOLDER_RE.search(literal):
                quote = char
                joined = _PLACEHOLDER_RE.sub(
                    lambda m, q=quote: f"{q} + {slot(m, 'text')} + {q}", literal
                )
                out.append(f"({joined})")
                index = end
                continue
        elif char == "`":
            end = _end_of_string(code, index)
            out.append(_PLACEHOLDER_RE.sub(lambda m: "${" + slot(m, "text") + "}", code[index:end]))
            index = end
            continue
        elif pair == "{{":
            match = _PLACEHOLDER_RE.match(code, index)
            if match:
                out.append(f"({slot(match, 'value')})")
                index = match.end()
                continue
            end = index + 1
        else:
            end = index + 1
        out.append(code[index:end])
        index = end
    return "".join(out), tuple(expressions)


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
    script, placeholders = rewrite_placeholders(code)
    return {"engine": "js", "code": code, "script": script, "placeholders": placeholders}


def declared_outputs(
    data: Mapping[str, Any], params: tuple[Parameter, ...], output_defs: tuple[Parameter, ...]
) -> frozenset[str] | None:
    # Without outputDefs, whatever the code puts in _result is an output: unknown until it runs.
    return frozenset(p.name for p in output_defs) if output_defs else None


def _placeholder_values(
    expressions: tuple[str, ...], ctx: NodeContext, params: Mapping[str, Any]
) -> dict[str, list[Any]]:
    """Each placeholder's text (as Tinyflow would have filled it; written as is when it has
    no value) and value (the value itself for a plain path, else that text)."""
    lookup = make_lookup(params, ctx.memory)
    own_names = frozenset(params)
    texts: list[str] = []
    values: list[Any] = []
    for expression in expressions:
        written = "{{" + expression + "}}"
        text = render_text(written, lookup, own_names=own_names, strict=False)
        value = lookup(expression) if split_path(expression) is not None else None
        texts.append(text)
        values.append(value if value is not None else (None if text == written else text))
    return {"text": texts, "value": values}


async def execute(ctx: NodeContext) -> dict[str, Any]:
    node = ctx.node
    params = resolve_parameters(node.parameters, ctx.memory)
    ctx.inputs.update(params)
    variables: dict[str, Any] = {**ctx.memory.bare(), **params}
    if node.config["placeholders"]:
        variables[PLACEHOLDERS] = _placeholder_values(node.config["placeholders"], ctx, params)
    # Tinyflow's _state/_chain, when the script uses them (read-only stand-ins, see ..state).
    script = node.config["script"]
    prelude, state = ctx.script_state(script) if ctx.script_state else ("", {})
    result = await run_code(
        script,
        {**variables, **state},
        setup=prelude or None,
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
