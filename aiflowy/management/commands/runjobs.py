"""`manage.py runjobs`: a worker for durable background jobs (aiflowy/jobs.py).

A Procrastinate worker on aiflowy's queue (`AIFLOWY_JOBS_QUEUE`), plus what a long-lived
worker needs here:
- every few seconds it puts back in the queue the jobs of workers that stopped sending
  heartbeats (killed with `kill -9`, hung, cut off) for `AIFLOWY_JOBS_STALLED_SECONDS`;
- when the database goes away (a restart, a failover, a cut connection) the worker is not
  lost: it logs, waits (1 s, doubling up to 30 s) and starts again;
- SIGTERM / SIGINT stop it gracefully: no new job is taken, running jobs finish.
Run two or more (on different machines if you have them): any worker takes any job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from aiflowy.jobs import PROCRASTINATE, retry_stalled_jobs

logger = logging.getLogger("aiflowy.jobs")

MAX_BACKOFF_SECONDS = 30.0


class Command(BaseCommand):
    help = "Run durable background jobs (background workflow runs and the other queued jobs)."
    leave_locale_alone = True

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="Jobs run at once by this process (default: AIFLOWY_JOBS_CONCURRENCY).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.AIFLOWY_JOBS_BACKEND != PROCRASTINATE:
            raise CommandError(
                "Job workers need AIFLOWY_JOBS_BACKEND=procrastinate (a PostgreSQL "
                "DATABASE_URL): with the in-process backend, the web process runs its jobs."
            )
        concurrency = options["concurrency"] or settings.AIFLOWY_JOBS_CONCURRENCY
        self.stderr.write(
            f"Job worker on queue {settings.AIFLOWY_JOBS_QUEUE!r}, {concurrency} at once."
        )
        asyncio.run(serve(concurrency))


async def serve(concurrency: int) -> None:
    """Run the worker until it is stopped by a signal; start it again after a failure."""
    from procrastinate.contrib.django import app

    stalled_seconds = settings.AIFLOWY_JOBS_STALLED_SECONDS
    worker_app = app.with_connector(app.connector.get_worker_connector())
    backoff = 1.0
    while True:
        try:
            async with worker_app.open_async():
                recovery = asyncio.create_task(_recover_stalled(worker_app, stalled_seconds))
                try:
                    await worker_app.run_worker_async(
                        queues=[settings.AIFLOWY_JOBS_QUEUE],
                        concurrency=concurrency,
                        wait=True,
                        listen_notify=True,
                        install_signal_handlers=True,
                        update_heartbeat_interval=max(stalled_seconds / 4, 0.5),
                        stalled_worker_timeout=stalled_seconds,
                        delete_jobs="successful",
                    )
                finally:
                    recovery.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await recovery
            return
        except Exception:
            logger.exception("The job worker stopped on an error; again in %.0f s", backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


async def _recover_stalled(worker_app, stalled_seconds: float) -> None:
    interval = max(stalled_seconds / 4, 0.5)
    while True:
        try:
            await retry_stalled_jobs(stalled_seconds, app=worker_app)
        except Exception:
            logger.warning("Could not check for stalled jobs (will try again)", exc_info=True)
        await asyncio.sleep(interval)
