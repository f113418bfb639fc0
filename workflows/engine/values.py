"""Values inside a run: data types, ``ref`` lookup, and text placeholders.

Three rules from AIFlowy/Tinyflow that everything here follows:

* **Lookup** (``RunMemory.resolve``): the exact key first, then the longest ``<nodeId>.<output>``
  prefix that exists, then a JSON path into that value (``http1.body.data.ip``,
  ``http1.body.items[0].name``; a name applied to a list maps over its items, as JSONPath does).
* **Types**: values are JSON values. ``dataType`` (``String``, ``Number``, ``Boolean``,
  ``Object``, ``Array``, ``Array<T>``, ``File``; absent = ``String``) only converts *strings*
  (``"42"`` → 42, ``"true"`` → True, ``'{"a":1}'`` → dict), because loose exports write numbers
  as strings.
* **Placeholders** are substitution only — nothing is ever evaluated. Supported forms:
  ``{{path}}`` / ``{{path ?? 'default'}}`` / ``{{path ??}}`` (Tinyflow), ``#(path)`` and
  ``#(path ?? 'default')`` (Enjoy, template nodes only), and ``{name}`` (older prompts) only
  where ``name`` is one of the node's own parameters. Anything that is not a plain path or
  quoted literal is left exactly as written, as is every other Enjoy directive.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import NodeFailed

# --------------------------------------------------------------------------------------------
# Data types


@dataclass(frozen=True, slots=True)
class DataType:
    """A parsed ``dataType``: ``base`` is one of the canonical names or ``None`` for unknown."""

    base: str | None
    item: DataType | None = None
    raw: str = "String"

    @property
    def label(self) -> str:
        if self.base == "Array" and self.item is not None:
            return f"Array<{self.item.label}>"
        return self.base or self.raw


_BASES = {name.lower(): name for name in ("String", "Number", "Boolean", "Object", "Array", "File")}
_ARRAY_RE = re.compile(r"^\s*array\s*<\s*(.+?)\s*>\s*$", re.IGNORECASE)


def parse_data_type(raw: Any) -> DataType:
    """Parse a ``dataType`` string case-insensitively; absent or blank means String."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return DataType("String", raw="String")
    text = str(raw).strip()
    match = _ARRAY_RE.match(text)
    if match:
        return DataType("Array", parse_data_type(match.group(1)), raw=text)
    return DataType(_BASES.get(text.lower()), raw=text)


class CoercionError(ValueError):
    """The value does not fit the declared data type (message says what was expected)."""


