"""Exceptions of the workflow engine.

Each carries a message written for the person who built or called the workflow, so the API
layer can pass ``str(error)`` through unchanged.
"""

from __future__ import annotations


class DefinitionError(ValueError):
    """The workflow JSON cannot be run; ``node_id``/``edge_id`` point at the culprit."""

    def __init__(
        self, message: str, node_id: str | None = None, edge_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.node_id = node_id
        self.edge_id = edge_id


class InputError(ValueError):
    """A caller-supplied variable is missing or invalid; ``parameter`` names it."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter


class NodeFailed(Exception):
    """A node could not produce its outputs.

    Node executors raise it with a message that does not repeat the node's name; the runner
    prefixes ``node "<id>" (<title>) failed:`` when it reports the run's error.
    """

    def __init__(self, message: str, node_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.node_id = node_id


class NodeSuspended(Exception):
    """A node waits for a person: a ``confirmNode``, or required inputs nobody gave yet.

    ``fields`` describe what it waits for, each ``{"name", "label", "dataType", "required",
    "enums", "formType", …}`` (``name`` is the key the resume call fills); ``message`` is the
    text shown to whoever confirms.
    """

    def __init__(self, message: str, fields: list[dict], *, prompt: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        self.prompt = prompt
