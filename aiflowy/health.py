"""Health, readiness and metrics endpoints, served ahead of Django like the API (cheap, and
up even when Django's middleware would not be).

- `GET /healthz`: the process serves requests (a load balancer's liveness check).
- `GET /readyz`: the database, Redis (when `REDIS_URL` is set) and the job queue (when it is
  durable) answer within `READY_TIMEOUT_SECONDS` each: 200 `{"status": "ready", "checks":
  {...}}`, else 503 with each failing check's reason. Take a process out of rotation on 503.
- `GET /metrics`: Prometheus' text format (aiflowy/metrics.py), only with
  `Authorization: Bearer <AIFLOWY_METRICS_TOKEN>`; without that setting the path does not
  exist (404), so metrics are never public by accident.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection

from aiflowy import jobs, metrics, shutdown
from aiflowy.consumers import ApiConsumer
from aiflowy.errors import NotFound, Unauthorized

READY_TIMEOUT_SECONDS = 2.0


class HealthConsumer(ApiConsumer):
    allowed_methods = ("GET", "HEAD")

    async def handle_request(self, body: bytes) -> None:
        await self.send_json({"status": "alive"})


def _database_ping() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _redis_ping() -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_timeout=READY_TIMEOUT_SECONDS)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _checked(check) -> str:
    try:
        await asyncio.wait_for(check, READY_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"no answer within {READY_TIMEOUT_SECONDS:g} s"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}: {str(exc)[:200]}"
    return "ok"


class ReadyConsumer(ApiConsumer):
    allowed_methods = ("GET", "HEAD")

    async def handle_request(self, body: bytes) -> None:
        checks = {"database": _checked(database_sync_to_async(_database_ping)())}
        if settings.REDIS_URL:
            checks["redis"] = _checked(_redis_ping())
        depth: list[int | None] = [None]
        if jobs.backend() == jobs.PROCRASTINATE:

            async def queue() -> None:
                depth[0] = await jobs.queue_depth()

            checks["queue"] = _checked(queue())
        results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
        if shutdown.draining():
            results["process"] = "shutting down"
        ready = all(result == "ok" for result in results.values())
        body_out: dict = {"status": "ready" if ready else "not ready", "checks": results}
        if depth[0] is not None:
            body_out["queueDepth"] = depth[0]
            metrics.QUEUE_DEPTH.set(depth[0])
        await self.send_json(body_out, status=200 if ready else 503)


class MetricsConsumer(ApiConsumer):
    allowed_methods = ("GET",)

    async def handle_request(self, body: bytes) -> None:
        token = settings.AIFLOWY_METRICS_TOKEN
        if not token:
            raise NotFound("There is nothing here.")
        given = (self.header(b"authorization") or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized(
                "Metrics need the operator's metrics token.", code="invalid_metrics_token"
            )
        if jobs.backend() == jobs.PROCRASTINATE:
            # The metrics still answer while the database is away.
            with contextlib.suppress(Exception):
                metrics.QUEUE_DEPTH.set(await jobs.queue_depth())
        exposition = metrics.exposition()
        self.response_started = True
        await self.send_headers(
            status=200,
            headers=[
                (b"content-type", b"text/plain; version=0.0.4; charset=utf-8"),
                (b"content-length", str(len(exposition)).encode()),
            ],
        )
        await self.send_body(exposition)
