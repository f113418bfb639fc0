"""Enjoy templates: the subset of JFinal Enjoy that Tinyflow's ``templateNode`` workflows use.

Tinyflow renders a template node with JFinal's Enjoy engine, so AIFlowy users write
``#(name ?? 'x')``, ``#if(...)/#elseif(...)/#else/#end``, ``#for(x : list)`` with
``for.index``/``for.count``/``for.size``/``for.first``/``for.last``/``for.odd``/``for.even``/
``for.outer``, ``#set(a = 1, b += 2)``, ``#switch(x) #case(1, 2) … #default … #end``,
``#break``/``#continue``, comments (``## line``, ``#-- block --#``), raw text (``#[[ … ]]#``),
``\\#`` for a literal ``#``, and method calls such as ``name.toUpperCase()``.

Why our own parser and evaluator instead of a general template engine: templates are written
by operators but fed with callers' values, so evaluation must never reach a Python object,
attribute or callable. Values here are only JSON-like (None, bool, int, float, str, list,
dict); a method call is a lookup in a fixed table per value kind (:data:`_METHODS`), and
everything else is an error that names the template line. Loops, output and string growth
are bounded (:data:`MAX_ITERATIONS`, :data:`MAX_OUTPUT_CHARS`).

Semantics follow Enjoy (Java): ``+`` with a string concatenates (``null`` prints as
``null``), integer division truncates, ``==`` compares numbers by value, truthiness is Enjoy's
(null, false, 0, empty string/list/map are false), ``??`` binds tighter than arithmetic and
makes a method call on null give null, a directive alone on its line leaves no blank line,
``#(x)`` of null prints nothing. Deliberate differences: field access on null gives null
(Enjoy raises without ``??``), lists and maps print as compact JSON (Java prints ``[a, b]``/
``{k=v}``), unknown directives (``#include``, ``#date``…) stay literal text, and
``list.join(sep)`` exists (Java spells it ``String.join``).

A template is compiled once (:func:`compile_template`, cached by text) into Python closures;
rendering walks no syntax tree.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["MAX_ITERATIONS", "MAX_OUTPUT_CHARS", "EnjoyError", "Template", "compile_template"]

MAX_ITERATIONS = 100_000
MAX_OUTPUT_CHARS = 5_000_000

Lookup = Callable[[str], Any]
TextFiller = Callable[[str], str]


class EnjoyError(Exception):
    """A template cannot be compiled or rendered; ``line`` is 1-based in the template."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"template line {line}: {message}")
        self.message = message
        self.line = line


class _NullAccess(EnjoyError):
    """A method was called on null: ``??`` turns it into null, elsewhere it is an error."""


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Values (Java-like semantics over JSON-like Python values)


def _is_number(value: Any) -> bool:
    kind = type(value)
    if kind is int or kind is float:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool)


def truthy(value: Any) -> bool:
    """Enjoy's truth: null, false, 0, NaN and empty strings, lists and maps are false."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0 and value == value
    if isinstance(value, str | list | dict | tuple):
        return len(value) > 0
    return True


def to_text(value: Any) -> str:
    """How a value prints: strings as is, numbers and booleans as Java, lists/maps as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _concat_text(value: Any) -> str:
    return "null" if value is None else to_text(value)


_KIND_OF_TYPE: dict[type, str] = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "list",
    tuple: "list",
    range: "list",
    dict: "map",
}


def _kind(value: Any) -> str:
    kind = _KIND_OF_TYPE.get(type(value))
    if kind is not None:
        return kind
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple | range):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def _equals(left: Any, right: Any) -> bool:
    if _is_number(left) and _is_number(right):
        return left == right
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    if isinstance(left, range):
        left = list(left)
    if isinstance(right, range):
        right = list(right)
    return (type(left) is type(right) and left == right) or (left is None and right is None)


def _java_div(left: int, right: int) -> int:
    quotient = abs(left) // abs(right)
    return quotient if (left >= 0) == (right >= 0) else -quotient


def _check_size(text: str, line: int) -> str:
    if len(text) > MAX_OUTPUT_CHARS:
        raise EnjoyError(f"text longer than {MAX_OUTPUT_CHARS} characters", line)
    return text


