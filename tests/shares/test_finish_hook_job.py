"""shareAuth/finish is a durable job (PostgreSQL): queued with the answer, sent by the job
worker, and the user's token, a credential of the operator's site, is encrypted in the
queue table (never stored as sent)."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.db import connection

from shares.hooks import FINISH_HOOK_JOB
from tests.conftest import wait_until

pytestmark = pytest.mark.skipif(
    settings.AIFLOWY_JOBS_BACKEND != "procrastinate", reason="the durable queue is PostgreSQL's"
)


def _finish_jobs() -> list[tuple[str, str]]:
    """The finish jobs still in the queue, as stored: (args, status)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT args::text, status FROM procrastinate_jobs WHERE task_name = %s",
            [FINISH_HOOK_JOB],
        )
        return list(cursor.fetchall())


def test_the_finish_job_holds_the_token_encrypted_and_the_worker_sends_it(
    visit, auth_link, share_auth
):
    token = "slowfinish-secret-42"
    visit(auth_link, auth_token=token).ask("encrypted?")
    # The auth server holds the finish call: the worker's job is still in the queue.
    wait_until(lambda: share_auth.hooks("finish"))
    [(stored, status)] = _finish_jobs()
    assert status == "doing"
    args = json.loads(stored)
    assert token not in stored
    assert args["token_encrypted"].startswith("fernet:")
    assert args["link_id"] == auth_link.pk

    [finish] = share_auth.hooks("finish")
    assert finish["token"] == token and finish["shareId"] == auth_link.share_id
    wait_until(lambda: share_auth.finished_answering, timeout=15)
    wait_until(lambda: _finish_jobs() == [])  # succeeded jobs are deleted
