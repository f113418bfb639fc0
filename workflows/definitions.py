"""Workflow definitions: checking them with the engine, creating, importing and exporting.

The admin and the management commands call these; a definition that cannot run is refused with
a `ValidationError` naming the node or edge at fault (`docs/workflow-format.md`).

An exported file is the definition exactly as stored (Tinyflow's JSON, which AIFlowy and
Tinyflow read back, ignoring unknown keys) with `title` and `description` added at the top.
Import accepts that, a bare Tinyflow definition, and AIFlowy's workflow record, whose
definition is the JSON text in `content`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from workflows.checker_messages import checker_message_lazy
from workflows.engine import DefinitionError, parse_definition
from workflows.models import Workflow
from workflows.selectors import workflow_cache


def definition_error_text(error: DefinitionError) -> str:
    """The engine's message, which already names the node or edge at fault; the ids are added
    when the message does not mention them."""
    message = error.message
    hints = []
    if error.node_id and f'"{error.node_id}"' not in message:
        hints.append(f'node "{error.node_id}"')
    if error.edge_id and f'"{error.edge_id}"' not in message:
        hints.append(f'edge "{error.edge_id}"')
    return f"{message} ({', '.join(hints)})" if hints else message


def workflow_definition_check(definition: Any) -> None:
    """`ValidationError` naming the bad node or edge when `definition` cannot run."""
    try:
        parse_definition(definition)
    except DefinitionError as error:
        # Shown by the admin, in the operator's language (the engine writes English).
        raise ValidationError(
            checker_message_lazy(f"Invalid workflow definition: {definition_error_text(error)}"),
            code="invalid_definition",
        ) from None


def workflow_create(
    *, title: str, definition: dict, description: str = "", enabled: bool = True
) -> Workflow:
    workflow_definition_check(definition)
    workflow = Workflow(
        title=title, description=description, definition=definition, enabled=enabled
    )
    workflow.full_clean()
    workflow.save()
    return workflow


def workflow_saved(*, workflow: Workflow) -> None:
    """Forget this process's cached copy (other processes follow within the cache TTL)."""
    workflow_cache.invalidate(workflow.pk)


_METADATA_KEYS = ("title", "description")


@dataclass(frozen=True, slots=True)
class WorkflowDocument:
    title: str
    description: str
    definition: dict


def workflow_document_parse(raw: bytes | str, *, filename: str = "") -> WorkflowDocument:
    """Read an imported file; `ValidationError` (naming the node/edge) when it cannot run."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(
            _("The file is not valid JSON: %(error)s"), code="invalid_json", params={"error": exc}
        ) from None
    if not isinstance(data, dict):
        raise ValidationError(_("The file must hold a JSON object."), code="invalid_json")
    title = data.get("title") if isinstance(data.get("title"), str) else ""
    description = data.get("description") if isinstance(data.get("description"), str) else ""
    definition: Any = data
    for key in ("definition", "content"):
        if "nodes" not in data and key in data:
            definition = data[key]
            if isinstance(definition, str):
                try:
                    definition = json.loads(definition)
                except ValueError as exc:
                    raise ValidationError(
                        _("'%(key)s' is not valid JSON: %(error)s"),
                        code="invalid_json",
                        params={"key": key, "error": exc},
                    ) from None
            break
    if not isinstance(definition, dict):
        raise ValidationError(_("The workflow definition must be a JSON object."), code="invalid")
    if definition is data:
        definition = {k: v for k, v in data.items() if k not in _METADATA_KEYS}
    workflow_definition_check(definition)
    title = title.strip() or PurePath(filename).stem or "Imported workflow"
    return WorkflowDocument(title=title[:200], description=description, definition=definition)


def workflow_export_document(*, workflow: Workflow) -> dict:
    definition = workflow.definition if isinstance(workflow.definition, dict) else {}
    return {"title": workflow.title, "description": workflow.description, **definition}
