"""aiflowy against the floor: the same measurements, in the same run, of aiflowy and of a bare
forwarder (`benchmarks/forwarder.py`: raw ASGI + one aiohttp session) under the same uvicorn,
interleaved, with the upstream measured directly in between; reported as ratios, which hold
on a noisy shared machine where absolute times do not.

    python -m benchmarks.floor [--runs 3] [--latency-requests 400] [--requests 3000]
        [--concurrency 32] [--streams 1000] [--profile 2000]

Per run, for the forwarder and for aiflowy (key auth, rate-limit check and history on,
externalChat): added p50 and p99 latency at 1 caller (non-stream, and to the first token of a
stream) over the upstream's own, and chats/s at 32 callers. Then 1,000 concurrent streams
through aiflowy (errors, RSS growth of the server process); with `--profile N`, a cProfile of
aiflowy's process over N chats, top functions by own time. `make bench-floor` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import signal
import statistics
import sys
import tempfile
import time

from aiflowy.testing.servers import free_port, start_process, stop_process, wait_for_port
from benchmarks.run import build_request, exchange, run_load, setup_database

UVICORN = ["-m", "uvicorn", "--host", "127.0.0.1", "--no-access-log", "--log-level", "warning"]
BUDGET = {"p50": 2.0, "p99": 4.0, "first_p50": 2.0, "first_p99": 4.0, "throughput": 0.25}


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


async def one_caller(port: int, request: bytes, count: int) -> dict:
    lat, first, errors, _ = await run_load(port, request, count, 1)
    return {
        "p50": pct(lat, 0.5),
        "p99": pct(lat, 0.99),
        "first_p50": pct(first, 0.5),
        "first_p99": pct(first, 0.99),
        "errors": errors,
    }


async def many_streams(port: int, request: bytes, count: int) -> int:
    """`count` streams open at once (each on its own connection); the number that failed."""
    failures = 0

    async def one() -> None:
        nonlocal failures
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
            _, _, status = await asyncio.wait_for(exchange(reader, writer, request), 120)
            writer.close()
            if status != 200:
                failures += 1
        except Exception:
            failures += 1

    await asyncio.gather(*(one() for _ in range(count)))
    return failures


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f} – {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description="aiflowy against a bare forwarder")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-requests", type=int, default=400)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--profile", type=int, default=0, help="chats to profile (0: none)")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="aiflowy-floor-")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "bench-secret",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }
    env.setdefault("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3")
    upstream_port, ours_port, floor_port = free_port(), free_port(), free_port()
    processes = []
    try:
        upstream = start_process(
            ["-m", "aiflowy.testing.fake_upstream", "--port", str(upstream_port)],
            env=env,
            log_path=None,
        )
        processes.append(upstream)
        wait_for_port(upstream, upstream_port, what="the fake upstream")
        bot_id, key = setup_database(env, f"http://127.0.0.1:{upstream_port}/v1")
        ours = start_process(
            [*UVICORN, "--port", str(ours_port), "config.asgi:application"], env=env, log_path=None
        )
        processes.append(ours)
        floor_env = {**env, "FORWARD_TO": f"http://127.0.0.1:{upstream_port}/v1/chat/completions"}
        floor = start_process(
            [*UVICORN, "--port", str(floor_port), "benchmarks.forwarder:app"],
            env=floor_env,
            log_path=None,
        )
        processes.append(floor)
        wait_for_port(ours, ours_port, what="aiflowy")
        wait_for_port(floor, floor_port, what="the forwarder")

        messages = [{"role": "user", "content": "hello benchmark world"}]
        direct = {
            "model": "bench",
            "messages": [{"role": "system", "content": "You are a benchmark."}, *messages],
        }
        direct_stream = {**direct, "stream": True, "stream_options": {"include_usage": True}}
        ours_body = {"botId": int(bot_id), "messages": messages}
        auth = {"Authorization": f"Bearer {key}"}
        plain = {
            "upstream": (upstream_port, build_request("/v1/chat/completions", direct, {})),
            "floor": (floor_port, build_request("/v1/chat/completions", direct, {})),
            "aiflowy": (ours_port, build_request("/api/v1/aiBot/externalChat", ours_body, auth)),
        }
        stream = {
            "upstream": (upstream_port, build_request("/v1/chat/completions", direct_stream, {})),
            "floor": (floor_port, build_request("/v1/chat/completions", direct_stream, {})),
            "aiflowy": (
                ours_port,
                build_request("/api/v1/aiBot/externalChat", {**ours_body, "stream": True}, auth),
            ),
        }

        async def measure() -> tuple[list[dict], dict]:
            for port, request in [*plain.values(), *stream.values()]:  # warm up
                await run_load(port, request, 200, 4)
            runs = []
            for run in range(args.runs):
                order = ["upstream", "floor", "aiflowy"]
                if run % 2:
                    order = ["upstream", "aiflowy", "floor"]
                result: dict = {}
                for name in order:
                    result[name] = await one_caller(*plain[name], args.latency_requests)
                    streamed = await one_caller(*stream[name], args.latency_requests)
                    result[name]["first_p50"] = streamed["first_p50"]
                    result[name]["first_p99"] = streamed["first_p99"]
                    result[name]["errors"] += streamed["errors"]
                for name in order[1:]:
                    lat, _, errors, elapsed = await run_load(
                        *plain[name], args.requests, args.concurrency
                    )
                    result[name]["rps"] = len(lat) / elapsed
                    result[name]["errors"] += errors
                runs.append(result)
                await asyncio.sleep(0.5)
            rss_before = rss_mb(ours.pid)
            started = time.perf_counter()
            failures = await many_streams(*stream["aiflowy"], args.streams)
            streams = {
                "failures": failures,
                "seconds": time.perf_counter() - started,
                "rss_before": rss_before,
                "rss_after": rss_mb(ours.pid),
            }
            return runs, streams

        runs, streams = asyncio.run(measure())
        streams["two_processes"] = two_processes(env, plain["aiflowy"][1], args)
        profile_path = None
        if args.profile:
            profile_path = profile(env, plain["aiflowy"][1], args.profile)
    finally:
        for process in reversed(processes):
            stop_process(process)

    report(runs, streams, args)
    if profile_path:
        print(f"\nprofile of aiflowy over {args.profile} chats at 1 caller (cProfile):")
        print_profile_groups(profile_path, args.profile)
        stats = pstats.Stats(profile_path)
        stats.sort_stats("tottime").print_stats(25)


def added(result: dict, name: str, measure: str) -> float:
    return result[name][measure] - result["upstream"][measure]


def report(runs: list[dict], streams: dict, args: argparse.Namespace) -> None:
    print(
        f"aiflowy (externalChat; one uvicorn process, key auth + rate limit + history on) "
        f"against the bare forwarder (same uvicorn), {len(runs)} interleaved runs; "
        "median (range) over the runs"
    )
    rows = [
        ("non-stream p50, 1 caller", "p50"),
        ("non-stream p99, 1 caller", "p99"),
        ("first token p50, 1 caller", "first_p50"),
        ("first token p99, 1 caller", "first_p99"),
    ]
    misses = []
    for label, measure in rows:
        ours = [added(r, "aiflowy", measure) for r in runs]
        floor = [added(r, "floor", measure) for r in runs]
        ratios = [o / f if f > 0 else float("inf") for o, f in zip(ours, floor, strict=True)]
        budget = BUDGET[measure]
        verdict = "ok" if statistics.median(ratios) <= budget else "MISSED"
        if verdict != "ok":
            misses.append(label)
        print(
            f"  added {label}: aiflowy {spread(ours)} ms, floor {spread(floor)} ms -> "
            f"ratio {spread(ratios)} (budget <= {budget:g}x: {verdict})"
        )
    ours_rps = [r["aiflowy"]["rps"] for r in runs]
    floor_rps = [r["floor"]["rps"] for r in runs]
    ratios = [o / f for o, f in zip(ours_rps, floor_rps, strict=True)]
    verdict = "ok" if statistics.median(ratios) >= BUDGET["throughput"] else "MISSED"
    if verdict != "ok":
        misses.append("throughput")
    print(
        f"  chats/s at {args.concurrency} callers: aiflowy {spread(ours_rps)}, floor "
        f"{spread(floor_rps)} -> ratio {spread(ratios)} (budget >= 0.25x: {verdict})"
    )
    growth = streams["rss_after"] - streams["rss_before"]
    print(
        f"  {args.streams} concurrent streams through aiflowy: {streams['failures']} failed, "
        f"{streams['seconds']:.1f} s, RSS {streams['rss_before']:.0f} -> "
        f"{streams['rss_after']:.0f} MB (+{growth:.0f} MB; budget 0 errors, <= 200 MB)"
    )
    one, two = streams["two_processes"]
    print(
        f"  chats/s at {args.concurrency} callers, two uvicorn workers against one (same "
        f"period): {two:.0f} against {one:.0f} -> {two / one:.2f}x (budget >= 1.8x)"
    )
    errors = sum(r[name]["errors"] for r in runs for name in r)
    print(f"  non-200 answers in the latency and throughput runs: {errors}")
    if misses:
        print(f"  missed: {', '.join(misses)}")


# Where a function's own time is booked: the first matching fragment of its file name.
GROUPS = [
    ("start-up (imports, class creation)", ("importlib", "<frozen", "_distutils_hack")),
    ("event loop (uvloop, idle included)", ("asyncio/runners.py",)),
    ("uvicorn (HTTP server)", ("/uvicorn/",)),
    ("channels + asgiref (consumers, thread hops)", ("/channels/", "/asgiref/")),
    ("django (ORM, settings, signals)", ("/django/",)),
    ("openai SDK + httpx2 (request building)", ("/openai/", "/httpx2/", "/httpx/")),
    ("aiohttp (upstream transport)", ("/aiohttp/", "/multidict/", "/yarl/")),
    ("pydantic (request models)", ("/pydantic",)),
    ("sqlite3 / psycopg (database driver)", ("sqlite3", "/psycopg")),
    ("aiflowy code", ("/aiflowy/", "/chat/", "/apikeys/", "/bots/", "/workflows/")),
    ("logging", ("/logging/",)),
    ("json", ("/json/",)),
    ("asyncio (tasks, futures, streams)", ("/asyncio/",)),
]


def print_profile_groups(path: str, chats: int) -> None:
    """Own time by component, per chat: where the CPU goes beyond the forwarder's."""
    totals: dict[str, float] = {}
    for (filename, _, function), (_, _, own, _, _) in pstats.Stats(path).stats.items():
        if filename == "~":  # built-ins: booked by name
            start_up = any(w in function for w in ("compile", "marshal", "exec", "build_class"))
            group = "start-up (imports, class creation)" if start_up else "built-ins (C code)"
        else:
            group = next((g for g, parts in GROUPS if any(p in filename for p in parts)), "other")
        totals[group] = totals.get(group, 0.0) + own
    for group, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {group:<45} {seconds * 1e6 / chats:8.0f} µs/chat")


