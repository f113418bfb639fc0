"""A loopback OpenAI-compatible server for tests and the benchmark: real HTTP, so the real
`openai` client code runs against it. No network, no model: it echoes.

Behaviour is chosen by the requested model name, so one server serves every test at once:
- any model: answers `Echo: <last user message>`, streamed word by word when asked;
- a model containing `fail500` / `fail429`: that HTTP error, in OpenAI's error body;
- `hang`: never answers (until the client gives up or the server stops);
- `cut`: streams two words, then drops the connection (non-stream: drops it at once);
- `slow`: streams one word every 0.1 s, up to 300 of them (for disconnect tests);
- `nousage`: streams without usage and without `finish_reason` in the final chunks.
Knowledge bases: `/v1/embeddings`, `/v1/rerank` and QA-prompt answers (`fake_knowledge`).

Every request body is kept in `requests` (its headers in `request_headers`); streams the
client abandoned are counted in `abandoned_streams`.
Run alone with `python -m aiflowy.testing.fake_upstream --port 9100`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
import uuid
from typing import Any

from aiflowy.testing import fake_knowledge

REASONS = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def _reply_words(body: dict) -> list[str]:
    last_user = next(
        (
            _text_of(m.get("content"))
            for m in reversed(body.get("messages", []))
            if m.get("role") == "user"
        ),
        "",
    )
    qa = fake_knowledge.qa_answer(last_user)
    words = (qa if qa is not None else f"Echo: {last_user}").split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


def _prompt_tokens(body: dict) -> int:
    return sum(len(_text_of(m.get("content")).split()) for m in body.get("messages", []))


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.request_headers: list[dict[str, str]] = []
        self.abandoned_streams = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    def start_in_thread(self) -> FakeUpstream:
        """Serve from a thread of its own, for tests whose own loop is busy or absent."""
        started = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    async def close(self) -> None:
        """Stop listening and end every open connection."""
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        """Stop a server started with `start_in_thread`."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # --- HTTP -----------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                method, path, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                raw = await reader.readexactly(length) if length else b""
                keep_going = await self._route(method, path, headers, raw, reader, writer)
                if not keep_going:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    def _head(status: int, content_type: str, length: int | None) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
            f"Content-Type: {content_type}",
        ]
        if length is None:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _send_json(self, writer: asyncio.StreamWriter, status: int, data: Any) -> None:
        body = json.dumps(data).encode()
        writer.write(self._head(status, "application/json", len(body)) + body)
        await writer.drain()

    async def _route(self, method, path, headers, raw, reader, writer) -> bool:
        if method == "GET" and path.endswith("/models"):
            await self._send_json(
                writer,
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}
                    ],
                },
            )
            return True
        if method == "POST" and path.endswith(("/embeddings", "/rerank")):
            body = json.loads(raw or b"{}")
            self.requests.append(body)
            if "fail500" in str(body.get("model", "")):
                await self._send_json(writer, 500, {"error": {"message": "embedding failure"}})
            elif path.endswith("/embeddings"):
                await self._send_json(writer, 200, fake_knowledge.embeddings_body(body))
            else:
                await self._send_json(writer, 200, fake_knowledge.rerank_body(body))
            return True
        if method != "POST" or not path.endswith("/chat/completions"):
            await self._send_json(writer, 404, {"error": {"message": "not found"}})
            return True
        body = json.loads(raw or b"{}")
        self.requests.append(body)
        self.request_headers.append(headers)
        model = str(body.get("model", ""))
        if "fail500" in model:
            await self._send_json(
                writer,
                500,
                {"error": {"message": "secret upstream detail: boom", "type": "server_error"}},
            )
            return True
        if "fail429" in model:
            await self._send_json(
                writer, 429, {"error": {"message": "upstream quota exceeded", "type": "rate_limit"}}
            )
            return True
        if "hang" in model:
            await reader.read()  # until the client closes the connection
            return False
        if "cut" in model and not body.get("stream"):
            return False
        if body.get("stream"):
            await self._stream(body, model, reader, writer)
            return "cut" not in model
        words = _reply_words(body)
        await self._send_json(
            writer,
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "".join(words)},
                    }
                ],
                "usage": {
                    "prompt_tokens": _prompt_tokens(body),
                    "completion_tokens": len(words),
                    "total_tokens": _prompt_tokens(body) + len(words),
                },
            },
        )
        return True

    async def _stream(self, body: dict, model: str, reader, writer) -> None:
        words = _reply_words(body)
        if "slow" in model:
            words = (words * 300)[:300]
        chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
            data: dict = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if usage:
                data["usage"] = usage
            payload = f"data: {json.dumps(data)}\n\n".encode()
            return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"

        def client_gone() -> bool:
            return reader.at_eof() or writer.transport.is_closing()

        try:
            writer.write(self._head(200, "text/event-stream", None))
            for index, word in enumerate(words):
                if client_gone():
                    self.abandoned_streams += 1
                    return
                delta = {"content": word}
                if index == 0:
                    delta["role"] = "assistant"
                writer.write(chunk(delta))
                await writer.drain()
                if "cut" in model and index == 1:
                    writer.transport.abort()
                    return
                if "slow" in model:
                    await asyncio.sleep(0.1)
            if "nousage" not in model:
                writer.write(chunk({}, "stop"))
                if (body.get("stream_options") or {}).get("include_usage"):
                    prompt = _prompt_tokens(body)
                    writer.write(
                        chunk(
                            {},
                            usage={
                                "prompt_tokens": prompt,
                                "completion_tokens": len(words),
                                "total_tokens": prompt + len(words),
                            },
                        )
                    )
            done = b"data: [DONE]\n\n"
            writer.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            self.abandoned_streams += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()

    async def serve() -> None:
        upstream = FakeUpstream()
        await upstream.start(args.port)
        print(f"fake upstream on {upstream.base_url}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
