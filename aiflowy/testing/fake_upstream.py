"""A loopback OpenAI-compatible server for tests and the benchmark: real HTTP, so the real
`openai` client code runs against it. No network, no model: it echoes.

Behaviour is chosen by the request, so one server serves every test at once. By its content:
- `tools` (and the last message not a tool result, `tool_choice` not "none"): a call of the
  function `tool_choice` names, else of the first function tool, with arguments built from
  its `parameters` schema (every string is the last user message's text), `finish_reason`
  "tool_calls"; streamed as OpenAI's indexed deltas (id and name first, then the arguments
  in pieces);
- the last message(s) tool results: `Tool said: <their contents, joined by "; ">`;
- `response_format` `json_schema`: a JSON object valid for the schema (strings are the last
  user message's text, numbers 1, booleans true, arrays one item, enums their first value);
  `json_object`: `{"echo": <last user message>}`;
- image, audio and file parts of the last user message: `[image <url>]`, `[audio <format>]`,
  `[file <filename or id>]` after the echoed text;
- `logprobs`: each token with logprob -0.5 (and `top_logprobs` alternatives); `n`: that many
  identical choices (non-stream);
- otherwise: `Echo: <last user message>`, streamed word by word when asked.
By the requested model name:
- a model containing `fail500` / `fail429`: that HTTP error, in OpenAI's error body
  (`fail429retry`: with `Retry-After: 7`);
- `hang`: never answers (until the client gives up or the server stops);
- `cut`: streams two words, then drops the connection (non-stream: drops it at once);
- `slow`: streams one word every 0.1 s, up to 300 of them (for disconnect tests);
- `nousage`: streams without usage and without `finish_reason` in the final chunks;
- `refuse`: a refusal instead of content; `length` / `filter`: `finish_reason` "length" /
  "content_filter";
- `details`: `system_fingerprint` and usage with `prompt_tokens_details` /
  `completion_tokens_details`, as OpenAI sends them (off otherwise, so the benchmark's
  upstream answers as before).
Knowledge bases: `/v1/embeddings`, `/v1/rerank` and QA-prompt answers (`fake_knowledge`).

Every request body is kept in `requests` (its headers in `request_headers`), the latest as
`last_request`; streams the client abandoned are counted in `abandoned_streams`.
Run alone with `python -m aiflowy.testing.fake_upstream --port 9100`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiflowy.testing import fake_knowledge

REASONS = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def _last_user(body: dict) -> dict:
    return next((m for m in reversed(body.get("messages", [])) if m.get("role") == "user"), {})


def _media_notes(content: Any) -> str:
    """What the fake "sees" in the media parts of a message, in order."""
    if not isinstance(content, list):
        return ""
    notes = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "image_url":
            notes.append(f"[image {part['image_url'].get('url', '')}]")
        elif kind == "input_audio":
            notes.append(f"[audio {part['input_audio'].get('format', '')}]")
        elif kind == "file":
            file = part["file"]
            notes.append(f"[file {file.get('filename') or file.get('file_id') or ''}]")
    return "".join(f" {note}" for note in notes)


def _sample(schema: Any, text: str) -> Any:
    """A value valid for a (simple) JSON schema, built deterministically."""
    if not isinstance(schema, dict):
        return text
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for combined in ("anyOf", "oneOf", "allOf"):
        if schema.get(combined):
            return _sample(schema[combined][0], text)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {
            name: _sample(member, text) for name, member in (schema.get("properties") or {}).items()
        }
    if kind == "array":
        return [_sample(schema.get("items") or {}, text)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text


def _resolved(schema: dict, root: dict) -> dict:
    """`schema` with local `$ref`s (`#/$defs/...`, as pydantic writes them) replaced."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = target.get(part, {})
            return _resolved(target, root)
        return {key: _resolved(value, root) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_resolved(item, root) for item in schema]
    return schema


@dataclass(slots=True)
class Answer:
    """What the fake answers to one request (choice 0; `n` repeats it)."""

    content: str | None
    tool_calls: list[dict] | None = None
    refusal: str | None = None
    finish_reason: str = "stop"


def _trailing_tool_results(messages: list[dict]) -> list[str]:
    results = []
    for message in reversed(messages):
        if message.get("role") not in ("tool", "function"):
            break
        results.append(_text_of(message.get("content")))
    return list(reversed(results))


def _tool_call(body: dict, text: str) -> dict | None:
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    function = tools[0]["function"]
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        function = next((t["function"] for t in tools if t["function"]["name"] == wanted), function)
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    arguments = json.dumps(_sample(_resolved(schema, schema), text))
    digest = hashlib.sha256(json.dumps(body.get("messages")).encode()).hexdigest()[:24]
    return {
        "id": f"call_{digest}",
        "type": "function",
        "function": {"name": function["name"], "arguments": arguments},
    }


def answer_for(body: dict) -> Answer:
    """The deterministic answer to a chat completion request (see the module's docstring)."""
    model = str(body.get("model", ""))
    messages = body.get("messages") or []
    last_user = _last_user(body)
    text = _text_of(last_user.get("content"))
    if "refuse" in model:
        return Answer(None, refusal="I can't help with that.")
    finish = "length" if "length" in model else "content_filter" if "filter" in model else "stop"
    results = _trailing_tool_results(messages)
    if results:
        return Answer("Tool said: " + "; ".join(results), finish_reason=finish)
    call = _tool_call(body, text)
    if call is not None:
        return Answer(None, tool_calls=[call], finish_reason="tool_calls")
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema", {}).get("schema") or {}
        return Answer(json.dumps(_sample(_resolved(schema, schema), text)), finish_reason=finish)
    if response_format.get("type") == "json_object":
        return Answer(json.dumps({"echo": text}), finish_reason=finish)
    qa = fake_knowledge.qa_answer(text)
    if qa is not None:
        return Answer(qa, finish_reason=finish)
    return Answer(f"Echo: {text}{_media_notes(last_user.get('content'))}", finish_reason=finish)


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