def _arith(op: str, left: Any, right: Any, line: int) -> Any:
    if op == "+" and (isinstance(left, str) or isinstance(right, str)):
        return _check_size(_concat_text(left) + _concat_text(right), line)
    if not (_is_number(left) and _is_number(right)):
        raise EnjoyError(f"cannot apply {op} to {_kind(left)} and {_kind(right)}", line)
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    both_int = isinstance(left, int) and isinstance(right, int)
    if right == 0 and both_int:
        raise EnjoyError("division by zero", line)
    if op == "/":
        if both_int:
            return _java_div(left, right)
        return left / right if right else (math.nan if left == 0 else math.copysign(math.inf, left))
    if both_int:
        return left - right * _java_div(left, right)
    return math.fmod(left, right) if right else math.nan


def _compare(op: str, left: Any, right: Any, line: int) -> bool:
    if op == "==":
        return _equals(left, right)
    if op == "!=":
        return not _equals(left, right)
    if not (
        (_is_number(left) and _is_number(right))
        or (isinstance(left, str) and isinstance(right, str))
    ):
        raise EnjoyError(f"cannot compare {_kind(left)} and {_kind(right)} with {op}", line)
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def _index(target: Any, key: Any, line: int) -> Any:
    if target is None:
        return None
    if isinstance(target, dict):
        return target.get(key if isinstance(key, str) else to_text(key))
    if isinstance(target, list | str | range):
        if not isinstance(key, int) or isinstance(key, bool):
            raise EnjoyError(f"a {_kind(target)} index must be an integer, got {_kind(key)}", line)
        if not 0 <= key < len(target):
            raise EnjoyError(f"index {key} is out of range (size {len(target)})", line)
        return target[key]
    raise EnjoyError(f"cannot index a {_kind(target)}", line)


def _field(target: Any, name: str) -> Any:
    if isinstance(target, dict):
        return target.get(name)
    if isinstance(target, list) and name == "length":
        return len(target)
    return None


# Method tables: the only callables a template can reach.


def _int_arg(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"{what} must be an integer")
    return int(value)


def _substring(text: str, begin: Any, end: Any = None) -> str:
    start = _int_arg(begin, "begin")
    stop = len(text) if end is None else _int_arg(end, "end")
    if not 0 <= start <= stop <= len(text):
        raise ValueError(f"substring({start}, {stop}) is out of range (length {len(text)})")
    return text[start:stop]


def _java_replacement(replacement: str) -> Callable[[re.Match[str]], str]:
    def expand(match: re.Match[str]) -> str:
        return re.sub(
            r"\\(.)|\$(\d)",
            lambda m: m.group(1) or (match.group(int(m.group(2))) or ""),
            replacement,
        )

    return expand


def _split(text: str, pattern: str, limit: Any = 0) -> list[str]:
    count = _int_arg(limit, "limit")
    parts = (
        re.split(pattern, text, maxsplit=max(count - 1, 0))
        if count >= 0
        else re.split(pattern, text)
    )
    if count == 0:
        while parts and parts[-1] == "":
            parts.pop()
    return parts


def _repeat(text: str, count: Any) -> str:
    times = _int_arg(count, "count")
    if times < 0 or len(text) * times > MAX_OUTPUT_CHARS:
        raise ValueError(f"repeat({times}) is out of range")
    return text * times


def _join(items: Any, separator: Any = ",") -> str:
    return to_text(separator).join(_concat_text(item) for item in items)


def _list_get(items: Any, index: Any) -> Any:
    position = _int_arg(index, "index")
    if not 0 <= position < len(items):
        raise ValueError(f"index {position} is out of range (size {len(items)})")
    return items[position]


def _sub_list(items: Any, begin: Any, end: Any) -> list[Any]:
    start, stop = _int_arg(begin, "begin"), _int_arg(end, "end")
    if not 0 <= start <= stop <= len(items):
        raise ValueError(f"subList({start}, {stop}) is out of range (size {len(items)})")
    return list(items[start:stop])


def _index_of(items: Any, value: Any) -> int:
    return next((i for i, item in enumerate(items) if _equals(item, value)), -1)


