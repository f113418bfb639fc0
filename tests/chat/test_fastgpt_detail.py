"""FastGPT's `detail: true` in full: every `responseData` field (price at the operator's
prices, question, answer, maxToken, quoteList, completeMessages), `newVariables`, and the
stream's `updateVariables`, tool and `appStreamResponse` events."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from aiflowy.wire import fastgpt
from bots.models import Bot, LlmProvider
from tests.chat.conftest import COMPLETIONS, sse_events, user

SYSTEM_PROMPT = "You help {{name}}."


def chat(http, key: str, **body):
    body.setdefault("model", "priced")
    return http.post(COMPLETIONS, headers={"Authorization": f"Bearer {key}"}, json=body)


@pytest.fixture
def priced_bot(provider, make_bot) -> Bot:
    LlmProvider.objects.filter(pk=provider.pk).update(
        input_price_per_1k=Decimal("0.5"), output_price_per_1k=Decimal("1.5")
    )
    return make_bot(name="priced", system_prompt=SYSTEM_PROMPT, max_tokens=300, temperature=0.3)


def test_a_json_detail_record_has_every_field_and_the_price_at_the_providers_prices(
    http, priced_bot, api_key
):
    body = chat(
        http, api_key, detail=True, variables={"name": "Ann"}, messages=[user("price me")]
    ).json()
    [record] = body["responseData"]
    usage = body["usage"]
    assert record["price"] == pytest.approx(
        (usage["prompt_tokens"] * 0.5 + usage["completion_tokens"] * 1.5) / 1000
    )
    assert record["price"] > 0
    assert record["question"] == "price me"
    assert record["answer"] == "Echo: price me" == body["choices"][0]["message"]["content"]
    assert record["maxToken"] == 300
    assert record["temperature"] == 0.3
    assert record["quoteList"] == []
    assert record["tokens"] == usage["total_tokens"]
    assert (record["inputTokens"], record["outputTokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert record["completeMessages"] == [
        {"obj": "System", "value": "You help Ann."},
        {"obj": "Human", "value": "price me"},
        {"obj": "AI", "value": "Echo: price me"},
    ]
    assert body["newVariables"] == {"name": "Ann"}


def test_the_bots_own_prices_win_and_no_prices_cost_nothing(http, priced_bot, make_bot, api_key):
    Bot.objects.filter(pk=priced_bot.pk).update(
        input_price_per_1k=Decimal("10"), output_price_per_1k=Decimal("0")
    )
    body = chat(http, api_key, detail=True, messages=[user("own price")]).json()
    assert body["responseData"][0]["price"] == pytest.approx(
        body["usage"]["prompt_tokens"] * 10 / 1000
    )
    LlmProvider.objects.update(input_price_per_1k=0, output_price_per_1k=0)
    make_bot(name="free")
    free = chat(http, api_key, model="free", detail=True, messages=[user("free")]).json()
    assert free["responseData"][0]["price"] == 0
    assert "newVariables" not in free


def test_a_streamed_detail_sends_update_variables_and_the_records_twice(http, priced_bot, api_key):
    response = chat(
        http,
        api_key,
        detail=True,
        stream=True,
        variables={"name": "Bo"},
        messages=[user("stream me")],
    )
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[:2] == ["flowNodeStatus", "updateVariables"]
    assert json.loads(events[1][1]) == {"name": "Bo"}
    assert names[-3:] == ["answer", "flowResponses", "appStreamResponse"]
    [record] = json.loads(events[-2][1])
    assert json.loads(events[-1][1]) == [record]
    assert record["answer"] == "Echo: stream me"
    assert record["completeMessages"][0] == {"obj": "System", "value": "You help Bo."}
    assert record["completeMessages"][-1] == {"obj": "AI", "value": "Echo: stream me"}
    assert record["price"] > 0
    assert "toolCall" not in names


# The tool events are derived from OpenAI's own stream chunks and messages, so they are shown
# here on those shapes; the end-to-end tool-calling tests run with the openai SDK.
def test_streamed_tool_call_deltas_become_tool_call_then_tool_params():
    started: dict[int, str] = {}
    first = {
        "choices": [
            {
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": ""},
                        }
                    ]
                }
            }
        ]
    }
    later = {
        "choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"c'}}]}}]
    }
    text = {"choices": [{"delta": {"content": "hi"}}]}
    events = [
        *fastgpt.tool_call_events(first, started),
        *fastgpt.tool_call_events(later, started),
        *fastgpt.tool_call_events(text, started),
    ]
    parsed = [sse_events(event.decode())[0] for event in events]
    assert [name for name, _ in parsed] == ["toolCall", "toolParams"]
    assert json.loads(parsed[0][1]) == {
        "tool": {
            "id": "call_1",
            "toolName": "weather",
            "toolAvatar": "",
            "functionName": "weather",
            "params": "",
            "response": "",
        }
    }
    assert json.loads(parsed[1][1])["tool"] == {
        "id": "call_1",
        "toolName": "",
        "toolAvatar": "",
        "params": '{"c',
    }


def test_the_tool_results_a_caller_sends_become_tool_response_events():
    messages = [
        {"role": "tool", "tool_call_id": "old", "content": "answered before"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_9"}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "22 °C"},
    ]
    [event] = fastgpt.tool_response_events(messages)
    name, data = sse_events(event.decode())[0]
    assert name == "toolResponse"
    assert json.loads(data)["tool"]["id"] == "call_9"
    assert json.loads(data)["tool"]["response"] == "22 °C"
