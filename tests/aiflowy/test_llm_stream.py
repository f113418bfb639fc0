"""`llm_stream` against a provider that sends what real ones send beside the text: null
fields on every delta (`refusal`, `tool_calls`), a reasoning model's `reasoning_content`,
tool call deltas, and a second choice. The text of choice 0 always arrives as `str` (what
externalChat, the workflow nodes and history read); everything else as `StreamDelta`."""

from __future__ import annotations

import asyncio
import json

import pytest

from aiflowy.llm import (
    GenerationParams,
    ProviderConfig,
    StreamDelta,
    StreamEnd,
    llm_stream,
    upstream_clients_closed,
)


async def scripted_provider(chunks: list[dict]) -> asyncio.AbstractServer:
    """A loopback server answering any request with these SSE chunks, then `[DONE]`."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        body = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


def chunk(delta: dict, *, index: int = 0, finish: str | None = None, **extra) -> dict:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish, **extra}],
    }


async def streamed(chunks: list[dict]) -> list:
    server = await scripted_provider(chunks)
    port = server.sockets[0].getsockname()[1]
    provider = ProviderConfig(
        id=1,
        kind="openai",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="k",
        default_model="m",
        timeout_seconds=5,
        version=str(port),
    )
    try:
        async with upstream_clients_closed():
            return [
                item
                async for item in llm_stream(
                    provider, [{"role": "user", "content": "x"}], GenerationParams(model="m")
                )
            ]
    finally:
        server.close()


@pytest.mark.asyncio
async def test_text_beside_null_and_reasoning_fields_still_arrives_as_text():
    items = await streamed(
        [
            chunk({"role": "assistant", "content": "", "refusal": None}),
            chunk({"content": None, "reasoning_content": "thinking"}),
            chunk({"content": "Hel", "tool_calls": None, "reasoning_content": None}),
            chunk({"content": "lo"}, finish="stop"),
        ]
    )
    assert items[:-1] == [StreamDelta(0, {"reasoning_content": "thinking"}), "Hel", "lo"]
    assert isinstance(items[-1], StreamEnd) and items[-1].finish_reason == "stop"


@pytest.mark.asyncio
async def test_tool_call_deltas_pass_on_and_are_accumulated_for_history():
    head = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    items = await streamed(
        [
            chunk({"role": "assistant", "content": None, "tool_calls": [head]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}),
            chunk({}, finish="tool_calls"),
        ]
    )
    assert items[:-1] == [
        StreamDelta(0, {"tool_calls": [head]}),
        StreamDelta(0, {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        StreamDelta(0, {"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}),
    ]
    end = items[-1]
    assert end.finish_reason == "tool_calls"
    assert end.tool_calls == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ]


@pytest.mark.asyncio
async def test_logprobs_and_other_choices_keep_their_index_and_finish():
    logprobs = {"content": [{"token": "a", "logprob": -1.0, "bytes": [97], "top_logprobs": []}]}
    items = await streamed(
        [
            chunk({"role": "assistant", "content": "a"}, logprobs=logprobs),
            chunk({"role": "assistant", "content": "b"}, index=1),
            chunk({}, index=1, finish="length"),
            chunk({}, finish="stop"),
        ]
    )
    assert items[:-1] == [
        StreamDelta(0, {"content": "a"}, logprobs),
        StreamDelta(1, {"content": "b"}),
        StreamDelta(1, {}, None, "length"),
    ]
    assert items[-1].finish_reason == "stop"