_STRING_METHODS: dict[str, Callable[..., Any]] = {
    "length": len,
    "isEmpty": lambda s: len(s) == 0,
    "isBlank": lambda s: s.strip() == "",
    "toUpperCase": str.upper,
    "toLowerCase": str.lower,
    "trim": lambda s: s.strip(" \t\n\r\x0b\x0c\x00"),
    "strip": str.strip,
    "substring": _substring,
    "contains": lambda s, x: _concat_text(x) in s,
    "startsWith": lambda s, x: s.startswith(_concat_text(x)),
    "endsWith": lambda s, x: s.endswith(_concat_text(x)),
    "indexOf": lambda s, x: s.find(_concat_text(x)),
    "lastIndexOf": lambda s, x: s.rfind(_concat_text(x)),
    "replace": lambda s, a, b: s.replace(_concat_text(a), _concat_text(b)),
    "replaceAll": lambda s, p, r: re.sub(to_text(p), _java_replacement(to_text(r)), s),
    "replaceFirst": lambda s, p, r: re.sub(to_text(p), _java_replacement(to_text(r)), s, count=1),
    "matches": lambda s, p: re.fullmatch(to_text(p), s) is not None,
    "split": _split,
    "charAt": lambda s, i: _list_get(s, i),
    "equals": _equals,
    "equalsIgnoreCase": lambda s, x: isinstance(x, str) and s.lower() == x.lower(),
    "concat": lambda s, x: s + to_text(x),
    "repeat": _repeat,
    "toString": to_text,
}
_LIST_METHODS: dict[str, Callable[..., Any]] = {
    "size": len,
    "length": len,
    "isEmpty": lambda items: len(items) == 0,
    "get": _list_get,
    "contains": lambda items, x: _index_of(items, x) >= 0,
    "indexOf": _index_of,
    "subList": _sub_list,
    "join": _join,
    "equals": _equals,
    "toString": to_text,
}
_MAP_METHODS: dict[str, Callable[..., Any]] = {
    "get": lambda m, k: m.get(to_text(k)),
    "getOrDefault": lambda m, k, d: m.get(to_text(k), d),
    "containsKey": lambda m, k: to_text(k) in m,
    "containsValue": lambda m, v: _index_of(list(m.values()), v) >= 0,
    "size": len,
    "isEmpty": lambda m: len(m) == 0,
    "keySet": lambda m: list(m.keys()),
    "values": lambda m: list(m.values()),
    "equals": _equals,
    "toString": to_text,
}
_NUMBER_METHODS: dict[str, Callable[..., Any]] = {
    "intValue": lambda n: int(n),
    "longValue": lambda n: int(n),
    "doubleValue": lambda n: float(n),
    "floatValue": lambda n: float(n),
    "equals": _equals,
    "toString": to_text,
}
_BOOLEAN_METHODS: dict[str, Callable[..., Any]] = {"equals": _equals, "toString": to_text}
_METHODS: dict[str, dict[str, Callable[..., Any]]] = {
    "string": _STRING_METHODS,
    "list": _LIST_METHODS,
    "map": _MAP_METHODS,
    "number": _NUMBER_METHODS,
    "boolean": _BOOLEAN_METHODS,
}


def _call_method(target: Any, name: str, args: list[Any], line: int) -> Any:
    kind = _kind(target)
    if target is None:
        raise _NullAccess(f"cannot call {name}() on null", line)
    method = _METHODS.get(kind, {}).get(name)
    if method is None:
        raise EnjoyError(f"a {kind} has no method {name}()", line)
    try:
        return method(target, *args)
    except TypeError:
        raise EnjoyError(f"{name}() does not take {len(args)} argument(s)", line) from None
    except (ValueError, re.error) as exc:
        raise EnjoyError(f"{name}(): {exc}", line) from None


# --------------------------------------------------------------------------------------------
# Rendering state


class _Env:
    """Scopes (innermost last) over the caller's ``lookup``; ``out`` collects the text."""

    __slots__ = ("fill", "iterations", "lookup", "out", "scopes", "variables")

    def __init__(
        self, variables: Mapping[str, Any], lookup: Lookup, fill: TextFiller | None
    ) -> None:
        self.scopes: list[dict[str, Any]] = [{}]
        self.variables = variables
        self.lookup = lookup
        self.fill = fill
        self.out: list[str] = []
        self.iterations = 0

    def get(self, name: str) -> Any:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        if name in self.variables:
            return self.variables[name]
        return self.lookup(name)

    def has(self, name: str) -> bool:
        return any(name in scope for scope in self.scopes)

    def set(self, name: str, value: Any) -> None:
        # Enjoy's #set: assign where the name already lives, else in the current scope.
        for scope in reversed(self.scopes):
            if name in scope:
                scope[name] = value
                return
        self.scopes[-1][name] = value


Expr = Callable[[_Env], Any]
Stmt = Callable[[_Env], None]


# --------------------------------------------------------------------------------------------
# Expressions: tokenizer and a precedence-climbing parser that emits closures

