"""The workflow worker (PostgreSQL + Redis mode): it runs background runs and survives idling
(redis-py reads with a 5 s timeout by default, the channel layer blocks 5 s per pop: the
project's CHANNEL_LAYERS give Redis a longer read timeout)."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from tests.workflows.test_run import typed_definition
from tests.workflows.test_run_async import poll_status, start_async_run


@pytest.mark.skipif(
    settings.AIFLOWY_WORKFLOW_BACKGROUND != "worker", reason="needs REDIS_URL (worker mode)"
)
def test_an_idle_worker_keeps_serving(http, api_key, make_workflow, workflow_worker):
    from channels_redis.core import RedisChannelLayer

    time.sleep(RedisChannelLayer.brpop_timeout + 1.5)  # one blocking pop times out on Redis
    assert workflow_worker.poll() is None
    workflow = make_workflow(typed_definition())
    run_id = start_async_run(http, api_key, workflow)
    assert poll_status(http, api_key, run_id)["status"] == "succeeded"