def two_processes(env: dict, request: bytes, args: argparse.Namespace) -> tuple[float, float]:
    """Chats/s at `--concurrency` callers of one uvicorn worker, then of two (`--workers 2`)."""
    rates = []
    for workers in ("1", "2"):
        port = free_port()
        process = start_process(
            [*UVICORN, "--workers", workers, "--port", str(port), "config.asgi:application"],
            env=env,
            log_path=None,
        )
        try:
            wait_for_port(process, port, what=f"aiflowy x{workers}")
            asyncio.run(run_load(port, request, 400, args.concurrency))  # warm every worker
            lat, _, _, elapsed = asyncio.run(
                run_load(port, request, args.requests, args.concurrency)
            )
            rates.append(len(lat) / elapsed)
        finally:
            stop_process(process)
    return rates[0], rates[1]


def profile(env: dict, request: bytes, chats: int) -> str:
    """cProfile of a fresh aiflowy process serving `chats` chats at 1 caller."""
    path = tempfile.mktemp(prefix="aiflowy-profile-", suffix=".prof")
    port = free_port()
    process = start_process(
        ["-m", "cProfile", "-o", path, *UVICORN, "--port", str(port), "config.asgi:application"],
        env=env,
        log_path=None,
    )
    try:
        wait_for_port(process, port, what="aiflowy under cProfile")
        asyncio.run(run_load(port, request, chats, 1))
    finally:
        process.send_signal(signal.SIGINT)  # uvicorn exits cleanly; cProfile writes on exit
        process.wait(30)
    return path


if __name__ == "__main__":
    sys.exit(main())
