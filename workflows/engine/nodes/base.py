"""What every node type is made of, and the helpers several of them share.

A node type is a :class:`NodeType`: how to read its settings from the definition (checked
before any run starts), which outputs it declares (so references to it can be checked), and
how to execute it. An executor gets a :class:`NodeContext`, records the node's resolved inputs
in ``ctx.inputs`` as soon as it knows them (so a failure still shows what the node saw), and
returns the node's outputs. Failures are raised as :class:`NodeFailed` (or ``JsError`` /
``OutboundError`` / whatever the LLM port raises); the runner turns them into the step's
error, retries and the run's result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiflowy.events import RunEvent

from ..errors import NodeFailed, NodeSuspended
from ..model import NodeDef, Parameter
from ..ports import EngineLimits, KnowledgePort, LlmPort
from ..values import CoercionError, RunMemory, coerce, is_blank, make_lookup, render_text

Emit = Callable[[RunEvent], Awaitable[None]]
# (script text) → (one-line JS prelude, extra globals) defining Tinyflow's _state and _chain.
ScriptState = Callable[[str], tuple[str, dict[str, Any]]]
# (index, item) → runs one iteration of a loopNode's body; raises NodeFailed if it fails.
RunBody = Callable[[int, Any], Awaitable[None]]


@dataclass(slots=True)
class NodeContext:
    node: NodeDef
    memory: RunMemory
    limits: EngineLimits
    llm: LlmPort
    emit: Emit | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    script_state: ScriptState | None = None
    run_body: RunBody | None = None
    knowledge: KnowledgePort | None = None


Executor = Callable[[NodeContext], Awaitable[dict[str, Any]]]
ConfigParser = Callable[[Mapping[str, Any], str, str], dict[str, Any]]
OutputsDeclarer = Callable[
    [Mapping[str, Any], tuple[Parameter, ...], tuple[Parameter, ...]], frozenset[str] | None
]


def no_config(data: Mapping[str, Any], node_id: str, where: str) -> dict[str, Any]:
    """For node types whose only settings are their parameters and outputDefs."""
    return {}


def no_outputs(
    data: Mapping[str, Any], params: tuple[Parameter, ...], output_defs: tuple[Parameter, ...]
) -> frozenset[str] | None:
    """For node types nothing can refer to."""
    return frozenset()


@dataclass(frozen=True, slots=True)
class NodeType:
    """Everything the engine knows about one ``type`` of node.

    * ``parse_config(data, node_id, where)`` turns the node's ``data`` into ``NodeDef.config``
      (normalised settings) or raises ``DefinitionError`` with a message starting ``where``.
    * ``declared_outputs(data, parameters, output_defs)`` names the outputs other nodes may
      refer to; ``None`` means "not known before it runs" (refs to it are not checked).
    * ``execute(ctx)`` runs one attempt and returns the outputs.
    * ``ref_parameter_keys``: keys of ``config`` holding parameter lists whose references are
      checked like ``parameters`` (e.g. an HTTP node's headers).
    * ``parameters_are_refs``: ``parameters`` refer to earlier values (false for the start
      node, whose parameters are the run's inputs); ``output_defs_are_refs``: ``outputDefs``
      do too (the end node's outputs are references).
    * ``awaits``: ``execute`` waits for something (I/O, the sandbox, a person). False for
      types that only compute in Python: no time limit can interrupt those, so the runner
      does not arm one for them.
    """

    name: str
    execute: Executor
    parse_config: ConfigParser = no_config
    declared_outputs: OutputsDeclarer = no_outputs
    ref_parameter_keys: tuple[str, ...] = ()
    parameters_are_refs: bool = True
    output_defs_are_refs: bool = False
    awaits: bool = True


# --------------------------------------------------------------------------------------------
# Parameters


def _resolve_one(
    parameter: Parameter, memory: RunMemory, own: Mapping[str, Any] | None, what: str
) -> Any:
    value: Any = None
    if parameter.ref_type == "ref" and parameter.ref:
        value = memory.resolve(parameter.ref)
    elif parameter.ref_type == "fixed":
        value = parameter.value
        if isinstance(value, str) and value:
            # Tinyflow fills {{…}} in fixed values from the run's values (and, for headers
            # and form fields, from the node's own parameters).
            value = render_text(
                value,
                make_lookup(own, memory),
                own_names=frozenset(own or ()),
            )
    if value is None and parameter.children:
        value = {child.name: _resolve_one(child, memory, own, what) for child in parameter.children}
    if value is None and parameter.ref_type == "input":
        value = memory.resolve(parameter.name)
    if value is None:
        value = parameter.default_value
    if parameter.required and is_blank(value):
        source = f' (from "{parameter.ref}")' if parameter.ref else ""
        raise NodeFailed(f'{what} "{parameter.name}" is required but has no value{source}')
    try:
        return coerce(value, parameter.data_type, strict=False)
    except CoercionError as exc:
        raise NodeFailed(f'{what} "{parameter.name}": {exc}') from None


def resolve_parameters(
    parameters: tuple[Parameter, ...],
    memory: RunMemory,
    *,
    own: Mapping[str, Any] | None = None,
    what: str = "parameter",
    lenient: bool = False,
) -> dict[str, Any]:
    """Values of ``parameters`` by name (``ref`` → lookup, ``fixed`` → value, ``input`` →
    by name). ``lenient`` leaves out parameters that cannot be resolved instead of failing.

    Required ``input`` parameters that nobody gave suspend the run (:class:`NodeSuspended`
    listing all of them), as Tinyflow's ``ChainState.resolveParameters`` does: a person
    fills them in and the run resumes.
    """
    values: dict[str, Any] = {}
    waiting: list[dict[str, Any]] = []
    for parameter in parameters:
        if (
            not lenient
            and what == "parameter"
            and parameter.ref_type == "input"
            and parameter.required
            and not parameter.children
            and is_blank(memory.resolve(parameter.name))
            and is_blank(parameter.default_value)
        ):
            waiting.append(
                {
                    "name": parameter.name,
                    "shortName": parameter.name,
                    "label": parameter.description or parameter.name,
                    "dataType": parameter.data_type.label,
                    "required": True,
                    "enums": parameter.enums,
                    "formType": parameter.form_hints.get("formType") or "input",
                }
            )
            continue
        try:
            values[parameter.name] = _resolve_one(parameter, memory, own, what)
        except NodeFailed:
            if not lenient:
                raise
    if waiting:
        names = ", ".join(f'"{field["name"]}"' for field in waiting)
        raise NodeSuspended(f"waiting for input {names}", waiting)
    return values


def render(ctx: NodeContext, text: str, own: Mapping[str, Any], **options: Any) -> str:
    """Fill the placeholders in ``text`` from the node's own parameters ``own``, then the run."""
    return render_text(text, make_lookup(own, ctx.memory), own_names=frozenset(own), **options)


# --------------------------------------------------------------------------------------------
# Outputs named after the first outputDef (template and LLM nodes)


def first_output_names(output_defs: tuple[Parameter, ...], *, json_root: bool = False) -> set[str]:
    """The names :func:`named_output` will produce, for ``declared_outputs``."""
    names = {"output"}
    if output_defs:
        names.add(output_defs[0].name)
    elif json_root:
        names.add("root")
    return names


def named_output(node: NodeDef, value: Any, *, json_root: bool = False) -> dict[str, Any]:
    """``output`` always; Tinyflow names it after the first outputDef, so that name too."""
    outputs = {"output": value}
    if node.output_defs:
        outputs[node.output_defs[0].name] = value
    elif json_root:
        outputs["root"] = value
    return outputs
