"""LangChain's `ChatOpenAI` as the client of `/v1/chat/completions` through Daphne: a tool
bound with `bind_tools`, called, answered with a `ToolMessage`, and the final answer; the same
with streaming, where LangChain merges the indexed tool call deltas itself."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny in {city}"


def chat_model(live_server_url: str, api_key: str, **options) -> ChatOpenAI:
    return ChatOpenAI(
        model="helper",
        base_url=f"{live_server_url}/v1",
        api_key=api_key,
        max_retries=0,
        timeout=30,
        **options,
    )


@pytest.mark.parametrize("streaming", [False, True])
def test_bind_tools_round_trip(
    live_server_url, transactional_db, bot, api_key, fake_upstream, streaming
):
    model = chat_model(live_server_url, api_key, streaming=streaming).bind_tools([get_weather])
    messages = [HumanMessage(f"Graz {streaming}")]
    called = model.invoke(messages)
    [call] = called.tool_calls
    assert call["name"] == "get_weather"
    assert call["args"] == {"city": f"Graz {streaming}"}
    assert call["id"]
    sent = fake_upstream.last_request
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]
    assert sent["tools"][0]["function"]["parameters"]["properties"] == {"city": {"type": "string"}}

    result = get_weather.invoke(call["args"])
    messages += [called, ToolMessage(result, tool_call_id=call["id"])]
    answer = model.invoke(messages)
    assert answer.content == f"Tool said: Sunny in Graz {streaming}"
    assert not answer.tool_calls
    sent = fake_upstream.last_request["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == call["id"]
    assert sent[-1] == {
        "role": "tool",
        "tool_call_id": call["id"],
        "content": f"Sunny in Graz {streaming}",
    }
