"""The project's benchmark: what aiflowy adds on top of the upstream it calls.

Starts the fake OpenAI-compatible upstream and ONE aiflowy server process (`--server`) on
loopback, with key authentication and history on, then measures with a lean asyncio
HTTP/1.1 client (pre-built requests, keep-alive, no parsing beyond framing):
- non-stream chat: median latency at 1 caller, direct to the upstream and through aiflowy;
- stream: median time to the first token event, direct and through aiflowy;
- throughput: chats per second through aiflowy at 32 concurrent callers.

    python -m benchmarks.run [--requests 2000] [--concurrency 32] [--server daphne|uvicorn]
        [--endpoint externalChat|openai] [--chat-id] [--scaling]

`--scaling` then starts a second server process on the same database and measures chats/s
with the callers split over both (as a load balancer would), against one process in the same
run: the scaling ratio. `make bench` runs it under uvicorn, the production server, with
`--scaling` (`BENCH_ARGS=...` adds options).

Numbers depend on the machine; docs/benchmarks.md records ours. The client, the upstream and
the server share the machine's cores, so "added" latency is an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from aiflowy.testing.servers import ROOT, free_port, start_process, stop_process, wait_for_port


def build_request(path: str, body: dict, headers: dict[str, str]) -> bytes:
    payload = json.dumps(body).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
    ]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def exchange(reader, writer, request: bytes) -> tuple[float, float, int]:
    """Send one request; return (total seconds, seconds to first SSE data, status)."""
    start = time.perf_counter()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    first = None
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.strip() or b"0", 16)
            chunk = await reader.readexactly(size + 2)
            if first is None and b"data:" in chunk:
                first = time.perf_counter() - start
            if size == 0:
                break
    else:
        length = int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        body = await reader.readexactly(length)
        if first is None and b"data:" in body:
            first = time.perf_counter() - start
    total = time.perf_counter() - start
    return total, first if first is not None else total, status


async def run_load(port: int, request: bytes, count: int, concurrency: int):
    latencies: list[float] = []
    firsts: list[float] = []
    errors = 0
    remaining = count

    async def worker() -> None:
        nonlocal remaining, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining > 0:
                remaining -= 1
                total, first, status = await exchange(reader, writer, request)
                if status != 200:
                    errors += 1
                latencies.append(total)
                firsts.append(first)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return latencies, firsts, errors, elapsed


def cpu_seconds(pid: int) -> float | None:
    """The process's user + system CPU time (Linux), or None where /proc is not there. CPU per
    chat varies far less than wall-clock latency on a shared, noisy machine."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def setup_database(env: dict, upstream_url: str) -> str:
    script = f"""
import django; django.setup()
from bots.models import Bot, LlmProvider
from apikeys.services import api_key_create
p, _ = LlmProvider.objects.update_or_create(name="bench", defaults=dict(
    kind="openai", base_url="{upstream_url}", api_key="sk-bench", default_model="bench",
    timeout_seconds=30))
b, _ = Bot.objects.update_or_create(name="bench", defaults=dict(provider=p,
    system_prompt="You are a benchmark."))
_, key = api_key_create(name="bench", bot_ids=[b.pk])
print(b.pk, key)
"""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description="aiflowy benchmark")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--latency-requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--endpoint", choices=["externalChat", "openai"], default="externalChat")
    parser.add_argument(
        "--chat-id",
        action="store_true",
        help="openai endpoint with a FastGPT chatId: server-side history read and stored "
        "before each answer is final",
    )
    parser.add_argument(
        "--server",
        choices=["daphne", "uvicorn"],
        default="daphne",
        help="ASGI server for the one aiflowy process (uvicorn: pip install 'uvicorn[standard]')",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="also measure chats/s with two server processes (callers split over both)",
    )
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="aiflowy-bench-")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "bench-secret",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }
    env.setdefault("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3")
    upstream_port, server_port = free_port(), free_port()
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
        if args.server == "daphne":
            server_args = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(server_port)]
        else:
            server_args = [
                "-m",
                "uvicorn",
                "--host",
                "127.0.0.1",
                "--port",
                str(server_port),
                "--no-access-log",
                "--log-level",
                "warning",
            ]
        server = start_process([*server_args, "config.asgi:application"], env=env, log_path=None)
        processes.append(server)
        wait_for_port(server, server_port, what=args.server)
        second_port = free_port()

        def start_second_server() -> None:
            second_args = [a if a != str(server_port) else str(second_port) for a in server_args]
            second = start_process(
                [*second_args, "config.asgi:application"], env=env, log_path=None
            )
            processes.append(second)
            wait_for_port(second, second_port, what=f"a second {args.server}")

        messages = [{"role": "user", "content": "hello benchmark world"}]
        direct = {
            "model": "bench",
            "messages": [{"role": "system", "content": "You are a benchmark."}, *messages],
        }
        if args.endpoint == "externalChat":
            path, ours = "/api/v1/aiBot/externalChat", {"botId": int(bot_id), "messages": messages}
        else:
            path, ours = "/v1/chat/completions", {"model": bot_id, "messages": messages}
            if args.chat_id:
                ours["chatId"] = "bench"
        auth = {"Authorization": f"Bearer {key}"}
        requests = {
            "direct": build_request("/v1/chat/completions", direct, {}),
            "direct_stream": build_request(
                "/v1/chat/completions",
                {**direct, "stream": True, "stream_options": {"include_usage": True}},
                {},
            ),
            "ours": build_request(path, ours, auth),
            "ours_stream": build_request(path, {**ours, "stream": True}, auth),
        }

        async def measure() -> dict:
            results = {}
            for name in requests:  # warm up connections, caches, the upstream client
                await run_load(
                    server_port if name.startswith("ours") else upstream_port,
                    requests[name],
                    200,
                    4,
                )
            for name, request in requests.items():
                port = server_port if name.startswith("ours") else upstream_port
                cpu_before = cpu_seconds(server.pid)
                lat, first, errors, _ = await run_load(port, request, args.latency_requests, 1)
                await asyncio.sleep(0.1)  # the history writer's batch after the last answer
                cpu_after = cpu_seconds(server.pid)
                results[name] = {"p50_ms": ms(lat), "first_ms": ms(first), "errors": errors}
                if cpu_before is not None and cpu_after is not None:
                    results[name]["cpu_ms"] = (cpu_after - cpu_before) * 1000 / len(lat)
            for name in ("direct", "ours"):
                port = server_port if name == "ours" else upstream_port
                lat, _first, errors, elapsed = await run_load(
                    port, requests[name], args.requests, args.concurrency
                )
                results[f"{name}_c{args.concurrency}"] = {
                    "rps": len(lat) / elapsed,
                    "p50_ms": ms(lat),
                    "p99_ms": sorted(lat)[int(len(lat) * 0.99) - 1] * 1000,
                    "errors": errors,
                }
            if args.scaling:
                start_second_server()
                await run_load(second_port, requests["ours"], 200, 4)  # warm up
                half = args.concurrency // 2
                loads = await asyncio.gather(
                    run_load(server_port, requests["ours"], args.requests // 2, half),
                    run_load(second_port, requests["ours"], args.requests // 2, half),
                )
                answered = sum(len(lat) for lat, *_ in loads)
                results["two_processes"] = {
                    "rps": answered / max(elapsed for *_, elapsed in loads),
                    "errors": sum(errors for _, _, errors, _ in loads),
                }
            return results

        results = asyncio.run(measure())
    finally:
        for process in reversed(processes):
            stop_process(process)

    d, o = results["direct"], results["ours"]
    ds, os_ = results["direct_stream"], results["ours_stream"]
    c = args.concurrency
    chat_id = " with chatId" if args.endpoint == "openai" and args.chat_id else ""
    print(f"endpoint: {path}{chat_id} (one {args.server} process, key auth + history on)")
    print(
        f"non-stream p50, 1 caller: upstream direct {d['p50_ms']:.2f} ms, through aiflowy "
        f"{o['p50_ms']:.2f} ms -> added {o['p50_ms'] - d['p50_ms']:.2f} ms"
    )
    print(
        f"stream first token p50, 1 caller: direct {ds['first_ms']:.2f} ms, through aiflowy "
        f"{os_['first_ms']:.2f} ms -> added {os_['first_ms'] - ds['first_ms']:.2f} ms"
    )
    print(
        f"throughput at {c} callers: through aiflowy {results[f'ours_c{c}']['rps']:.0f} chats/s "
        f"(p50 {results[f'ours_c{c}']['p50_ms']:.1f} ms, p99 {results[f'ours_c{c}']['p99_ms']:.1f}"
        f" ms); upstream direct {results[f'direct_c{c}']['rps']:.0f}/s"
    )
    if "cpu_ms" in o:
        print(
            f"server CPU per chat, 1 caller: {o['cpu_ms']:.2f} ms non-stream, "
            f"{os_['cpu_ms']:.2f} ms stream"
        )
    if "two_processes" in results:
        one, two = results[f"ours_c{c}"]["rps"], results["two_processes"]["rps"]
        print(
            f"scaling at {c} callers: 1 process {one:.0f} chats/s, 2 processes {two:.0f} chats/s "
            f"(ratio {two / one:.2f}; {os.cpu_count()} cores shared with the client and upstream)"
        )
    errors = sum(r["errors"] for r in results.values())
    print(f"non-200 answers: {errors}")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
