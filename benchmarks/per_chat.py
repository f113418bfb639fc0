"""Server CPU per chat, in-process, and what each per-chat feature costs of it.

The project's ASGI app (`config.asgi:application`) is driven directly on a uvloop event loop,
with no HTTP server and no client process in between, against the fake upstream (its own
process) and a SQLite database set up as `benchmarks.run` does (key auth, rate limit and
history on). For each endpoint shape, chats run one after another (1 caller) and the
process's CPU time (`time.process_time()`: this thread plus the database threads that write
history) is divided by the number of chats. CPU time is far steadier than wall time on a
shared machine; the ASGI driver's own work is included and the same in every variant.

    python -m benchmarks.per_chat [--chats 1000] [--rounds 5] [--shapes ext,oai_stream,...]
        [--ablate] [--profile SHAPE]

`--ablate` also measures each variant with one feature switched off (monkeypatched here, never
in the app): the request id and metrics, the rate limit, the knowledge-base lookup, the strict
JSON parser, the log filters; rounds alternate the variants, and the difference from the
baseline, per round, is the feature's cost. `--profile SHAPE` prints a cProfile of that shape.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import math
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

from aiflowy.testing.servers import ROOT, free_port, start_process, stop_process, wait_for_port
from benchmarks.run import setup_database

MESSAGES = [{"role": "user", "content": "hello benchmark world"}]


def machine_reference() -> float:
    """Seconds for a pure-Python loop of 10 million additions: this machine's speed now."""
    started = time.perf_counter()
    s = 0
    for i in range(10_000_000):
        s += i
    return time.perf_counter() - started


def shapes(bot_id: str) -> dict[str, tuple[str, dict, list[tuple[bytes, bytes]]]]:
    ext = {"botId": int(bot_id), "messages": MESSAGES}
    oai = {"model": bot_id, "messages": MESSAGES}
    return {
        "ext": ("/api/v1/aiBot/externalChat", ext, []),
        "ext_stream": ("/api/v1/aiBot/externalChat", {**ext, "stream": True}, []),
        "oai": ("/v1/chat/completions", oai, []),
        "oai_stream": ("/v1/chat/completions", {**oai, "stream": True}, []),
        "oai_detail": ("/v1/chat/completions", {**oai, "detail": True}, []),
        "oai_detail_stream": ("/v1/chat/completions", {**oai, "detail": True, "stream": True}, []),
    }


class Driver:
    """Sends one request through the ASGI app as uvicorn would, and returns the body."""

    def __init__(self, application, key: str) -> None:
        self.application = application
        self.auth = f"Bearer {key}".encode()

    async def chat(self, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"authorization", self.auth),
                *headers,
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        done = asyncio.Event()
        sent_request = False
        parts: list[bytes] = []
        status = 0

        async def receive() -> dict:
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body"):
                    done.set()

        await self.application(scope, receive, send)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {b''.join(parts)[:300]!r}")
        return b"".join(parts)


# --- features switched off, one at a time (monkeypatched here only) ---------------------------
class _Noop:
    def inc(self, *args, **kwargs) -> None:
        pass

    observe = dec = inc


@contextlib.contextmanager
def patched(*patches: tuple[object, str, object]) -> Iterator[None]:
    saved = [(target, name, getattr(target, name)) for target, name, _ in patches]
    for target, name, value in patches:
        setattr(target, name, value)
    try:
        yield
    finally:
        for target, name, value in saved:
            setattr(target, name, value)


def variants() -> dict[str, Callable[[], contextlib.AbstractContextManager]]:
    import logging

    from aiflowy import consumers, metrics, requestcontext, validation
    from apikeys import auth
    from chat import consumers as chat_consumers
    from chat import services

    noop = _Noop()

    async def no_rate_limit(key_id: int, limit: int) -> None:
        return None

    async def no_quotes(bot_id: int, question: str) -> None:
        return None

    def loose_json(body: bytes) -> dict:
        return json.loads(body)

    fixed_context = requestcontext.RequestContext

    def request_started(incoming_id: str | None = None):
        context = fixed_context("bench")
        requestcontext._current.set(context)
        return context

    @contextlib.contextmanager
    def no_log_filters() -> Iterator[None]:
        removed = []
        for name in ("", *logging.root.manager.loggerDict):
            logger = logging.getLogger(name)
            for holder in (logger, *logger.handlers):
                for f in list(holder.filters):
                    holder.removeFilter(f)
                    removed.append((holder, f))
        try:
            yield
        finally:
            for holder, f in removed:
                holder.addFilter(f)

    return {
        "baseline": contextlib.nullcontext,
        "-metrics": lambda: patched(
            (metrics, "labelled", lambda *a: noop), (metrics, "OPEN_STREAMS", noop)
        ),
        "-request id": lambda: patched((consumers, "request_started", request_started)),
        "-rate limit": lambda: patched((auth, "rate_limit_hit", no_rate_limit)),
        "-knowledge": lambda: patched((services, "quotes_for", no_quotes)),
        "-strict json": lambda: patched(
            (chat_consumers, "json_object", loose_json), (validation, "json_object", loose_json)
        ),
        "-log filters": no_log_filters,
    }


