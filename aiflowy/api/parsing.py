"""Small parsers shared by the external endpoints' request validation."""

from __future__ import annotations

from typing import Any

from aiflowy.api.errors import BadRequest


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
