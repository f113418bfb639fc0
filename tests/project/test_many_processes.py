"""Many processes, one platform (PostgreSQL + Redis): two uvicorn servers on two loopback
ports and job workers share the test database, as in a deployment behind a load balancer.

- durable background runs: a run queued while no worker is up runs when one starts; a worker
  killed with `kill -9` mid-run leaves no run "running" (it is marked failed once its silence
  is noticed, and is not run a second time); a run accepted by a server that is then killed
  still completes on a worker; a worker whose database connections are cut keeps working;
- a key revoked through one server is refused by the other within 5 s;
- a per-key limit of N requests a minute holds across both servers (N, not N per process);
- a `chatId` follow-up answered by the other server sees the previous answer.

Not here: watching over WebSocket on one server a workflow started on the other (needs the
workflow WebSocket events, not built yet).

Every process of this module uses a job queue of its own (`AIFLOWY_JOBS_QUEUE`), so the
session's worker never takes its jobs; a worker notices a silent one after 3 s here.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from aiflowy.testing.servers import free_port, start_process, stop_process, wait_for_port
from apikeys.models import ApiKey
from bots.models import LlmProvider
from tests.conftest import ROOT, _database_url, wait_until
from tests.contract.conftest import user
from workflows.background import ABANDONED_ERROR
from workflows.models import WorkflowRun

pytestmark = [
    pytest.mark.skipif(
        settings.AIFLOWY_JOBS_BACKEND != "procrastinate" or not settings.REDIS_URL,
        reason="many processes share state through PostgreSQL and Redis: set DATABASE_URL "
        "(PostgreSQL) and REDIS_URL",
    ),
    pytest.mark.django_db(transaction=True),
]

QUEUE = f"test-many-{os.getpid()}"
STALLED_SECONDS = 3
WORKER_APP_NAME = f"aiflowy-test-worker-{os.getpid()}"
RUN = "/api/v1/workflow/external/run"
STATUS = "/api/v1/workflow/external/runStatus"
CHAT = "/api/v1/aiBot/externalChat"
COMPLETIONS = "/v1/chat/completions"


def _env(database_url: str, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": database_url,
        "AIFLOWY_JOBS_QUEUE": QUEUE,
        "AIFLOWY_JOBS_STALLED_SECONDS": str(STALLED_SECONDS),
        # What production does: a process trusts its copy of a key for a few seconds.
        "AIFLOWY_TEST_CONFIG_CACHE_SECONDS": "4",
        **overrides,
    }


class Cluster:
    """Two uvicorn servers (`a`, `b`) and the job workers a test starts."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.servers: dict[str, tuple[subprocess.Popen, str]] = {}
        self.workers: list[subprocess.Popen] = []

    def start_server(self, name: str) -> str:
        port = free_port()
        process = start_process(
            [
                "-m",
                "uvicorn",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "config.asgi:application",
            ],
            env=_env(self.database_url),
            log_path=ROOT / ".pytest_cache" / f"many-{name}.log",
        )
        wait_for_port(process, port, what=f"uvicorn {name}")
        self.servers[name] = (process, f"http://127.0.0.1:{port}")
        return self.servers[name][1]

    def url(self, name: str) -> str:
        return self.servers[name][1]

    def start_worker(self) -> subprocess.Popen:
        # The worker's connections carry a name of their own, so a test can cut exactly them.
        process = start_process(
            ["manage.py", "runjobs"],
            env=_env(f"{self.database_url}?application_name={WORKER_APP_NAME}"),
            log_path=ROOT / ".pytest_cache" / f"many-worker-{len(self.workers)}.log",
        )
        self.workers.append(process)
        return process

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                stop_process(worker)
        self.workers.clear()


@pytest.fixture(scope="module")
def cluster(django_db_setup, django_db_blocker) -> Iterator[Cluster]:
    with django_db_blocker.unblock():
        database_url = _database_url()
    cluster = Cluster(database_url)
    cluster.start_server("a")
    cluster.start_server("b")
    yield cluster
    cluster.stop_workers()
    for process, _url in cluster.servers.values():
        if process.poll() is None:
            stop_process(process)