async def feature_costs(bot_id: int, key: str, body: bytes, repeat: int = 20_000) -> None:
    """µs per call of what each per-chat feature does, timed alone (CPU time, best of 5)."""
    import logging

    from aiflowy import metrics
    from aiflowy.llm import _tool_calls, _usage_details
    from aiflowy.ratelimit import rate_limit_hit
    from aiflowy.requestcontext import request_started
    from aiflowy.validation import json_object
    from apikeys.selectors import api_key_principal_get
    from chat import services
    from chat.access import bot_for_key
    from chat.schemas import parse_external_chat
    from knowledge.quotes import quotes_for

    principal = await api_key_principal_get(key)
    request = parse_external_chat(json_object(body))
    turn = await services.chat_turn_for_external_chat(principal, request)
    message = {"role": "assistant", "content": "Echo: hi"}
    usage = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    redact_filters = [f for f in logging.getLogger().filters + logging.getLogger("uvicorn").filters]

    def request_id_and_metrics() -> None:
        context = request_started(None)
        metrics.labelled(metrics.REQUESTS, "ExternalChatConsumer", 200).inc()
        metrics.labelled(metrics.ADDED_LATENCY, "ExternalChatConsumer").observe(0.001)
        services._observe(turn, 10, 3, 5)
        context.upstream_seconds += 0.001

    def bookkeeping() -> None:
        _tool_calls(message)
        _usage_details(usage)
        services._exchange(turn, answer="Echo: hi", status="complete", prompt_tokens=10)

    def redaction() -> None:
        for f in redact_filters:
            f.filter(record)

    timed = {
        "request id + metrics (request, latency, tokens, TTFT)": request_id_and_metrics,
        "strict JSON parse of the body (json_object)": lambda: json_object(body),
        "plain json.loads of the body, for comparison": lambda: json.loads(body),
        "request model (parse_external_chat)": lambda: parse_external_chat(json_object(body)),
        "exchange record + tool-call/usage bookkeeping": bookkeeping,
        "log redaction filter, per record that is logged": redaction,
    }
    awaited = {
        "API key lookup (cached)": lambda: api_key_principal_get(key),
        "token-bucket rate limit (in-process)": lambda: rate_limit_hit(principal.id, 10**9),
        "bot lookup (cached)": lambda: bot_for_key(principal, bot_id),
        "knowledge-base lookup for the bot (cached, none linked)": lambda: quotes_for(
            bot_id, "hello"
        ),
    }
    print(f"per-feature cost, µs per call (CPU, best of 5 x {repeat:,}):")
    for name, call in [*timed.items(), *awaited.items()]:
        is_async = name in awaited
        best = math.inf
        for _ in range(5):
            started = time.process_time()
            for _ in range(repeat):
                if is_async:
                    await call()
                else:
                    call()
            best = min(best, time.process_time() - started)
        print(f"  {name:58} {best * 1e6 / repeat:6.2f}")


def by_package(stats: pstats.Stats) -> dict[str, tuple[int, float]]:
    """(calls, own time) by the package a function belongs to, most calls first."""
    totals: dict[str, list] = {}
    for (path, _line, _name), (_cc, calls, own, _cum, _callers) in stats.stats.items():
        if "site-packages/" in path:
            package = path.split("site-packages/", 1)[1].split("/", 1)[0]
        elif path == "~":
            package = "(built-ins)"
        elif path.startswith(str(ROOT)):
            package = "aiflowy: " + os.path.relpath(path, ROOT).split("/", 1)[0]
        else:
            package = "stdlib: " + os.path.basename(path)
        entry = totals.setdefault(package, [0, 0.0])
        entry[0] += calls
        entry[1] += own
    return {k: (v[0], v[1]) for k, v in sorted(totals.items(), key=lambda kv: -kv[1][0])}


