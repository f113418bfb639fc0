"""Durable jobs by name (aiflowy/jobs.py): a job commits or rolls back with the caller's
transaction, unknown names fail where they are queued, and the in-process backend runs the
same job function after the commit."""

from __future__ import annotations

import json
import threading

import pytest
from django.conf import settings
from django.db import connection, transaction

from aiflowy import jobs

ran: list[dict] = []
done = threading.Event()


@jobs.durable_job("tests.remember")
async def remember(**kwargs) -> None:
    ran.append(kwargs)
    done.set()


def _queued(name: str) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT args FROM procrastinate_jobs WHERE task_name = %s", [name])
        return [json.loads(row[0]) for row in cursor.fetchall()]


def test_an_unknown_job_name_fails_where_it_is_queued(db):
    with pytest.raises(LookupError, match=r"no durable job is registered as 'tests\.nothing'"):
        jobs.enqueue_sync("tests.nothing", x=1)


@pytest.mark.skipif(
    settings.AIFLOWY_JOBS_BACKEND != "procrastinate", reason="the durable queue is PostgreSQL's"
)
def test_a_job_commits_and_rolls_back_with_the_callers_transaction(transactional_db):
    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), transaction.atomic():
        jobs.enqueue_sync("tests.remember", bill_id=1)
        raise Abandon
    assert _queued("tests.remember") == []

    with transaction.atomic():
        jobs.enqueue_sync("tests.remember", bill_id=2)
    assert _queued("tests.remember") == [{"bill_id": 2}]


@pytest.mark.skipif(
    settings.AIFLOWY_JOBS_BACKEND != "inprocess", reason="the embedded backend (SQLite)"
)
def test_in_process_the_job_runs_after_the_commit_and_not_after_a_rollback(
    db, django_capture_on_commit_callbacks
):
    ran.clear()
    done.clear()
    with django_capture_on_commit_callbacks(execute=False) as rolled_back:
        jobs.enqueue_sync("tests.remember", bill_id=1)
    # Not executing the captured callbacks is what a rollback does.
    assert len(rolled_back) == 1 and ran == []

    with django_capture_on_commit_callbacks(execute=True):
        jobs.enqueue_sync("tests.remember", bill_id=2)
    assert done.wait(10)
    assert ran == [{"bill_id": 2}]