@pytest.fixture
def workers(cluster) -> Iterator[Cluster]:
    """The cluster, with every worker a test started stopped at its end, once no run of the
    test is still queued or running (the database is emptied after the test)."""
    yield cluster
    try:
        wait_until(
            lambda: not WorkflowRun.objects.exclude(status__in=WorkflowRun.FINISHED).exists(),
            timeout=30,
        )
    finally:
        cluster.stop_workers()


@pytest.fixture
def hanging_bot(fake_upstream, make_bot):
    """A bot whose upstream never answers (for 60 s): a run using it stays running."""
    provider = LlmProvider.objects.create(
        name="hangs",
        base_url=fake_upstream.base_url,
        api_key="sk-x",
        default_model="hang",
        timeout_seconds=60,
    )
    return make_bot(name="hanging", provider=provider, model="hang")


def _llm_workflow(make_workflow, bot) -> object:
    from tests.workflows.test_run import llm_definition

    return make_workflow(llm_definition(bot.id))


@pytest.fixture
def make_workflow(transactional_db) -> Callable[..., object]:
    from workflows.definitions import workflow_create

    counter = iter(range(1, 10_000))

    def make(definition: dict) -> object:
        return workflow_create(definition=definition, title=f"many-{next(counter)}")

    return make


def _start_run(base_url: str, api_key: str, workflow, question: str = "later") -> str:
    response = httpx.post(
        f"{base_url}{RUN}",
        headers={"Authorization": api_key},
        json={"id": workflow.id, "variables": {"question": question}, "async": True},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return response.json()["runId"]


def _status(base_url: str, api_key: str, run_id: str) -> dict:
    return httpx.get(
        f"{base_url}{STATUS}", headers={"Authorization": api_key}, params={"runId": run_id}
    ).json()


# --- durable background runs ----------------------------------------------------------------
def test_a_run_queued_while_no_worker_is_up_runs_when_one_starts(
    workers, api_key, bot, make_workflow
):
    workflow = _llm_workflow(make_workflow, bot)
    run_id = _start_run(workers.url("a"), api_key, workflow)
    time.sleep(2)
    assert _status(workers.url("b"), api_key, run_id)["status"] == "queued"

    workers.start_worker()
    finished = wait_until(
        lambda: (s := _status(workers.url("b"), api_key, run_id))["status"] == "succeeded" and s,
        timeout=30,
    )
    assert finished["result"] == {"answer": "Echo: Q: later"}


def test_a_worker_killed_mid_run_leaves_no_run_running_and_it_is_not_run_twice(
    workers, api_key, hanging_bot, make_workflow, fake_upstream
):
    first = workers.start_worker()
    workflow = _llm_workflow(make_workflow, hanging_bot)
    question = f"killed-{uuid.uuid4().hex}"
    run_id = _start_run(workers.url("a"), api_key, workflow, question)
    wait_until(
        lambda: _status(workers.url("a"), api_key, run_id)["status"] == "running", timeout=30
    )
    wait_until(lambda: _upstream_calls(fake_upstream, question) == 1)

    first.send_signal(signal.SIGKILL)
    first.wait(5)
    workers.start_worker()
    # Bounded: noticed after the worker's silence (the deadline), not after the run's own
    # 60 s timeout.
    failed = wait_until(
        lambda: (s := _status(workers.url("b"), api_key, run_id))["status"] == "failed" and s,
        timeout=STALLED_SECONDS + 25,
    )
    assert failed["error"] == ABANDONED_ERROR
    assert _upstream_calls(fake_upstream, question) == 1


def _upstream_calls(fake_upstream, question: str) -> int:
    return sum(
        1
        for body in list(fake_upstream.requests)
        if any(question in str(m.get("content")) for m in body.get("messages", []))
    )


def test_a_run_accepted_by_a_server_that_is_then_killed_completes_on_a_worker(
    workers, api_key, bot, make_workflow
):
    workers.start_worker()
    workflow = _llm_workflow(make_workflow, bot)
    doomed_url = workers.start_server("doomed")
    run_id = _start_run(doomed_url, api_key, workflow, "survive")
    process, _url = workers.servers.pop("doomed")
    process.send_signal(signal.SIGKILL)
    process.wait(5)
    finished = wait_until(
        lambda: (s := _status(workers.url("b"), api_key, run_id))["status"] == "succeeded" and s,
        timeout=30,
    )
    assert finished["result"] == {"answer": "Echo: Q: survive"}


def test_a_worker_whose_database_connections_are_cut_keeps_working(
    workers, api_key, bot, make_workflow
):
    worker = workers.start_worker()
    workflow = _llm_workflow(make_workflow, bot)
    first = _start_run(workers.url("a"), api_key, workflow, "before")
    wait_until(
        lambda: _status(workers.url("a"), api_key, first)["status"] == "succeeded", timeout=30
    )

    with psycopg.connect(_admin_dsn(workers.database_url), autocommit=True) as admin:
        cut = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [WORKER_APP_NAME],
        ).fetchall()
    assert cut, "the worker had no database connection to cut"

    second = _start_run(workers.url("b"), api_key, workflow, "after")
    finished = wait_until(
        lambda: (s := _status(workers.url("a"), api_key, second))["status"] == "succeeded" and s,
        timeout=60,
    )
    assert finished["result"] == {"answer": "Echo: Q: after"}
    assert worker.poll() is None


