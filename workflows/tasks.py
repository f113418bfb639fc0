"""Durable jobs of the workflows app (imported by every job worker at start)."""

from __future__ import annotations

from aiflowy.jobs import durable_job
from workflows.background import RUN_JOB, workflow_run_claimed


@durable_job(RUN_JOB)
async def run_in_background(run_id: str) -> None:
    """A background run (`"async": true`), once: see `workflow_run_claimed`."""
    await workflow_run_claimed(run_id)
