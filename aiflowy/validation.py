"""Request body validation shared by the external endpoints: every failure is a `BadRequest`
naming the field at fault."""

from __future__ import annotations

import json
from typing import Any

from aiflowy.errors import BadRequest


def json_object(body: bytes) -> dict:
    """The body as a JSON object, or a 400 saying what is wrong with it."""
    if not body.strip():
        raise BadRequest("Request body is empty; send a JSON object.", code="invalid_json")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object.", code="invalid_json")
    return data


def parse_id(value: Any, field: str) -> int:
    """Ids are integers; callers may send them as strings (AIFlowy's do)."""
    if isinstance(value, bool):
        raise BadRequest(f"'{field}' must be an integer id.", param=field)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise BadRequest(f"'{field}' must be an integer id (or a string of digits).", param=field)


def parse_bool(value: Any, field: str, default: bool = False) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"'{field}' must be true or false.", param=field)
    return value
