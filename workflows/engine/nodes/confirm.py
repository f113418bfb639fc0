"""confirmNode: stop the run until a person confirms (and fills in values), then go on.

Tinyflow's shape (``ConfirmNode``/``ConfirmNodeParser``): ``message`` is shown to the person;
``confirms`` are the values asked for, each a parameter whose ``ref`` (when it has no
``enums``) points at the options to choose from. The run suspends waiting for
``confirm__<nodeId>`` (``yes``/``no``) and ``<name>__<nodeId>`` per value; once resumed with
them, the node's outputs are ``confirm`` and each value by its plain name. The values are
removed from the run's memory afterwards, so a second confirmation asks again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from ..errors import NodeSuspended
from ..model import Parameter, loose_text, parse_parameters
from ..values import CoercionError, coerce, is_blank
from .base import NodeContext, NodeType

CONFIRM_OPTIONS = ("yes", "no")


def parse_config(data: Mapping[str, Any], node_id: str, where: str) -> dict[str, Any]:
    return {
        "message": loose_text(data.get("message")) or "",
        "confirms": parse_parameters(data, "confirms", where, node_id),
    }


def declared_outputs(
    data: Mapping[str, Any], params: tuple[Parameter, ...], output_defs: tuple[Parameter, ...]
) -> frozenset[str] | None:
    confirms = data.get("confirms")
    names = {"confirm"}
    if isinstance(confirms, list):
        names |= {str(c.get("name")).strip() for c in confirms if isinstance(c, Mapping)}
    return frozenset(names)


def _field(parameter: Parameter, key: str, ctx: NodeContext) -> dict[str, Any]:
    options = parameter.enums
    if options is None and parameter.ref:
        found = ctx.memory.resolve(parameter.ref)
        options = found if isinstance(found, list) else None
    return {
        "name": key,
        "shortName": parameter.name,
        "label": parameter.description or parameter.name,
        "dataType": parameter.data_type.label,
        "required": True,
        "enums": options,
        "formType": parameter.form_hints.get("formType") or ("select" if options else "input"),
    }


async def execute(ctx: NodeContext) -> dict[str, Any]:
    node = ctx.node
    confirm_key = f"confirm__{node.id}"
    keys = {confirm_key: "confirm"}
    keys.update({f"{p.name}__{node.id}": p.name for p in node.config["confirms"]})
    values = ctx.memory.values
    missing = [key for key in keys if is_blank(values.get(key))]
    if missing:
        fields = [
            {
                "name": confirm_key,
                "shortName": "confirm",
                "label": "confirm",
                "dataType": "String",
                "required": True,
                "enums": list(CONFIRM_OPTIONS),
                "formType": "confirm",
            }
        ]
        fields += [_field(p, f"{p.name}__{node.id}", ctx) for p in node.config["confirms"]]
        message = node.config["message"]
        raise NodeSuspended(
            f"waiting for confirmation ({', '.join(missing)})", fields, prompt=message
        )
    outputs: dict[str, Any] = {}
    for key, name in keys.items():
        value = values.pop(key)
        parameter = next((p for p in node.config["confirms"] if p.name == name), None)
        if parameter is not None and isinstance(value, str):
            with contextlib.suppress(CoercionError):
                value = coerce(value, parameter.data_type, strict=True)
        outputs[name] = value
    ctx.inputs.update(outputs)
    return outputs


NODE_TYPE = NodeType(
    name="confirmNode",
    execute=execute,
    parse_config=parse_config,
    declared_outputs=declared_outputs,
    ref_parameter_keys=("confirms",),
)
