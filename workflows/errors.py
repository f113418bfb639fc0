"""Workflow errors a caller sees, beyond the shared ones (`aiflowy.errors`; a run that ends
without a result is `aiflowy.errors.RunFailed`)."""

from __future__ import annotations

from aiflowy.errors import InternalError, ServiceUnavailable


class WorkflowInvalid(InternalError):
    """The stored definition does not validate: the operator's problem, not the caller's."""

    code = "workflow_invalid"


class BackgroundUnavailable(ServiceUnavailable):
    """A background run could not be handed to a worker."""

    code = "background_unavailable"