_EXPR_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<number>\d+\.\d+(?:[eE][+-]?\d+)?[fFdD]?|\d+(?:[eE][+-]?\d+)?[lLfFdD]?)
      | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<name>[A-Za-z_$\u0080-\uffff][\w$\u0080-\uffff]*)
      | (?P<op>\?\?|\.\.|==|!=|<=|>=|&&|\|\||\+\+|--|\+=|-=|\*=|/=|%=|[-+*/%<>!?:.,()\[\]{}=;])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0"}
_KEYWORDS = {"true": True, "false": False, "null": None}


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body, flags=re.DOTALL)


class _ExprParser:
    def __init__(self, source: str, line: int) -> None:
        self.line = line
        self.tokens: list[tuple[str, Any]] = []
        position = 0
        source = source.rstrip()
        while position < len(source):
            match = _EXPR_TOKEN_RE.match(source, position)
            if match is None or match.end() == position:
                raise EnjoyError(f"unexpected character {source[position:].lstrip()[:1]!r}", line)
            position = match.end()
            kind = match.lastgroup
            text = match.group(kind)  # type: ignore[arg-type]
            if kind == "number":
                digits = text.rstrip("lLfFdD")
                is_float = "." in digits or "e" in digits.lower() or text[-1] in "fFdD"
                self.tokens.append(("value", float(digits) if is_float else int(digits)))
            elif kind == "string":
                self.tokens.append(("value", _unescape(text[1:-1])))
            elif kind == "name" and text in _KEYWORDS:
                self.tokens.append(("value", _KEYWORDS[text]))
            else:
                self.tokens.append((kind, text))  # type: ignore[arg-type]
        self.position = 0

    # -- token helpers

    def peek(self, offset: int = 0) -> tuple[str, Any] | None:
        index = self.position + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def at(self, *ops: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "op" and token[1] in ops

    def take(self, op: str) -> None:
        if not self.at(op):
            token = self.peek()
            found = "the end" if token is None else repr(str(token[1]))
            raise EnjoyError(f"expected {op!r}, found {found}", self.line)
        self.position += 1

    def done(self) -> None:
        token = self.peek()
        if token is not None:
            raise EnjoyError(f"unexpected {str(token[1])!r}", self.line)

    def name(self) -> str:
        token = self.peek()
        if token is None or token[0] != "name":
            raise EnjoyError("expected a name", self.line)
        self.position += 1
        return token[1]

    # -- grammar (Enjoy's precedence)

    def expr_list(self) -> list[Expr]:
        items = [self.expr()]
        while self.at(","):
            self.position += 1
            items.append(self.expr())
        return items

    def expr(self) -> Expr:
        condition = self.binary(0)
        if not self.at("?"):
            return condition
        self.position += 1
        yes = self.expr()
        self.take(":")
        no = self.expr()
        return lambda env: yes(env) if truthy(condition(env)) else no(env)

    _LEVELS: tuple[tuple[str, ...], ...] = (
        ("||",),
        ("&&",),
        ("==", "!="),
        ("<", "<=", ">", ">="),
        ("+", "-"),
        ("*", "/", "%"),
    )

    def binary(self, level: int) -> Expr:
        if level == len(self._LEVELS):
            return self.null_safe()
        left = self.binary(level + 1)
        ops = self._LEVELS[level]
        while self.at(*ops):
            op = self.tokens[self.position][1]
            self.position += 1
            right = self.binary(level + 1)
            left = self._combine(op, left, right)
        return left

    def _combine(self, op: str, left: Expr, right: Expr) -> Expr:
        line = self.line
        if op == "||":
            return lambda env: truthy(left(env)) or truthy(right(env))
        if op == "&&":
            return lambda env: truthy(left(env)) and truthy(right(env))
        if op in ("==", "!=", "<", "<=", ">", ">="):
            return lambda env: _compare(op, left(env), right(env), line)
        return lambda env: _arith(op, left(env), right(env), line)

    def null_safe(self) -> Expr:
        left = self.unary()
        while self.at("??"):
            self.position += 1
            right = self.unary()
            left = self._fallback(left, right)
        return left

    @staticmethod
    def _fallback(left: Expr, right: Expr) -> Expr:
        def evaluate(env: _Env) -> Any:
            try:
                value = left(env)
            except _NullAccess:
                value = None
            return right(env) if value is None else value

        return evaluate

    def unary(self) -> Expr:
        line = self.line
        if self.at("!"):
            self.position += 1
            operand = self.unary()
            return lambda env: not truthy(operand(env))
        if self.at("-"):
            self.position += 1
            operand = self.unary()

            def negate(env: _Env) -> Any:
                value = operand(env)
                if not _is_number(value):
                    raise EnjoyError(f"cannot negate a {_kind(value)}", line)
                return -value

            return negate
        if self.at("+"):
            self.position += 1
            return self.unary()
        return self.postfix()

    def postfix(self) -> Expr:
        line = self.line
        token = self.peek()
        if token is not None and token[0] == "name":
            # ``a.b.c`` is one path: the template's own variables first, then the run's
            # values by dotted name (``start1.user.name``), as placeholders resolve them.
            self.position += 1
            parts = [token[1]]
            while self.at(".") and self._is_field():
                self.position += 1
                parts.append(self.name())
            target = self._path(parts)
        else:
            target = self.term()
        while True:
            if self.at("["):
                self.position += 1
                key = self.expr()
                self.take("]")
                target = self._indexed(target, key, line)
            elif self.at("."):
                self.position += 1
                name = self.name()
                if self.at("("):
                    self.position += 1
                    args = [] if self.at(")") else self.expr_list()
                    self.take(")")
                    target = self._method(target, name, args, line)
                else:
                    target = self._fielded(target, name)
            else:
                return target

    def _is_field(self) -> bool:
        following = self.peek(1)
        after = self.peek(2)
        return (
            following is not None
            and following[0] == "name"
            and not (after is not None and after == ("op", "("))
        )

    @staticmethod
    def _path(parts: list[str]) -> Expr:
        head, rest = parts[0], parts[1:]
        dotted = ".".join(parts)

        def resolve(env: _Env) -> Any:
            for scope in reversed(env.scopes):
                if head in scope:
                    value = scope[head]
                    break
            else:
                if head not in env.variables:
                    return env.lookup(dotted)
                value = env.variables[head]
            for part in rest:
                value = _field(value, part)
            return value

        return resolve

    @staticmethod
    def _indexed(target: Expr, key: Expr, line: int) -> Expr:
        return lambda env: _index(target(env), key(env), line)

    @staticmethod
    def _fielded(target: Expr, name: str) -> Expr:
        return lambda env: _field(target(env), name)

    @staticmethod
    def _method(target: Expr, name: str, args: list[Expr], line: int) -> Expr:
        return lambda env: _call_method(target(env), name, [arg(env) for arg in args], line)

    def term(self) -> Expr:
        token = self.peek()
        if token is None:
            raise EnjoyError("expected a value, found the end", self.line)
        kind, text = token
        self.position += 1
        if kind == "value":
            return lambda env: text
        if text == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if text == "[":
            return self._array_or_range()
        if text == "{":
            return self._map()
        raise EnjoyError(f"unexpected {str(text)!r}", self.line)

    def _array_or_range(self) -> Expr:
        line = self.line
        if self.at("]"):
            self.position += 1
            return lambda env: []
        first = self.expr()
        if self.at(".."):
            self.position += 1
            last = self.expr()
            self.take("]")

            def make_range(env: _Env) -> range:
                start, stop = first(env), last(env)
                if not (isinstance(start, int) and isinstance(stop, int)):
                    raise EnjoyError("a range needs integer bounds", line)
                return range(start, stop + 1) if start <= stop else range(start, stop - 1, -1)

            return make_range
        items = [first]
        while self.at(","):
            self.position += 1
            if self.at("]"):
                break
            items.append(self.expr())
        self.take("]")
        return lambda env: [item(env) for item in items]

    def _map(self) -> Expr:
        entries: list[tuple[str, Expr]] = []
        while not self.at("}"):
            token = self.peek()
            if token is None or token[0] not in ("name", "value"):
                raise EnjoyError("expected a map key", self.line)
            self.position += 1
            key = to_text(token[1])
            self.take(":")
            entries.append((key, self.expr()))
            if not self.at(","):
                break
            self.position += 1
        self.take("}")
        return lambda env: {key: value(env) for key, value in entries}


def _parse_expression(source: str, line: int) -> Expr:
    parser = _ExprParser(source, line)
    if not parser.tokens:
        raise EnjoyError("empty expression", line)
    expr = parser.expr()
    parser.done()
    return expr


_ASSIGN_OPS = ("=", "+=", "-=", "*=", "/=", "%=")


def _parse_assignments(source: str, line: int) -> list[tuple[str, str, Expr]]:
    parser = _ExprParser(source, line)
    assignments: list[tuple[str, str, Expr]] = []
    while True:
        name = parser.name()
        if not parser.at(*_ASSIGN_OPS):
            raise EnjoyError(f"#set needs an assignment such as {name} = 1", line)
        op = parser.tokens[parser.position][1]
        parser.position += 1
        assignments.append((name, op, parser.expr()))
        if not parser.at(","):
            break
        parser.position += 1
    parser.done()
    return assignments


# --------------------------------------------------------------------------------------------
# Template text: directives and text


_DIRECTIVE_RE = re.compile(r"#(if|elseif|for|set|switch|case|else|end|default|break|continue)\b")
_WITH_ARGS = frozenset({"if", "elseif", "for", "set", "switch", "case"})


def _balanced(source: str, start: int, line: int) -> int:
    """Index just past the ``)`` that closes the ``(`` at ``start`` (strings skipped)."""
    depth = 0
    index = start
    while index < len(source):
        char = source[index]
        if char in "'\"":
            close = index + 1
            while close < len(source) and source[close] != char:
                close += 2 if source[close] == "\\" else 1
            index = close + 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    raise EnjoyError("missing ')'", line)


def _lex(source: str) -> list[tuple[str, Any, int]]:
    """Tokens ``(kind, payload, line)``: ``text``, ``output`` (expression text) or a directive
    name with its argument text. A directive alone on its line takes the line with it."""
    tokens: list[tuple[str, Any, int]] = []
    text: list[str] = []
    position = 0
    length = len(source)

    def line_of(index: int) -> int:
        return source.count("\n", 0, index) + 1

    def flush() -> None:
        if text:
            joined = "".join(text)
            if joined:
                tokens.append(("text", joined, 0))
            text.clear()

    def standalone(start: int, end: int) -> int | None:
        """If source[start:end] is alone on its line, the index after that line's newline."""
        line_start = source.rfind("\n", 0, start) + 1
        if source[line_start:start].strip(" \t"):
            return None
        line_end = source.find("\n", end)
        tail_end = length if line_end < 0 else line_end
        if source[end:tail_end].strip(" \t\r"):
            return None
        return length if line_end < 0 else line_end + 1

    def trim_text_tail() -> None:
        while text:
            stripped = text[-1].rstrip(" \t")
            if stripped or not text[-1]:
                text[-1] = stripped
                return
            text.pop()

    while position < length:
        hash_at = source.find("#", position)
        if hash_at < 0:
            text.append(source[position:])
            break
        if hash_at > 0 and source[hash_at - 1] == "\\":
            text.append(source[position : hash_at - 1] + "#")
            position = hash_at + 1
            continue
        text.append(source[position:hash_at])
        line = line_of(hash_at)
        rest = source[hash_at + 1 : hash_at + 3]
        if rest.startswith("("):
            end = _balanced(source, hash_at + 1, line)
            flush()
            tokens.append(("output", source[hash_at + 2 : end - 1], line))
            position = end
            continue
        if rest == "--":
            close = source.find("--#", hash_at + 3)
            if close < 0:
                raise EnjoyError("comment #-- is not closed with --#", line)
            end = close + 3
            after = standalone(hash_at, end)
            if after is not None:
                trim_text_tail()
                end = after
            position = end
            continue
        if rest.startswith("#"):
            line_end = source.find("\n", hash_at)
            if source[source.rfind("\n", 0, hash_at) + 1 : hash_at].strip(" \t") == "":
                trim_text_tail()
                position = length if line_end < 0 else line_end + 1
            else:
                position = length if line_end < 0 else line_end
            continue
        if rest == "[[":
            close = source.find("]]#", hash_at + 3)
            if close < 0:
                raise EnjoyError("raw text #[[ is not closed with ]]#", line)
            text.append(source[hash_at + 3 : close])
            position = close + 3
            continue
        match = _DIRECTIVE_RE.match(source, hash_at)
        if match is None:
            text.append("#")
            position = hash_at + 1
            continue
        name = match.group(1)
        end = match.end()
        argument: str | None = None
        probe = end
        while probe < length and source[probe] in " \t":
            probe += 1
        if name in _WITH_ARGS:
            if probe >= length or source[probe] != "(":
                # Not a directive after all (e.g. "#set" in prose): literal text.
                text.append("#")
                position = hash_at + 1
                continue
            end = _balanced(source, probe, line)
            argument = source[probe + 1 : end - 1]
        elif probe < length and source[probe] == "(" and source[probe + 1 : probe + 2] == ")":
            end = probe + 2  # "#else()" is allowed by Enjoy
        after = standalone(hash_at, end)
        if after is not None:
            trim_text_tail()
            end = after
        flush()
        tokens.append((name, argument, line))
        position = end
    flush()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any, int]]) -> None:
        self.tokens = tokens
        self.position = 0

    def block(self, stop: frozenset[str], opener: tuple[str, int] | None) -> tuple[list[Stmt], str]:
        body: list[Stmt] = []
        while self.position < len(self.tokens):
            kind, payload, line = self.tokens[self.position]
            if kind in stop:
                return body, kind
            self.position += 1
            body.append(self.statement(kind, payload, line))
        if opener is not None:
            raise EnjoyError(f"#{opener[0]} is not closed with #end", opener[1])
        return body, ""

    def statement(self, kind: str, payload: Any, line: int) -> Stmt:
        if kind == "text":
            return _text_stmt(payload)
        if kind == "output":
            return _output_stmt(_parse_expression(payload, line))
        if kind == "if":
            return self.if_stmt(payload, line)
        if kind == "for":
            return self.for_stmt(payload, line)
        if kind == "set":
            return _set_stmt(_parse_assignments(payload, line), line)
        if kind == "switch":
            return self.switch_stmt(payload, line)
        if kind == "break":
            return _raise(_Break)
        if kind == "continue":
            return _raise(_Continue)
        raise EnjoyError(f"#{kind} without a matching #if, #for or #switch", line)

    def if_stmt(self, payload: str, line: int) -> Stmt:
        branches: list[tuple[Expr, list[Stmt]]] = []
        condition = _parse_expression(payload, line)
        otherwise: list[Stmt] = []
        stops = frozenset({"elseif", "else", "end"})
        while True:
            body, stop = self.block(stops, ("if", line))
            branches.append((condition, body))
            _, argument, at = self.tokens[self.position]
            self.position += 1
            if stop == "elseif":
                condition = _parse_expression(argument or "", at)
                continue
            if stop == "else":
                otherwise, _ = self.block(frozenset({"end"}), ("if", line))
                self.position += 1
            break
        compiled = [(cond, _seq(body)) for cond, body in branches]
        fallback = _seq(otherwise)

        def run(env: _Env) -> None:
            for cond, body_fn in compiled:
                if truthy(cond(env)):
                    body_fn(env)
                    return
            fallback(env)

        return run

    def for_stmt(self, payload: str, line: int) -> Stmt:
        parser = _ExprParser(payload, line)
        if parser.at(";") or ";" in [t[1] for t in parser.tokens if t[0] == "op"]:
            raise EnjoyError("only #for(x : list) is supported", line)
        variable = parser.name()
        parser.take(":")
        iterable = parser.expr()
        parser.done()
        body, stop = self.block(frozenset({"else", "end"}), ("for", line))
        self.position += 1
        otherwise: list[Stmt] = []
        if stop == "else":
            otherwise, _ = self.block(frozenset({"end"}), ("for", line))
            self.position += 1
        return _for_stmt(variable, iterable, _seq(body), _seq(otherwise), line)

    def switch_stmt(self, payload: str, line: int) -> Stmt:
        subject = _parse_expression(payload, line)
        cases: list[tuple[list[Expr], Stmt]] = []
        default: Stmt | None = None
        # Only blank text may stand between #switch and its first #case.
        while self.position < len(self.tokens) and self.tokens[self.position][0] == "text":
            if self.tokens[self.position][1].strip():
                raise EnjoyError("only #case and #default may follow #switch", line)
            self.position += 1
        stops = frozenset({"case", "default", "end"})
        while True:
            if self.position >= len(self.tokens):
                raise EnjoyError("#switch is not closed with #end", line)
            kind, argument, at = self.tokens[self.position]
            self.position += 1
            if kind == "end":
                break
            if kind not in ("case", "default"):
                raise EnjoyError("only #case and #default may follow #switch", at)
            body, _ = self.block(stops, ("switch", line))
            if kind == "case":
                cases.append((_parse_expression_list(argument or "", at), _seq(body)))
            else:
                default = _seq(body)

        def run(env: _Env) -> None:
            value = subject(env)
            for candidates, body_fn in cases:
                if any(_equals(value, candidate(env)) for candidate in candidates):
                    body_fn(env)
                    return
            if default is not None:
                default(env)

        return run