def main() -> None:
    parser = argparse.ArgumentParser(description="aiflowy server CPU per chat, in-process")
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shapes", default="ext,ext_stream,oai,oai_stream,oai_detail")
    parser.add_argument("--ablate", action="store_true")
    parser.add_argument("--profile", default="", help="a shape to profile instead")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--features", action="store_true", help="time each feature alone")
    args = parser.parse_args()

    print(f"machine: 10M-addition loop {machine_reference():.2f} s", flush=True)
    tmp = tempfile.mkdtemp(prefix="aiflowy-perchat-")
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "bench-secret",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }
    env = {**os.environ, **env}
    env.setdefault("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3")
    upstream_port = free_port()
    upstream = start_process(
        ["-m", "aiflowy.testing.fake_upstream", "--port", str(upstream_port)],
        env=env,
        log_path=None,
    )
    try:
        wait_for_port(upstream, upstream_port, what="the fake upstream")
        bot_id, key = setup_database(env, f"http://127.0.0.1:{upstream_port}/v1")
        os.environ.update(env)
        import uvloop

        from config.asgi import application

        driver = Driver(application, key)
        requests = {
            name: (path, json.dumps(body).encode(), headers)
            for name, (path, body, headers) in shapes(bot_id).items()
        }
        chosen = [args.profile] if args.profile else args.shapes.split(",")

        async def run(name: str, count: int) -> None:
            path, body, headers = requests[name]
            for _ in range(count):
                await driver.chat(path, body, headers)
            await asyncio.sleep(0.1)  # the history writer's last batch

        async def cpu_per_chat(name: str) -> float:
            before = time.process_time()
            await run(name, args.chats)
            return (time.process_time() - before) * 1e6 / args.chats

        async def calls_per_chat(name: str, count: int = 200) -> float:
            """Python function calls per chat (cProfile's count): deterministic, unlike time."""
            profile = cProfile.Profile()
            profile.enable()
            await run(name, count)
            profile.disable()
            return pstats.Stats(profile).total_calls / count

        async def measure() -> None:
            if args.features:
                await run("ext", 50)
                await feature_costs(int(bot_id), key, requests["ext"][1])
                return
            for name in chosen:
                await run(name, 200)  # warm up caches, connections, the upstream client
            if args.profile:
                profile = cProfile.Profile()
                profile.enable()
                await run(args.profile, args.chats)
                profile.disable()
                stats = pstats.Stats(profile, stream=sys.stdout)
                print(f"cProfile of {args.chats} chats, shape {args.profile}:")
                print("  package: Python calls per chat, own time per chat (profiled, µs)")
                for package, (count, own) in by_package(stats).items():
                    print(f"  {package:28} {count / args.chats:7.0f} {own * 1e6 / args.chats:8.0f}")
                stats.sort_stats("tottime").print_stats(args.top)
                stats.sort_stats("cumulative").print_stats(args.top)
                return
            named = variants() if args.ablate else {"baseline": contextlib.nullcontext}
            results: dict[tuple[str, str], list[float]] = {}
            calls: dict[tuple[str, str], float] = {}
            for variant, switch in named.items():
                with switch():
                    for name in chosen:
                        calls[(name, variant)] = await calls_per_chat(name)
            for round_ in range(args.rounds):
                order = list(named.items())
                if round_ % 2:
                    order.reverse()
                for variant, switch in order:
                    with switch():
                        for name in chosen:
                            results.setdefault((name, variant), []).append(await cpu_per_chat(name))
            print(
                f"CPU µs per chat, {args.chats} chats x {args.rounds} rounds (median, range); "
                "Python calls per chat (cProfile count, 200 chats):"
            )
            for name in chosen:
                base = results[(name, "baseline")]
                for variant in named:
                    values = results[(name, variant)]
                    line = (
                        f"  {name:18} {variant:13} {statistics.median(values):7.0f} "
                        f"({min(values):.0f} – {max(values):.0f})"
                        f"  calls {calls[(name, variant)]:6.0f}"
                    )
                    if variant != "baseline":
                        saved = [b - v for b, v in zip(base, values, strict=True)]
                        line += (
                            f"   saves {statistics.median(saved):5.0f} "
                            f"({min(saved):.0f} – {max(saved):.0f})"
                        )
                    print(line)

        async def measured() -> None:
            from aiflowy.llm import upstream_clients_closed

            async with upstream_clients_closed():
                await measure()

        uvloop.run(measured())
    finally:
        stop_process(upstream)
    print(f"machine: 10M-addition loop {machine_reference():.2f} s")


if __name__ == "__main__":
    main()
