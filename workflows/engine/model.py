"""The parsed shapes of a workflow (nodes, edges, parameters) and the loose-value readers.

Kept apart from :mod:`.definition` so that both the graph validation there and the node types
in :mod:`.nodes` (which the validation asks for each type's settings) can import them without
an import cycle. Exports write numbers and booleans as strings and leave keys out or empty, so
every reader here accepts the loose forms Tinyflow's editor and older exports produce.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import DefinitionError
from .values import DataType, parse_data_type

# Editor hints on a start parameter, passed through to callers (``getRunningParams``) as is.
FORM_HINT_KEYS = (
    "formType",
    "formLabel",
    "formPlaceholder",
    "formDescription",
    "formAttrs",
    "contentType",
)


@dataclass(frozen=True, slots=True)
class Parameter:
    """One item of ``parameters``/``outputDefs``/``headers``/``formData``…

    ``ref_type`` is normalised to ``ref``/``fixed``/``input`` (case-insensitive, inferred when
    absent: ``ref`` present → ref, ``value`` present → fixed, else input by name);
    ``ref_type_raw`` keeps what the definition said.
    """

    name: str
    id: str | None = None
    description: str | None = None
    data_type: DataType = field(default_factory=lambda: parse_data_type(None))
    data_type_raw: str | None = None
    ref_type: str = "input"
    ref_type_raw: str | None = None
    ref: str | None = None
    value: Any = None
    required: bool = False
    default_value: Any = None
    enums: list[Any] | None = None
    children: tuple[Parameter, ...] = ()
    form_hints: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeDef:
    """A validated node. ``config`` holds the type-specific, already normalised settings."""

    id: str
    type: str
    title: str
    data: Mapping[str, Any]
    parameters: tuple[Parameter, ...] = ()
    output_defs: tuple[Parameter, ...] = ()
    condition: str | None = None
    retry_enable: bool = False
    max_retry_count: int = 3
    retry_interval_ms: int = 1000
    outputs: frozenset[str] | None = frozenset()
    config: Mapping[str, Any] = field(default_factory=dict)
    # Tinyflow's node loop: run again until maxLoopCount re-runs (0 = no limit but the run's
    # cap) or loopBreakCondition holds, waiting loopIntervalMs between runs.
    loop_enable: bool = False
    max_loop_count: int = 0
    loop_break_condition: str | None = None
    loop_interval_ms: int = 0
    # The loopNode whose body this node belongs to (Tinyflow's ``parentId``).
    parent_id: str | None = None

    @property
    def label(self) -> str:
        """``node "http1" (查询)`` — how errors name this node."""
        if self.title and self.title != self.id:
            return f'node "{self.id}" ({self.title})'
        return f'node "{self.id}"'


@dataclass(frozen=True, slots=True)
class EdgeDef:
    id: str
    source: str
    target: str
    condition: str | None = None


# --------------------------------------------------------------------------------------------
# Loose scalars (exports write numbers and booleans as strings)


def loose_text(value: Any) -> str | None:
    """``value`` as text; ``None`` when absent, blank or not a scalar."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def loose_bool(value: Any, default: bool = False) -> bool:
    """``true``/``"true"``/``1``/``"yes"``/``"on"`` → True; absent or unreadable → ``default``."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return default


def loose_number(
    value: Any, what: str, node_id: str | None, *, integer: bool
) -> float | int | None:
    """A number written as a number or a numeric string; ``None`` when absent or blank.

    Raises :class:`DefinitionError` (``what`` names the setting) for anything else.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise DefinitionError(f"{what} must be a number, got {value!r}", node_id=node_id)
    try:
        number = float(value) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        raise DefinitionError(f"{what} must be a number, got {value!r}", node_id=node_id) from None
    if integer:
        if isinstance(number, float) and not number.is_integer():
            raise DefinitionError(f"{what} must be a whole number, got {value!r}", node_id=node_id)
        return int(number)
    return float(number)


# --------------------------------------------------------------------------------------------
# Parameters


def _parse_parameter(
    raw: Any, where: str, node_id: str | None, references: bool = True
) -> Parameter:
    if not isinstance(raw, Mapping):
        raise DefinitionError(f"{where}: each parameter must be an object", node_id=node_id)
    name = loose_text(raw.get("name"))
    if name is None:
        raise DefinitionError(f"{where}: a parameter has no name", node_id=node_id)
    name = name.strip()
    ref = loose_text(raw.get("ref"))
    ref = ref.strip() if ref else None
    value = raw.get("value")
    children_raw = raw.get("children") or []
    children = tuple(
        _parse_parameter(child, f'{where}, parameter "{name}"', node_id, references)
        for child in (children_raw if isinstance(children_raw, list) else [])
    )
    ref_type_raw = raw.get("refType")
    written = loose_text(ref_type_raw)
    ref_type = written.strip().lower() if written else ""
    if ref_type == "form":
        ref_type = "input"
    if ref_type not in ("ref", "fixed", "input"):
        if ref:
            ref_type = "ref"
        elif value is not None:
            ref_type = "fixed"
        else:
            ref_type = "input"
    if ref_type == "ref" and not ref and not children and references:
        raise DefinitionError(
            f'{where}: parameter "{name}" is a reference but no value is selected for it',
            node_id=node_id,
        )
    enums = raw.get("enums")
    return Parameter(
        name=name,
        id=loose_text(raw.get("id")),
        description=raw.get("description") if isinstance(raw.get("description"), str) else None,
        data_type=parse_data_type(raw.get("dataType")),
        data_type_raw=loose_text(raw.get("dataType")),
        ref_type=ref_type,
        ref_type_raw=written,
        ref=ref,
        value=value,
        required=loose_bool(raw.get("required")),
        default_value=raw.get("defaultValue"),
        enums=list(enums) if isinstance(enums, list) else None,
        children=children,
        form_hints=MappingProxyType(
            {key: raw[key] for key in FORM_HINT_KEYS if raw.get(key) not in (None, "")}
        ),
    )


def parse_parameters(
    data: Mapping[str, Any], key: str, where: str, node_id: str, *, references: bool = True
) -> tuple[Parameter, ...]:
    """The parameter list ``data[key]`` (absent → empty; a plain name→value map → fixed values).

    ``where`` (``node "http1" (查询)``) starts every error message. ``references=False``: the
    list declares names only (a node's own outputs), so a ``ref`` left empty is no error.
    """
    items = data.get(key)
    if items is None or items == "":
        return ()
    if isinstance(items, Mapping):
        # A plain {"name": "value"} map (hand-written definitions): fixed values.
        items = [{"name": k, "value": v, "refType": "fixed"} for k, v in items.items()]
    if not isinstance(items, list):
        raise DefinitionError(f"{where}: {key} must be a list", node_id=node_id)
    return tuple(_parse_parameter(item, where, node_id, references) for item in items)
