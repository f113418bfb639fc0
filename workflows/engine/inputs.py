"""Check the caller's variables against the start node before anything runs.

Tinyflow suspends a run that lacks a required input and waits; an API caller would wait
forever, so we refuse the call up front and name the parameter instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .definition import WorkflowDefinition
from .errors import InputError
from .values import CoercionError, coerce, is_blank


def _label(name: str, description: str | None) -> str:
    return f'"{name}" ({description})' if description and description != name else f'"{name}"'


def validate_inputs(defn: WorkflowDefinition, variables: Mapping[str, Any] | None) -> dict:
    """Return the variables with start parameters coerced and defaults applied.

    Missing or blank required parameters and values that do not fit ``dataType`` raise
    :class:`InputError` naming the parameter. Variables the start node does not declare are
    kept (they are visible to the run by name), and the result can be validated again.
    """
    if variables is None:
        variables = {}
    if not isinstance(variables, Mapping):
        raise InputError("variables must be a JSON object")
    result: dict[str, Any] = {str(key): value for key, value in variables.items()}
    for parameter in defn.start.parameters:
        label = _label(parameter.name, parameter.description)
        value = result.get(parameter.name)
        if is_blank(value) and parameter.default_value not in (None, ""):
            value = parameter.default_value
        if is_blank(value):
            if parameter.required:
                raise InputError(f"missing required parameter {label}", parameter=parameter.name)
            if value is None or parameter.data_type.base not in ("String", None):
                result.pop(parameter.name, None)
                continue
        try:
            value = coerce(value, parameter.data_type, strict=True)
        except CoercionError as exc:
            raise InputError(
                f"invalid value for parameter {label}: {exc}", parameter=parameter.name
            ) from None
        enums = parameter.enums
        if (
            enums
            and not isinstance(value, dict | list)
            and all(isinstance(item, str | int | float | bool) for item in enums)
            and str(value) not in {str(item) for item in enums}
        ):
            allowed = ", ".join(str(item) for item in enums)
            raise InputError(
                f"invalid value for parameter {label}: must be one of {allowed}",
                parameter=parameter.name,
            )
        result[parameter.name] = value
    return result
