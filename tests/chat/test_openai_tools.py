"""The whole OpenAI chat completions API through Daphne with the official `openai` SDK: tool
calling over two turns (plain and streamed), structured output with the SDK's parse helper,
media content parts, every other request field passed to the provider, every answer field
passed back, the per-bot switches, and tool calls in `chatId` history.

The fake upstream answers deterministically (see `aiflowy/testing/fake_upstream.py`): a call
of the first tool with arguments built from its schema, `Tool said: …` after tool results,
schema-valid JSON for `json_schema`, and `[image <url>]` for image parts."""

from __future__ import annotations

import json

import openai
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from pydantic import BaseModel

from chat.models import Message
from tests.chat.conftest import stored_answer, stored_answers, user, wait_until

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}


def upstream_request(fake_upstream, marker: str) -> dict:
    """The last request the fake upstream received whose messages mention `marker`."""
    return next(r for r in reversed(fake_upstream.requests) if marker in str(r["messages"]))


def assistant_turn(message) -> dict:
    """An SDK answer message as the caller sends it back in the next request."""
    return message.model_dump(exclude_none=True)


# --- tool calling -------------------------------------------------------------------------------
def test_tool_calling_over_two_turns(make_openai, bot, api_key, fake_upstream):
    client = make_openai(api_key)
    messages = [user("Lyon")]
    first = client.chat.completions.create(
        model="helper",
        messages=messages,
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        parallel_tool_calls=False,
    )
    [choice] = first.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Lyon", "unit": "celsius"}
    sent = upstream_request(fake_upstream, "Lyon")
    assert sent["tools"] == [WEATHER_TOOL]
    assert sent["tool_choice"] == "auto"
    assert sent["parallel_tool_calls"] is False

    messages += [
        assistant_turn(choice.message),
        {"role": "tool", "tool_call_id": call.id, "content": "18 °C, sunny"},
    ]
    second = client.chat.completions.create(model="helper", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "Tool said: 18 °C, sunny"
    # The assistant's call and the tool's result reached the provider as OpenAI messages.
    sent = upstream_request(fake_upstream, "18 °C")["messages"]
    assert sent[-2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": call.function.arguments},
            }
        ],
    }
    assert sent[-1] == {"role": "tool", "tool_call_id": call.id, "content": "18 °C, sunny"}

    # History holds the call and the result as such.
    call_row, answer_row = stored_answers(2, conversation__bot=bot)
    assert call_row.tool_calls == [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": "get_weather", "arguments": call.function.arguments},
        }
    ]
    assert call_row.content == ""
    tool_row = Message.objects.get(role=Message.Role.TOOL)
    assert (tool_row.tool_call_id, tool_row.content) == (call.id, "18 °C, sunny")
    assert tool_row.conversation_id == answer_row.conversation_id
    assert answer_row.content == "Tool said: 18 °C, sunny"


def test_streamed_tool_calls_arrive_as_indexed_deltas_the_sdk_accumulates(
    make_openai, bot, api_key
):
    client = make_openai(api_key)
    with client.chat.completions.stream(
        model="helper", messages=[user("Oslo")], tools=[WEATHER_TOOL]
    ) as stream:
        deltas = [
            event.chunk.choices[0].delta
            for event in stream
            if event.type == "chunk" and event.chunk.choices
        ]
        final = stream.get_final_completion()
    pieces = [d.tool_calls[0] for d in deltas if d.tool_calls]
    assert len(pieces) > 2  # the name first, then the arguments in pieces
    assert {p.index for p in pieces} == {0}
    assert pieces[0].id and pieces[0].function.name == "get_weather"
    assert all(p.id is None for p in pieces[1:])
    [choice] = final.choices
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.id == pieces[0].id
    assert json.loads(call.function.arguments) == {"city": "Oslo", "unit": "celsius"}
    stored = stored_answer(conversation__bot=bot)
    assert stored.tool_calls[0]["function"] == {
        "name": "get_weather",
        "arguments": call.function.arguments,
    }


