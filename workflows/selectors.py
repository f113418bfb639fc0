"""Reading workflows and runs.

Workflows are read on every external call, so each process keeps a parsed snapshot for
`AIFLOWY_CONFIG_CACHE_SECONDS` (like keys and bots): parsing and validating the definition is
paid once per load, not per request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings

from aiflowy.localcache import TtlCache
from workflows.engine import DefinitionError, WorkflowDefinition, parse_definition
from workflows.models import Workflow, WorkflowRun


@dataclass(frozen=True, slots=True)
class WorkflowConfig:
    """An immutable snapshot of a workflow. `definition` is None when the stored JSON does not
    validate (then `definition_error` says why)."""

    id: int
    title: str
    description: str
    enabled: bool
    definition: WorkflowDefinition | None
    definition_error: str = ""

    @classmethod
    def from_model(cls, workflow: Workflow) -> WorkflowConfig:
        try:
            definition, error = parse_definition(workflow.definition), ""
        except DefinitionError as exc:
            definition, error = None, exc.message
        return cls(
            id=workflow.pk,
            title=workflow.title,
            description=workflow.description,
            enabled=workflow.enabled,
            definition=definition,
            definition_error=error,
        )


workflow_cache: TtlCache[WorkflowConfig | None] = TtlCache(
    ttl=settings.AIFLOWY_CONFIG_CACHE_SECONDS
)


def workflow_config_load(workflow_id: int) -> WorkflowConfig | None:
    workflow = Workflow.objects.filter(pk=workflow_id).first()
    return WorkflowConfig.from_model(workflow) if workflow is not None else None


async def workflow_config_get(workflow_id: int) -> WorkflowConfig | None:
    return await workflow_cache.get_or_load(
        workflow_id, lambda: database_sync_to_async(workflow_config_load)(workflow_id)
    )


def workflow_run_get(*, run_id: uuid.UUID, api_key_id: int | None) -> WorkflowRun | None:
    """The run with its steps, if it was started with this key (others' runs do not exist)."""
    return (
        WorkflowRun.objects.filter(run_id=run_id, api_key_id=api_key_id)
        .prefetch_related("steps")
        .first()
    )