def _admin_dsn(database_url: str) -> str:
    return re.sub(r"/[^/]+$", "/postgres", database_url)


# --- state shared across servers ------------------------------------------------------------
def test_a_key_revoked_through_one_server_is_refused_by_the_other_within_5_seconds(
    cluster, make_key, bot
):
    raw_key = make_key(name="revoke me")
    key = ApiKey.objects.get(name="revoke me")
    body = {"botId": bot.id, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {raw_key}"}
    assert httpx.post(f"{cluster.url('b')}{CHAT}", headers=headers, json=body).status_code == 200

    get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-for-tests")
    with httpx.Client(base_url=cluster.url("a"), timeout=30, follow_redirects=True) as admin:
        login = admin.get("/admin/login/")
        csrf = admin.cookies["csrftoken"]
        admin.post(
            "/admin/login/?next=/admin/",
            data={"username": "ops", "password": "pw-for-tests", "csrfmiddlewaretoken": csrf},
            headers={"Referer": str(login.url)},
        )
        changelist = "/admin/apikeys/apikey/"
        revoked = admin.post(
            changelist,
            data={
                "action": "disable_keys",
                "_selected_action": str(key.pk),
                "csrfmiddlewaretoken": admin.cookies["csrftoken"],
            },
            headers={"Referer": f"{cluster.url('a')}{changelist}"},
        )
    assert revoked.status_code == 200
    key.refresh_from_db()
    assert key.enabled is False

    def refused() -> bool:
        response = httpx.post(f"{cluster.url('b')}{CHAT}", headers=headers, json=body)
        return response.status_code == 401

    wait_until(refused, timeout=5)  # the promise: refused everywhere within 5 s


def test_a_per_key_limit_holds_across_both_servers(cluster, make_key, bot):
    limit = 6
    raw_key = make_key(name="limited", rate_limit_per_minute=limit)
    body = {"botId": bot.id, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {raw_key}"}
    statuses = [
        httpx.post(f"{cluster.url(server)}{CHAT}", headers=headers, json=body).status_code
        for _ in range(limit)
        for server in ("a", "b")
    ]
    assert statuses.count(200) == limit
    assert statuses.count(429) == limit
    assert statuses[:limit] == [200] * limit


def test_a_chat_id_follow_up_on_the_other_server_sees_the_previous_answer(
    cluster, api_key, bot, fake_upstream
):
    chat_id = f"many-{uuid.uuid4().hex}"
    headers = {"Authorization": f"Bearer {api_key}"}

    def turn(server: str, text: str) -> None:
        response = httpx.post(
            f"{cluster.url(server)}{COMPLETIONS}",
            headers=headers,
            json={"model": bot.name, "chatId": chat_id, "messages": [user(text)]},
        )
        assert response.status_code == 200, response.text

    turn("a", f"one {chat_id}")
    turn("b", f"two {chat_id}")
    [sent] = [
        body["messages"]
        for body in fake_upstream.requests
        # The fake upstream keeps the whole session's requests (embeddings have no messages).
        if body and body.get("messages") and body["messages"][-1].get("content") == f"two {chat_id}"
    ]
    assert {"role": "user", "content": f"one {chat_id}"} in sent
    assert {"role": "assistant", "content": f"Echo: one {chat_id}"} in sent