def _logprobs(body: dict, tokens: list[str]) -> dict | None:
    if not body.get("logprobs"):
        return None
    top = body.get("top_logprobs") or 0
    return {
        "content": [
            {
                "token": token,
                "logprob": -0.5,
                "bytes": list(token.encode()),
                "top_logprobs": [{"token": token, "logprob": -0.5, "bytes": list(token.encode())}][
                    :top
                ],
            }
            for token in tokens
        ],
        "refusal": None,
    }


def _usage(body: dict, model: str, prompt: int, completion: int) -> dict:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if "details" in model:
        usage["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
        usage["completion_tokens_details"] = {"reasoning_tokens": 0, "audio_tokens": 0}
    return usage


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

    @property
    def last_request(self) -> dict | None:
        """The body of the last chat completion request received (None before any)."""
        return self.requests[-1] if self.requests else None

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
                first = await reader.read(1)
                if first == b"\x16":
                    # A TLS handshake (which need hold no newline): answered at once, as a
                    # plain HTTP server would, so the client's handshake fails.
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    return
                request_line = first + await reader.readline()
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
    def _head(
        status: int, content_type: str, length: int | None, extra: dict[str, str] | None = None
    ) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
            f"Content-Type: {content_type}",
            *(f"{name}: {value}" for name, value in (extra or {}).items()),
        ]
        if length is None:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _send_json(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        data: Any,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        body = json.dumps(data).encode()
        writer.write(self._head(status, "application/json", len(body), extra_headers) + body)
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
                writer,
                429,
                {"error": {"message": "upstream quota exceeded", "type": "rate_limit"}},
                extra_headers={"Retry-After": "7"} if "fail429retry" in model else None,
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
        answer = answer_for(body)
        words = _words(answer.content or answer.refusal or "")
        message: dict[str, Any] = {"role": "assistant", "content": answer.content}
        if answer.tool_calls:
            message["tool_calls"] = answer.tool_calls
        if answer.refusal:
            message["refusal"] = answer.refusal
        choice = {"finish_reason": answer.finish_reason, "message": message}
        logprobs = _logprobs(body, words)
        if logprobs is not None:
            choice["logprobs"] = logprobs
        data: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": index, **choice} for index in range(body.get("n") or 1)],
            "usage": _usage(body, model, _prompt_tokens(body), len(words)),
        }
        if "details" in model:
            data["system_fingerprint"] = "fp_fake"
        await self._send_json(writer, 200, data)
        return True

    async def _stream(self, body: dict, model: str, reader, writer) -> None:
        answer = answer_for(body)
        words = _words(answer.content or answer.refusal or "")
        if "slow" in model:
            words = (words * 300)[:300]
        chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        def chunk(
            delta: dict,
            finish: str | None = None,
            usage: dict | None = None,
            logprobs: dict | None = None,
        ) -> bytes:
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            if logprobs is not None:
                choice["logprobs"] = logprobs
            data: dict = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [] if usage else [choice],
            }
            if "details" in model:
                data["system_fingerprint"] = "fp_fake"
            if usage:
                data["usage"] = usage
            payload = f"data: {json.dumps(data)}\n\n".encode()
            return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"

        def pieces() -> list[tuple[dict, dict | None]]:
            """Each chunk's delta and logprobs: tool calls as indexed deltas (id, type and
            name first, then the arguments in three pieces), else a word each."""
            if answer.tool_calls:
                out: list[tuple[dict, dict | None]] = []
                for index, call in enumerate(answer.tool_calls):
                    head = {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                    out.append(({"tool_calls": [head]}, None))
                    arguments = call["function"]["arguments"]
                    step = max(1, len(arguments) // 3 + 1)
                    for start in range(0, len(arguments), step):
                        piece = arguments[start : start + step]
                        out.append(
                            (
                                {
                                    "tool_calls": [
                                        {"index": index, "function": {"arguments": piece}}
                                    ]
                                },
                                None,
                            )
                        )
                return out
            key = "refusal" if answer.refusal else "content"
            return [({key: word}, _logprobs(body, [word])) for word in words]

        def client_gone() -> bool:
            return reader.at_eof() or writer.transport.is_closing()

        try:
            writer.write(self._head(200, "text/event-stream", None))
            for index, (delta, logprobs) in enumerate(pieces()):
                if client_gone():
                    self.abandoned_streams += 1
                    return
                if index == 0:
                    delta = {"role": "assistant", **delta}
                writer.write(chunk(delta, logprobs=logprobs))
                await writer.drain()
                if "cut" in model and index == 1:
                    writer.transport.abort()
                    return
                if "slow" in model:
                    await asyncio.sleep(0.1)
            if "nousage" not in model:
                writer.write(chunk({}, answer.finish_reason))
                if (body.get("stream_options") or {}).get("include_usage"):
                    usage = _usage(body, model, _prompt_tokens(body), len(words))
                    writer.write(chunk({}, usage=usage))
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
