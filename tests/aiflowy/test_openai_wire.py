"""OpenAI's stream shape for what `llm_stream` yields beside text: each choice's first chunk
carries the role, tool call deltas keep their index, another choice's end is its own
`finish_reason`, and the fingerprint and usage details ride on the final chunks."""

from __future__ import annotations

import pytest

from aiflowy.llm import StreamDelta, StreamEnd
from aiflowy.wire.openai import CompletionHeader, completion_chunks


async def items(*values):
    for value in values:
        yield value


@pytest.mark.asyncio
async def test_chunks_for_tool_calls_other_choices_and_the_end():
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}
    end = StreamEnd(
        3,
        4,
        "tool_calls",
        "m",
        system_fingerprint="fp_x",
        usage_details={"completion_tokens_details": {"reasoning_tokens": 2}},
    )
    chunks = [
        chunk
        async for chunk in completion_chunks(
            CompletionHeader("id", 1, "bot"),
            items(
                StreamDelta(0, {"tool_calls": [call]}),
                StreamDelta(1, {"content": "b"}),
                StreamDelta(1, {}, None, "stop"),
                end,
            ),
            include_usage=True,
        )
    ]
    assert chunks[-1] is end
    choices = [c["choices"][0] for c in chunks[:3]]
    assert choices[0]["delta"] == {"role": "assistant", "tool_calls": [call]}
    assert (choices[1]["index"], choices[1]["delta"]) == (1, {"role": "assistant", "content": "b"})
    assert (choices[2]["index"], choices[2]["delta"], choices[2]["finish_reason"]) == (
        1,
        {},
        "stop",
    )
    finish, usage = chunks[3], chunks[4]
    assert finish["choices"][0]["finish_reason"] == "tool_calls"
    assert finish["system_fingerprint"] == "fp_x"
    assert usage["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