def _describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _to_number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise CoercionError(f"expected a number, got {_describe(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CoercionError(f"expected a finite number, got {value}")
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            raise CoercionError(f"expected a number, got {_describe(value)}") from None
        if not math.isfinite(number):
            raise CoercionError(f"expected a finite number, got {_describe(value)}")
        return number
    raise CoercionError(f"expected a number, got {_describe(value)}")


_TRUE_TEXTS = frozenset({"true", "1"})
_FALSE_TEXTS = frozenset({"false", "0"})


def _to_bool(value: Any) -> bool:
    """Tinyflow reads ``"true"`` and ``"1"`` as true (``ChainState.resolveParameters``); we
    also read ``"false"``/``"0"`` as false and refuse other text instead of calling it false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_TEXTS or text in _FALSE_TEXTS:
            return text in _TRUE_TEXTS
    raise CoercionError(f"expected a boolean (true, false, 1 or 0), got {_describe(value)}")


def _parse_json_text(value: str, kind: type, label: str) -> Any:
    try:
        parsed = json.loads(value)
    except ValueError:
        raise CoercionError(f"expected {label}, got {_describe(value)}") from None
    if not isinstance(parsed, kind):
        raise CoercionError(f"expected {label}, got {_describe(value)}")
    return parsed


def _to_file_url(value: Any) -> str:
    if isinstance(value, str):
        text = value.strip()
        parts = urlsplit(text)
        if parts.scheme.lower() in ("http", "https") and parts.netloc:
            return text
    raise CoercionError(f"expected a file URL (http or https), got {_describe(value)}")


def coerce(value: Any, data_type: DataType, *, strict: bool) -> Any:
    """Convert ``value`` to ``data_type``.

    ``strict`` (caller inputs) trims text and also checks values that are already typed, e.g.
    refuses a number where an Object is declared (an object for a String becomes JSON text);
    non-strict (values inside a run) converts strings only,
    like Tinyflow, and lets other values through.
    """
    base = data_type.base
    if strict and isinstance(value, str):
        # Tinyflow trims every text input before using it.
        value = value.strip()
    if value is None or base is None:
        return value
    if base == "String":
        if isinstance(value, str):
            return value
        if not strict:
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        # An object or list given for a String parameter becomes its JSON text, as Tinyflow
        # hands it on (fastjson's compact form).
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if base == "Number":
        if strict or isinstance(value, str):
            return _to_number(value)
        return value
    if base == "Boolean":
        if strict or isinstance(value, str):
            return _to_bool(value)
        return value
    if base == "Object":
        if isinstance(value, str):
            return _parse_json_text(value, dict, "an object")
        if strict and not isinstance(value, dict):
            raise CoercionError(f"expected an object, got {_describe(value)}")
        return value
    if base == "File":
        return _to_file_url(value) if strict else value
    # Array / Array<T>
    if isinstance(value, str):
        value = _parse_json_text(value, list, "an array")
    if not isinstance(value, list):
        if strict:
            raise CoercionError(f"expected an array, got {_describe(value)}")
        return value
    if data_type.item is None:
        return value
    items = []
    for index, item in enumerate(value):
        try:
            items.append(coerce(item, data_type.item, strict=strict))
        except CoercionError as exc:
            raise CoercionError(f"item {index}: {exc}") from None
    return items


def is_blank(value: Any) -> bool:
    """Missing for the purpose of ``required``: None or a blank string."""
    return value is None or (isinstance(value, str) and not value.strip())


# --------------------------------------------------------------------------------------------
# Paths and run memory

_SEGMENT_RE = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def split_path(path: str) -> list[str | int] | None:
    """``a.b[0].c`` → ``["a", "b", 0, "c"]``; None if the text is not a plain path."""
    parts: list[str | int] = []
    position = 0
    text = path.strip()
    if not text:
        return None
    while position < len(text):
        if text[position] == "." and parts:
            position += 1
        match = _SEGMENT_RE.match(text, position)
        if not match:
            return None
        if match.group(1) is not None:
            name = match.group(1)
            if not _NAME_RE.fullmatch(name):
                return None
            parts.append(int(name) if name.isdigit() and parts else name)
        else:
            if not parts:
                return None
            parts.append(int(match.group(2)))
        position = match.end()
    return parts


# Names in paths: identifiers in any script (Chinese parameter names are common), digits,
# '-' and '$'. No spaces, quotes, operators or parentheses — so no code can sneak through.
_NAME_RE = re.compile(r"[\w$\-]+")


def walk(value: Any, parts: list[str | int]) -> Any:
    """Follow ``parts`` into ``value``; a name applied to a list maps over its items."""
    current = value
    for index, part in enumerate(parts):
        if current is None:
            return None
        if isinstance(current, list):
            if isinstance(part, int):
                current = current[part] if -len(current) <= part < len(current) else None
                continue
            rest = parts[index:]
            return [walk(item, rest) for item in current]
        if isinstance(current, Mapping):
            key = str(part)
            current = current.get(key)
            continue
        return None
    return current


class RunMemory:
    """The run's values, keyed ``<nodeId>.<output>``, plus the caller's variables by name."""

    def __init__(self, variables: Mapping[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = dict(variables or {})
        self.variable_names: frozenset[str] = frozenset(self.values)

    def set_outputs(self, node_id: str, outputs: Mapping[str, Any]) -> None:
        for key, value in outputs.items():
            self.values[f"{node_id}.{key}"] = value

    def resolve(self, path: str | None) -> Any:
        """Tinyflow's lookup: exact key, longest existing prefix, then a path into it."""
        if not path or not isinstance(path, str):
            return None
        path = path.strip()
        if path in self.values:
            return self.values[path]
        parts = split_path(path)
        if not parts:
            return None
        # Longest prefix made of whole dotted names (``start1.ipAddress`` in
        # ``start1.ipAddress.length``), then walk the rest.
        names: list[str] = []
        for part in parts:
            if not isinstance(part, str):
                break
            names.append(part)
        for count in range(len(names), 0, -1):
            key = ".".join(names[:count])
            if key in self.values:
                return walk(self.values[key], parts[count:])
        return None

    def bare(self) -> dict[str, Any]:
        """Entries without a node prefix: the caller's variables."""
        return {key: value for key, value in self.values.items() if "." not in key}


# --------------------------------------------------------------------------------------------
# Placeholders

_LITERAL_RE = re.compile(r"""^(?:'(.*)'|"(.*)")$""", re.DOTALL)
_TOKEN_RE = re.compile(
    r"\{\{\s*(?P<mustache>[^{}]+?)\s*\}\}"
    r"|#\((?P<enjoy>[^()]+?)\)"
    r"|\{(?P<single>[\w$]+(?:\.[\w$\-]+)*)\}"
)


def render_value(value: Any, *, json_escape: bool = False) -> str:
    """How a value appears in text: strings as is, objects and arrays as compact JSON."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)[1:-1] if json_escape else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


Lookup = Callable[[str], Any]


def make_lookup(own: Mapping[str, Any] | None, memory: RunMemory | None) -> Lookup:
    """Placeholder names see the node's own parameters first, then the run's memory."""

    def lookup(path: str) -> Any:
        parts = split_path(path)
        if not parts:
            return None
        if own is not None and isinstance(parts[0], str) and parts[0] in own:
            return walk(own[parts[0]], parts[1:])
        if memory is not None:
            return memory.resolve(path)
        return None

    return lookup


def _evaluate(expression: str, lookup: Lookup) -> tuple[bool, Any, bool]:
    """(understood, value, has_fallback) for ``path ?? 'x' ?? other``."""
    alternatives = [part.strip() for part in expression.split("??")]
    has_fallback = len(alternatives) > 1
    for alternative in alternatives:
        if alternative == "":
            return True, "", has_fallback
        literal = _LITERAL_RE.match(alternative)
        if literal:
            text = literal.group(1) if literal.group(1) is not None else literal.group(2)
            return True, text, has_fallback
        if split_path(alternative) is None:
            return False, None, has_fallback
        value = lookup(alternative)
        if value is not None:
            return True, value, has_fallback
    return True, None, has_fallback


def render_text(
    template: str | None,
    lookup: Lookup,
    *,
    own_names: frozenset[str] | set[str] = frozenset(),
    json_escape: bool = False,
    enjoy: bool = False,
    single_brace: bool = True,
    strict: bool = True,
) -> str:
    """Fill the placeholders of ``template`` in one pass (filled text is never re-scanned).

    ``strict``: a ``{{name}}`` without a value and without a ``??`` fallback is an error
    (Tinyflow's rule — it catches typos); otherwise it is left as written. ``#(name)`` and
    ``{name}`` render a missing value as an empty string.
    """
    if not template:
        return ""

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if match.group("mustache") is not None:
            understood, value, has_fallback = _evaluate(match.group("mustache"), lookup)
            if not understood:
                return whole
            if value is None:
                if not strict:
                    return whole
                hint = ""
                if not has_fallback:
                    optional = "{{" + match.group("mustache") + " ?? ''}}"
                    hint = f" (write {optional} if it is optional)"
                raise NodeFailed(f"placeholder {whole} has no value{hint}")
            return render_value(value, json_escape=json_escape)
        if match.group("enjoy") is not None:
            if not enjoy:
                return whole
            understood, value, _ = _evaluate(match.group("enjoy"), lookup)
            if not understood:
                return whole
            return "" if value is None else render_value(value, json_escape=json_escape)
        name = match.group("single")
        if not single_brace or name.split(".", 1)[0] not in own_names:
            return whole
        value = lookup(name)
        return "" if value is None else render_value(value, json_escape=json_escape)

    return _TOKEN_RE.sub(replace, template)


_PLAIN_TYPES = frozenset({str, int, bool, type(None)})


def to_jsonable(value: Any) -> Any:
    """A deep copy that ``json.dumps`` accepts (unknown objects become strings)."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return value
    if kind is dict:
        # (the common case, checked by exact type first: every step records three of them)
        return {
            key if type(key) is str else str(key): item
            if type(item) in _PLAIN_TYPES
            else to_jsonable(item)
            for key, item in value.items()
        }
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    return str(value)