def _parse_expression_list(source: str, line: int) -> list[Expr]:
    parser = _ExprParser(source, line)
    items = parser.expr_list()
    parser.done()
    return items


def _text_stmt(text: str) -> Stmt:
    if "{" not in text:
        return lambda env: env.out.append(text)

    def fill(env: _Env) -> None:
        env.out.append(env.fill(text) if env.fill is not None else text)

    return fill


def _output_stmt(expr: Expr) -> Stmt:
    def output(env: _Env) -> None:
        value = expr(env)
        if type(value) is str:
            env.out.append(value)
        elif value is not None:
            env.out.append(to_text(list(value) if isinstance(value, range) else value))

    return output


def _set_stmt(assignments: list[tuple[str, str, Expr]], line: int) -> Stmt:
    def run(env: _Env) -> None:
        for name, op, expr in assignments:
            value = expr(env)
            if op != "=":
                current = env.get(name)
                value = _arith(op[0], current, value, line)
            env.set(name, value)

    return run


def _raise(kind: type[Exception]) -> Stmt:
    def run(env: _Env) -> None:
        raise kind()

    return run


def _seq(body: list[Stmt]) -> Stmt:
    if not body:
        return lambda env: None
    if len(body) == 1:
        return body[0]

    def run(env: _Env) -> None:
        for statement in body:
            statement(env)

    return run


