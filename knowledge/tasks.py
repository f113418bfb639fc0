"""Durable jobs of the knowledge app (imported by every job worker at start)."""

from __future__ import annotations

from aiflowy.jobs import durable_job, exclusive
from knowledge.services import QA_TRAINING_JOB, qa_training


@durable_job(QA_TRAINING_JOB)
async def run_qa_training(bill_id: str) -> None:
    """A bill's QA training. It may start again (a dead worker, a database error, the admin's
    retry while it runs): one run at a time per bill, and `qa_training` skips what is done."""
    async with exclusive(f"qa-training:{bill_id}") as alone:
        if alone:
            await qa_training(bill_id)
