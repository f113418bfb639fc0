"""Request validation shared by every external endpoint: request bodies and query parameters
are pydantic models validated by `validated()`, and every failure is a `BadRequest` whose
`param` names the field at fault in the wire's own notation (`messages[0].content`,
`stream_options.include_usage`) and whose message is one sentence naming it.

The annotated types below are the vocabulary the apps' models share. They refuse what the
rest of the stack cannot take, so hostile input is a 400 and never a 500: integers beyond
PostgreSQL's bigint (or beyond Python's 4,300-digit str→int limit), NUL characters (which
PostgreSQL cannot store) and lone surrogates (which cannot be encoded as UTF-8).
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    PlainValidator,
    Strict,
    StringConstraints,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ErrorType

from aiflowy.errors import BadRequest

Model = TypeVar("Model", bound=BaseModel)

# The largest id or offset the database takes (PostgreSQL's bigint).
MAX_BIGINT = 2**63 - 1
# A number sent as a string of ASCII digits (for the OpenAPI schema).
DIGITS = StringConstraints(pattern=r"^\s*[0-9]+\s*$")


# The deepest JSON a request may nest. Deeper input is refused while it is parsed, before
# anything recursive downstream (serialisers, the database's JSON functions) meets it.
MAX_JSON_DEPTH = 512
# The longest integer literal a request may hold; Python's own str→int limit is 4,300 digits.
MAX_JSON_INT_DIGITS = 1_000


def _json_int(text: str) -> int:
    if len(text) > MAX_JSON_INT_DIGITS:
        raise ValueError(f"a number has more than {MAX_JSON_INT_DIGITS} digits")
    return int(text)


def _json_float(text: str) -> float:
    number = float(text)
    if number in (math.inf, -math.inf):
        raise ValueError(f"the number {text[:20]}… is out of range")
    return number


def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(
    parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant
)


def _json_depth_within(value: Any, limit: int) -> bool:
    """Whether a decoded JSON value nests at most `limit` deep (iteratively: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend(
                (member, depth + 1) for member in item.values() if isinstance(member, (dict, list))
            )
        elif isinstance(item, list):
            stack.extend((member, depth + 1) for member in item if isinstance(member, (dict, list)))
    return True


def json_value(body: bytes) -> Any:
    """The body as a JSON value, or a 400 saying what is wrong with it. Refused while parsing,
    so that nothing downstream meets them: nesting deeper than `MAX_JSON_DEPTH`, integers
    longer than `MAX_JSON_INT_DIGITS` digits, numbers out of a double's range and
    NaN/Infinity (which neither PostgreSQL's jsonb nor strict JSON readers take)."""
    if not body.strip():
        raise BadRequest("Request body is empty; send a JSON object.", code="invalid_json")
    too_deep = BadRequest(
        f"Request body is nested deeper than {MAX_JSON_DEPTH} levels.", code="invalid_json"
    )
    try:
        # What json.loads does with bytes, through one decoder built once (json.loads with
        # hooks would build a decoder per call).
        value = _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except RecursionError:  # deeper than the decoder goes (about 1,000 levels)
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}", code="invalid_json") from None
    # Counting brackets is a C-speed upper bound on the depth that settles almost every body.
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and not _json_depth_within(
        value, MAX_JSON_DEPTH
    ):
        raise too_deep
    return value


def json_object(body: bytes) -> dict:
    """The body as a JSON object (see `json_value`), or a 400 saying what is wrong with it."""
    data = json_value(body)
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object.", code="invalid_json")
    return data


# --- validated(): pydantic's errors as one BadRequest --------------------------------------------
def validated(model_class: type[Model], data: Any) -> Model:
    """`data` (a decoded JSON object, or query parameters as a dict) as an instance of
    `model_class`, or a `BadRequest` naming the first field at fault."""
    try:
        return model_class.model_validate(data)
    except PydanticValidationError as exc:
        raise bad_request(exc) from None


# What pydantic's own error types mean, as the end of a sentence that starts with the field.
_PHRASES = {
    "missing": "is required",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "too_long": "must have at most {max_length} items",
    "string_type": "must be a string",
    "string_too_short": "must be at least {min_length} characters long",
    "string_too_long": "must be at most {max_length} characters long",
    "string_pattern_mismatch": "is not in the expected format",
    "string_unicode": "must be valid Unicode text (it contains a lone surrogate)",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_parsing_size": "is too large",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "literal_error": "must be {expected}",
    "enum": "must be {expected}",
    "uuid_type": "must be a UUID",
    "uuid_parsing": "must be a UUID",
}
_PYDANTIC_ERROR_TYPES = frozenset(get_args(ErrorType))