def test_a_chat_id_conversation_replays_tool_calls_and_results(
    make_openai, bot, api_key, fake_upstream
):
    client = make_openai(api_key)
    chat = {"chatId": "trip-1"}
    first = client.chat.completions.create(
        model="helper", messages=[user("Rome")], tools=[WEATHER_TOOL], extra_body=chat
    )
    [call] = first.choices[0].message.tool_calls
    # With a chatId only the new input is sent: here the tool's result.
    second = client.chat.completions.create(
        model="helper",
        messages=[{"role": "tool", "tool_call_id": call.id, "content": "25 °C"}],
        tools=[WEATHER_TOOL],
        extra_body=chat,
    )
    assert second.choices[0].message.content == "Tool said: 25 °C"
    client.chat.completions.create(
        model="helper", messages=[user("thanks")], tools=[WEATHER_TOOL], extra_body=chat
    )
    stored_call = {
        "id": call.id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": call.function.arguments},
    }
    assert upstream_request(fake_upstream, "thanks")["messages"] == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Rome"},
        {"role": "assistant", "content": None, "tool_calls": [stored_call]},
        {"role": "tool", "tool_call_id": call.id, "content": "25 °C"},
        {"role": "assistant", "content": "Tool said: 25 °C"},
        {"role": "user", "content": "thanks"},
    ]


def test_a_history_window_never_starts_with_an_orphaned_tool_result(
    make_openai, make_bot, api_key, fake_upstream
):
    make_bot(name="short", history_window=2)
    client = make_openai(api_key)
    chat = {"chatId": "window"}
    first = client.chat.completions.create(
        model="short", messages=[user("Bern")], tools=[WEATHER_TOOL], extra_body=chat
    )
    [call] = first.choices[0].message.tool_calls
    client.chat.completions.create(
        model="short",
        messages=[{"role": "tool", "tool_call_id": call.id, "content": "9 °C"}],
        extra_body=chat,
    )
    client.chat.completions.create(model="short", messages=[user("and now")], extra_body=chat)
    # Stored: the question, the call, the result, the answer. A window of 2 holds the result
    # but not its call, so the result is left out too.
    assert upstream_request(fake_upstream, "and now")["messages"] == [
        {"role": "assistant", "content": "Tool said: 9 °C"},
        {"role": "user", "content": "and now"},
    ]


def test_old_clients_function_calling_reaches_the_provider(
    make_openai, bot, api_key, fake_upstream
):
    functions = [WEATHER_TOOL["function"]]
    completion = make_openai(api_key).chat.completions.create(
        model="helper",
        messages=[
            user("legacy"),
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "get_weather", "arguments": "{}"},
            },
            {"role": "function", "name": "get_weather", "content": "cold"},
        ],
        functions=functions,
        function_call="auto",
    )
    assert completion.choices[0].message.content == "Tool said: cold"
    sent = upstream_request(fake_upstream, "legacy")
    assert sent["functions"] == functions
    assert sent["function_call"] == "auto"
    assert sent["messages"][-1] == {"role": "function", "name": "get_weather", "content": "cold"}


# --- structured output, media ---------------------------------------------------------------
class Forecast(BaseModel):
    city: str
    temperature: float
    sunny: bool
    hours: list[int]


def test_structured_output_with_the_sdks_parse_helper(make_openai, bot, api_key, fake_upstream):
    completion = make_openai(api_key).chat.completions.parse(
        model="helper", messages=[user("Nice")], response_format=Forecast
    )
    parsed = completion.choices[0].message.parsed
    assert parsed == Forecast(city="Nice", temperature=1.0, sunny=True, hours=[1])
    sent = upstream_request(fake_upstream, "Nice")["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "Forecast"
    assert sent["json_schema"]["strict"] is True
    assert set(sent["json_schema"]["schema"]["properties"]) == {
        "city",
        "temperature",
        "sunny",
        "hours",
    }


def test_an_image_part_reaches_the_provider_intact(make_openai, bot, api_key, fake_upstream):
    image = (
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
        "nGNgYAAAAAMAASsJTYQAAAAASUVORK5CYII="
    )
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
    ]
    completion = make_openai(api_key).chat.completions.create(
        model="helper", messages=[{"role": "user", "content": content}]
    )
    assert completion.choices[0].message.content == f"Echo: What is this? [image {image}]"
    assert upstream_request(fake_upstream, "What is this?")["messages"][-1] == {
        "role": "user",
        "content": content,
    }
    # History keeps the question's text.
    question = wait_until(lambda: Message.objects.filter(role=Message.Role.USER).first())
    assert question.content == "What is this?"