def _for_stmt(variable: str, iterable: Expr, body: Stmt, otherwise: Stmt, line: int) -> Stmt:
    def run(env: _Env) -> None:
        source = iterable(env)
        if source is None:
            items: Any = []
        elif isinstance(source, dict):
            items = [{"key": key, "value": value} for key, value in source.items()]
        elif isinstance(source, list | range | tuple):
            items = source
        elif isinstance(source, str):
            items = list(source)
        else:
            raise EnjoyError(f"#for cannot iterate over a {_kind(source)}", line)
        size = len(items)
        if size == 0:
            otherwise(env)
            return
        outer = env.get("for") if env.has("for") else None
        status: dict[str, Any] = {"size": size, "outer": outer}
        scope: dict[str, Any] = {"for": status}
        env.scopes.append(scope)
        try:
            for index, item in enumerate(items):
                env.iterations += 1
                if env.iterations > MAX_ITERATIONS:
                    raise EnjoyError(f"more than {MAX_ITERATIONS} loop iterations", line)
                count = index + 1
                status["index"] = index
                status["count"] = count
                status["first"] = index == 0
                status["last"] = count == size
                status["odd"] = count % 2 == 1
                status["even"] = count % 2 == 0
                scope.clear()
                scope["for"] = status
                scope[variable] = item
                try:
                    body(env)
                except _Continue:
                    continue
                except _Break:
                    break
                if index % 256 == 255 and sum(map(len, env.out)) > MAX_OUTPUT_CHARS:
                    raise EnjoyError(f"output longer than {MAX_OUTPUT_CHARS} characters", line)
        finally:
            env.scopes.pop()

    return run


