"""Durable jobs of the shares app (imported by every job worker at start)."""

from __future__ import annotations

from aiflowy.jobs import durable_job
from shares.hooks import FINISH_HOOK_JOB, finish_hook_send


@durable_job(FINISH_HOOK_JOB)
async def send_finish_hook(link_id: int, token_encrypted: str, response_data: list[dict]) -> None:
    """`shareAuth/finish` after an answer; sending it again after a retry is harmless."""
    await finish_hook_send(link_id, token_encrypted=token_encrypted, response_data=response_data)