def test_audio_and_file_parts_reach_the_provider_intact(make_openai, bot, api_key, fake_upstream):
    content = [
        {"type": "text", "text": "Listen and read"},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {
            "type": "file",
            "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERg=="},
        },
    ]
    completion = make_openai(api_key).chat.completions.create(
        model="helper", messages=[{"role": "user", "content": content}]
    )
    assert completion.choices[0].message.content == "Echo: Listen and read [audio wav] [file a.pdf]"
    assert upstream_request(fake_upstream, "Listen and read")["messages"][-1]["content"] == content


# --- every other field ----------------------------------------------------------------------
def test_every_documented_request_field_reaches_the_provider(
    make_openai, bot, api_key, fake_upstream
):
    fields = {
        "seed": 42,
        "logprobs": True,
        "top_logprobs": 1,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "logit_bias": {"50256": -100},
        "n": 2,
        "user": "end-user-7",
        "metadata": {"team": "a"},
        "store": False,
        "reasoning_effort": "low",
        "max_completion_tokens": 64,
        "stop": ["\n\n"],
        "response_format": {"type": "text"},
        "service_tier": "auto",
        "prediction": {"type": "content", "content": "Echo"},
    }
    completion = make_openai(api_key).chat.completions.create(
        model="helper", messages=[user("all fields")], **fields
    )
    sent = upstream_request(fake_upstream, "all fields")
    for name, value in fields.items():
        assert sent[name] == value, name
    assert [c.index for c in completion.choices] == [0, 1]
    assert all(c.message.content == "Echo: all fields" for c in completion.choices)
    token = completion.choices[0].logprobs.content[0]
    assert (token.token, token.logprob) == ("Echo: ", -0.5)
    assert token.top_logprobs[0].token == "Echo: "