# --------------------------------------------------------------------------------------------
# Public API


def _no_lookup(path: str) -> None:
    return None


class Template:
    """A compiled template; :meth:`render` is safe to call concurrently."""

    __slots__ = ("_body", "is_plain", "source")

    def __init__(self, source: str, body: Stmt, is_plain: bool) -> None:
        self.source = source
        self._body = body
        self.is_plain = is_plain

    def render(
        self,
        variables: Mapping[str, Any],
        lookup: Lookup | None = None,
        fill: TextFiller | None = None,
    ) -> str:
        """Render with the template's ``variables``; other names (``start1.user.name``) go to
        ``lookup`` by dotted path; ``fill`` fills ``{{name}}`` placeholders in literal text."""
        env = _Env(variables, lookup or _no_lookup, fill)
        try:
            self._body(env)
        except (_Break, _Continue):
            pass
        except RecursionError:
            raise EnjoyError("expression nested too deeply", 1) from None
        text = "".join(env.out)
        if len(text) > MAX_OUTPUT_CHARS:
            raise EnjoyError(f"output longer than {MAX_OUTPUT_CHARS} characters", 1)
        return text


@functools.lru_cache(maxsize=1024)
def compile_template(source: str) -> Template:
    """Compile ``source`` once (cached by text); raises :class:`EnjoyError` naming the line."""
    tokens = _lex(source)
    parser = _Parser(tokens)
    try:
        body, stop = parser.block(frozenset({"elseif", "else", "end", "case", "default"}), None)
    except RecursionError:
        raise EnjoyError("template nested too deeply", 1) from None
    if stop:
        _, _, line = tokens[parser.position]
        raise EnjoyError(f"#{stop} without a matching #if, #for or #switch", line)
    is_plain = all(kind == "text" for kind, _, _ in tokens)
    return Template(source, _seq(body), is_plain)