def wire_path(loc: tuple[str | int, ...]) -> str:
    """pydantic's error location in the wire's notation: `("messages", 0, "content")` is
    `messages[0].content`. Fields carry their wire names as aliases, so the names match."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def _phrase(error: Any) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    if kind == "too_short":
        minimum = context.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"must have at least {minimum} items"
    if kind in _PHRASES:
        try:
            return _PHRASES[kind].format(**context)
        except (KeyError, IndexError):
            return f"is invalid ({error['msg']})"
    if kind not in _PYDANTIC_ERROR_TYPES:  # ours (PydanticCustomError): already a phrase
        return error["msg"]
    return f"is invalid ({error['msg']})"


def bad_request(exc: PydanticValidationError) -> BadRequest:
    """The first of pydantic's errors as a 400 naming the field."""
    error = exc.errors(include_url=False, include_input=False)[0]
    param = wire_path(error["loc"]) or None
    phrase = _phrase(error)
    if param is None:
        return BadRequest(f"The request {phrase}.")
    return BadRequest(f"'{param}' {phrase}.", param=param)


# --- the shared vocabulary ------------------------------------------------------------------------
_NOT_UNICODE = _PHRASES["string_unicode"]


def text_checked(value: str) -> str:
    """`value` if PostgreSQL can store it and it encodes as UTF-8: no NUL, no lone surrogate
    (a `\\ud800` escape in JSON decodes to one)."""
    if "\x00" in value:
        raise PydanticCustomError("text_nul", "must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError("text_surrogate", _NOT_UNICODE) from None
    return value


def is_storable_text(value: str) -> bool:
    """Whether `value` passes `text_checked` (for values that are looked up, not validated:
    a path segment with a NUL names nothing, and must not reach PostgreSQL)."""
    try:
        text_checked(value)
    except PydanticCustomError:
        return False
    return True


def json_checked(value: Any) -> Any:
    """`text_checked` on every string (keys included) of a decoded JSON value; iterative, so
    a value nested as deep as the JSON decoder allows cannot exhaust the stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            text_checked(item)
        elif isinstance(item, dict):
            for key, member in item.items():
                if isinstance(key, str):
                    text_checked(key)
                stack.append(member)
        elif isinstance(item, list):
            stack.extend(item)
    return value


def _json_object(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PydanticCustomError("object_type", "must be an object")
    return json_checked(value)


def _none_is_false(value: Any) -> Any:
    return False if value is None else value


def integer_between(lo: int, hi: int, phrase: str | None = None) -> PlainValidator:
    """An integer in [lo, hi], given as a JSON number or as a string of ASCII digits (query
    strings and form fields, and AIFlowy callers, send numbers as strings). Longer digit
    strings than the range allows are refused before `int()` sees them."""
    phrase = phrase or f"must be an integer between {lo} and {hi}"
    max_digits = len(str(hi))

    def check(value: Any) -> int:
        if value is None or value == "":
            raise PydanticCustomError("required", "is required")
        if type(value) is str:
            text = value.strip()
            if text.isascii() and text.isdigit() and len(text) <= max_digits:
                value = int(text)
        if type(value) is int and lo <= value <= hi:
            return value
        raise PydanticCustomError("integer", phrase)

    return PlainValidator(check, json_schema_input_type=int | Annotated[str, DIGITS])


def between(lo: float, hi: float) -> AfterValidator:
    """A number in [lo, hi] (NaN is not)."""

    def check(value: float) -> float:
        if not lo <= value <= hi:
            raise PydanticCustomError("range", f"must be between {lo:g} and {hi:g}")
        return value

    return AfterValidator(check)


# An object's id: a positive integer, or a string of digits as AIFlowy callers send it.
Id = Annotated[
    int,
    integer_between(
        1, MAX_BIGINT, "must be a positive integer id (a number or a string of digits)"
    ),
]
# true or false, nothing else (no "yes", no 1); null is false.
Flag = Annotated[bool, BeforeValidator(_none_is_false), Strict()]
# A string that can be stored and encoded.
Text = Annotated[str, Strict(), AfterValidator(text_checked)]
# A JSON object (null is {}) whose strings can be stored and encoded, at any depth.
JsonObject = Annotated[
    dict[str, Any], PlainValidator(_json_object, json_schema_input_type=dict[str, Any] | None)
]