def test_fingerprint_and_usage_details_come_back(make_openai, make_bot, api_key):
    make_bot(name="detailed", model="fake-details")
    client = make_openai(api_key)
    completion = client.chat.completions.create(model="detailed", messages=[user("u")])
    assert completion.system_fingerprint == "fp_fake"
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert completion.usage.completion_tokens_details.reasoning_tokens == 0
    chunks = list(
        client.chat.completions.create(
            model="detailed",
            messages=[user("u")],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 0
    assert chunks[-1].system_fingerprint == "fp_fake"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-2].system_fingerprint == "fp_fake"


@pytest.mark.parametrize(
    ("model", "reason"), [("fake-length", "length"), ("fake-filter", "content_filter")]
)
@pytest.mark.parametrize("stream", [False, True])
def test_finish_reasons_come_back(make_openai, make_bot, api_key, model, reason, stream):
    make_bot(name="ending", model=model)
    client = make_openai(api_key)
    if stream:
        chunks = list(
            client.chat.completions.create(model="ending", messages=[user("x")], stream=True)
        )
        assert chunks[-1].choices[0].finish_reason == reason
        assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    else:
        completion = client.chat.completions.create(model="ending", messages=[user("x")])
        assert completion.choices[0].finish_reason == reason


@pytest.mark.parametrize("stream", [False, True])
def test_a_refusal_comes_back_as_a_refusal(make_openai, make_bot, api_key, stream):
    make_bot(name="refuser", model="fake-refuse")
    client = make_openai(api_key)
    if stream:
        with client.chat.completions.stream(model="refuser", messages=[user("x")]) as events:
            message = events.get_final_completion().choices[0].message
    else:
        message = (
            client.chat.completions.create(model="refuser", messages=[user("x")]).choices[0].message
        )
    assert message.refusal == "I can't help with that."
    assert not message.content


# --- the operator's switches ----------------------------------------------------------------
IMAGE_MESSAGE = {
    "role": "user",
    "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ],
}


@pytest.mark.parametrize(
    ("switch", "fields", "param"),
    [
        ("allow_request_tools", {"tools": [WEATHER_TOOL]}, "tools"),
        ("allow_request_tools", {"tool_choice": "required"}, "tool_choice"),
        ("allow_request_media", {"messages": [IMAGE_MESSAGE]}, "messages[0].content[1]"),
        ("allow_request_media", {"modalities": ["text", "audio"]}, "modalities"),
        ("allow_request_overrides", {"seed": 1}, "seed"),
        ("allow_request_overrides", {"n": 2}, "n"),
        ("allow_request_overrides", {"logprobs": True}, "logprobs"),
    ],
)
def test_a_switched_off_feature_is_refused_naming_the_field(
    make_openai, make_bot, api_key, fake_upstream, switch, fields, param
):
    make_bot(name="strict", **{switch: False})
    asked_before = len(fake_upstream.requests)
    arguments = {"model": "strict", "messages": [user("x")], **fields}
    with pytest.raises(openai.BadRequestError) as raised:
        make_openai(api_key).chat.completions.create(**arguments)
    assert raised.value.status_code == 400
    assert raised.value.param == param
    assert raised.value.code == "unsupported_parameter"
    assert raised.value.type == "invalid_request_error"
    assert param in raised.value.message
    assert len(fake_upstream.requests) == asked_before


def test_a_switched_off_feature_is_not_refused_on_other_bots_or_when_unused(
    make_openai, make_bot, bot, api_key
):
    make_bot(
        name="plain",
        allow_request_tools=False,
        allow_request_media=False,
        allow_request_overrides=False,
    )
    client = make_openai(api_key)
    # n=1, logprobs false and tool_choice "none" change nothing; plain text is no media.
    answer = client.chat.completions.create(
        model="plain", messages=[user("fine")], n=1, logprobs=False, tool_choice="none"
    )
    assert answer.choices[0].message.content == "Echo: fine"
    answer = client.chat.completions.create(
        model="helper", messages=[IMAGE_MESSAGE], tools=[WEATHER_TOOL], seed=3
    )
    assert answer.choices[0].finish_reason == "tool_calls"


# --- the admin --------------------------------------------------------------------------------
@pytest.fixture
def admin_client(transactional_db) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    return client


def test_the_switches_are_on_the_bot_admin_page_in_zh_hans(admin_client, bot):
    page = admin_client.get(f"/admin/bots/bot/{bot.pk}/change/").content.decode()
    for label in ("调用方可发送的内容", "允许调用方发送工具", "允许调用方发送图片和其他媒体"):
        assert label in page
    assert 'name="allow_request_tools"' in page and 'name="allow_request_media"' in page


def test_an_operator_reads_tool_calls_and_results_in_the_conversation_admin(
    admin_client, make_openai, bot, api_key
):
    client = make_openai(api_key)
    first = client.chat.completions.create(
        model="helper", messages=[user("Kyiv")], tools=[WEATHER_TOOL], extra_body={"chatId": "c"}
    )
    [call] = first.choices[0].message.tool_calls
    client.chat.completions.create(
        model="helper",
        messages=[{"role": "tool", "tool_call_id": call.id, "content": "snow"}],
        extra_body={"chatId": "c"},
    )
    conversation = stored_answer(content="Tool said: snow").conversation
    page = admin_client.get(f"/admin/chat/conversation/{conversation.pk}/change/").content
    page = page.decode()
    assert "工具调用" in page
    assert "get_weather" in page and call.id in page and "snow" in page
