"""QA training is a durable job: on PostgreSQL the texts and their job commit together and
the `manage.py runjobs` worker trains them (the web process never does); embedded (SQLite)
the process that accepted them does. A job run again (a dead worker's job retried) inserts
no pair twice."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.db import connection

from aiflowy import jobs
from knowledge.models import DataItem, QaText, TrainingBill
from knowledge.services import QA_TRAINING_JOB
from tests.conftest import wait_until
from tests.knowledge.conftest import PUSH, call, ok_data

TEXT = "Expenses are refunded within ten days. Receipts must be scanned."

durable_only = pytest.mark.skipif(
    settings.AIFLOWY_JOBS_BACKEND != "procrastinate", reason="the durable queue is PostgreSQL's"
)


def _qa_jobs() -> list[tuple[dict, str]]:
    """The QA jobs still in the queue (the worker deletes those that succeeded)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT args, status FROM procrastinate_jobs WHERE task_name = %s ORDER BY id",
            [QA_TRAINING_JOB],
        )
        return [
            (args if isinstance(args, dict) else json.loads(args), status)
            for args, status in cursor.fetchall()
        ]


def _push_qa(http, api_key, kb) -> TrainingBill:
    body = {"kbId": kb.id, "mode": "qa", "data": [{"q": TEXT}]}
    assert ok_data(call(http, PUSH, api_key, body)) == {"insertLen": 1}
    return wait_until(lambda: TrainingBill.objects.exclude(status="running").first(), timeout=30)


@durable_only
def test_a_queued_qa_job_is_run_by_the_job_worker(http, api_key, kb):
    # On PostgreSQL the web process only queues jobs: a trained bill is the worker's doing.
    bill = _push_qa(http, api_key, kb)
    assert (bill.status, bill.inserted) == ("done", 2)
    # The worker deletes a job that succeeded; a failed one would stay, with its status.
    wait_until(lambda: _qa_jobs() == [])


def test_a_qa_job_run_again_after_a_crash_inserts_no_pair_twice(http, api_key, kb):
    bill = _push_qa(http, api_key, kb)
    assert (bill.status, bill.inserted) == ("done", 2)
    questions = sorted(DataItem.objects.filter(knowledge_base=kb).values_list("q", flat=True))

    # A worker killed after storing the pairs but before marking its text done: the job is
    # retried and the text is sent to the model again.
    QaText.objects.filter(bill=bill).update(status=QaText.Status.PENDING)
    TrainingBill.objects.filter(pk=bill.pk).update(status=TrainingBill.Status.RUNNING)
    jobs.enqueue_sync(QA_TRAINING_JOB, bill_id=str(bill.pk))

    retried = wait_until(
        lambda: TrainingBill.objects.filter(pk=bill.pk).exclude(status="running").first(),
        timeout=30,
    )
    assert retried.status == "done"
    assert QaText.objects.get(bill=bill).status == QaText.Status.DONE
    assert (
        sorted(DataItem.objects.filter(knowledge_base=kb).values_list("q", flat=True)) == questions
    )
