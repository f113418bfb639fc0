"""Prometheus metrics (prometheus-client), served at `/metrics` to the holder of
`AIFLOWY_METRICS_TOKEN` (aiflowy/health.py).

Plain Python at import (the LLM client records upstream errors here without Django). Each
observation is a dictionary lookup and an addition under a lock, about a microsecond: cheap
enough for the hot path (measured in docs/deploy.md).

Several processes on one host (uvicorn `--workers N`, job workers) share their numbers when
`PROMETHEUS_MULTIPROC_DIR` names an empty directory they all can write (set before start,
emptied at each deployment): `/metrics` then sums every process's files.

Label values are ids (bot id, key id, provider id), never names or keys: bounded, and
nothing secret in them.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

REQUESTS = Counter(
    "aiflowy_requests_total",
    "Requests to the external endpoints, by endpoint and HTTP status.",
    ["endpoint", "status"],
)
ADDED_LATENCY = Histogram(
    "aiflowy_added_latency_seconds",
    "Time aiflowy spent on a request beyond waiting on the LLM upstream, by endpoint.",
    ["endpoint"],
    buckets=_LATENCY_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "aiflowy_time_to_first_token_seconds",
    "From the request to the first token of a streamed answer, by bot.",
    ["bot"],
    buckets=_SLOW_BUCKETS,
)
TOKENS = Counter(
    "aiflowy_tokens_total",
    "Tokens of chat answers, by bot, API key and direction (in: prompt, out: completion).",
    ["bot", "key", "direction"],
)
UPSTREAM_ERRORS = Counter(
    "aiflowy_upstream_errors_total",
    "Failed LLM upstream calls, by provider id and kind (timeout, http_<status>, "
    "connection, invalid, ended_early).",
    ["provider", "kind"],
)
OPEN_STREAMS = Gauge(
    "aiflowy_open_streams",
    "Event streams open now.",
    multiprocess_mode="livesum",
)
QUEUE_DEPTH = Gauge(
    "aiflowy_jobs_queue_depth",
    "Durable jobs waiting for a worker (read from the database when scraped).",
    multiprocess_mode="livemostrecent",
)
RUN_DURATION = Histogram(
    "aiflowy_workflow_run_seconds",
    "Duration of finished workflow runs, by status and source.",
    ["status", "source"],
    buckets=_SLOW_BUCKETS,
)


_children: dict[tuple, Any] = {}


def labelled(metric: Any, *values: str | int) -> Any:
    """`metric.labels(*values)`, remembered: `labels()` costs ~3 µs a call, this ~0.3 µs."""
    key = (id(metric), *values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def exposition() -> bytes:
    """The metrics in Prometheus' text format: this process's, or every process's in
    multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
