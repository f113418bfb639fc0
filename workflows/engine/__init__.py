"""The workflow engine: AIFlowy/Tinyflow workflow JSON in, a run's result and steps out.

Plain async Python with no Django in it, so it can run in a web process, a Channels worker
or a test. Typical use::

    defn = parse_definition(workflow.definition)         # DefinitionError
    variables = validate_inputs(defn, request_variables)  # InputError
    result = await run_workflow(defn, variables, llm=port, on_event=send)
"""

from .definition import (
    EdgeDef,
    NodeDef,
    Parameter,
    StartParameter,
    WorkflowDefinition,
    input_parameters,
    parse_definition,
)
from .errors import DefinitionError, InputError, NodeFailed, NodeSuspended
from .inputs import validate_inputs
from .ports import EngineLimits, KnowledgePort, LlmAnswer, LlmPort
from .runner import RunResult, StepRecord, resume_values, resume_workflow, run_workflow

__all__ = [
    "DefinitionError",
    "EdgeDef",
    "EngineLimits",
    "InputError",
    "KnowledgePort",
    "LlmAnswer",
    "LlmPort",
    "NodeDef",
    "NodeFailed",
    "NodeSuspended",
    "Parameter",
    "RunResult",
    "StartParameter",
    "StepRecord",
    "WorkflowDefinition",
    "input_parameters",
    "parse_definition",
    "resume_values",
    "resume_workflow",
    "run_workflow",
    "validate_inputs",
]
