"""POST /v1/chat/completions and GET /v1/models through Daphne, with the official `openai` SDK
as the client: what an existing OpenAI integration sees when only base_url and key change."""

from __future__ import annotations

import time

import openai
import pytest

from apikeys.models import ApiKey
from chat.models import Conversation, Message
from tests.chat.conftest import stored_answer, user
from tests.conftest import assert_sse_headers


def upstream_request(fake_upstream, marker: str) -> dict:
    """The last request the fake upstream received whose messages mention `marker`."""
    return next(r for r in reversed(fake_upstream.requests) if marker in str(r["messages"]))


# --- answers ----------------------------------------------------------------------------------
def test_create_returns_an_openai_chat_completion(make_openai, bot, api_key):
    before = int(time.time())
    completion = make_openai(api_key).chat.completions.create(
        model="helper", messages=[user("hello there")]
    )
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert before <= completion.created <= int(time.time())
    assert completion.model == "helper"
    [choice] = completion.choices
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "Echo: hello there"
    assert completion.usage.completion_tokens == 3
    assert completion.usage.prompt_tokens == 5
    assert completion.usage.total_tokens == 8


def test_it_records_an_openai_call_as_a_stateless_conversation(make_openai, bot, api_key):
    make_openai(api_key).chat.completions.create(
        model="helper",
        messages=[user("earlier"), {"role": "assistant", "content": "ok"}, user("record me")],
    )
    answer = stored_answer(conversation__bot=bot)
    assert answer.content == "Echo: record me"
    assert answer.status == Message.Status.COMPLETE
    assert answer.conversation.source == Conversation.Source.OPENAI
    assert answer.conversation.external_chat_id == ""
    assert answer.prompt_tokens is not None and answer.total_ms is not None


def test_stream_sends_chunks_with_one_id_and_created_then_finish_then_usage(
    make_openai, bot, api_key
):
    before = int(time.time())
    stream = make_openai(api_key).chat.completions.create(
        model="helper",
        messages=[user("one two three")],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    *text_chunks, finish, usage = chunks
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].id.startswith("chatcmpl-")
    assert len({chunk.created for chunk in chunks}) == 1
    assert before <= chunks[0].created <= int(time.time())
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk.model for chunk in chunks} == {"helper"}
    assert text_chunks[0].choices[0].delta.role == "assistant"
    assert all(chunk.choices[0].delta.role is None for chunk in text_chunks[1:])
    assert "".join(c.choices[0].delta.content for c in text_chunks) == "Echo: one two three"
    assert all(chunk.choices[0].finish_reason is None for chunk in text_chunks)
    assert all(chunk.usage is None for chunk in [*text_chunks, finish])
    assert finish.choices[0].finish_reason == "stop"
    assert not finish.choices[0].delta.content
    assert usage.choices == []
    assert usage.usage.completion_tokens == 4
    assert usage.usage.total_tokens == usage.usage.prompt_tokens + 4


def test_stream_without_include_usage_ends_with_the_finish_chunk(make_openai, bot, api_key):
    chunks = list(
        make_openai(api_key).chat.completions.create(
            model="helper", messages=[user("hi")], stream=True
        )
    )
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.choices for chunk in chunks)


def test_with_raw_response_exposes_status_headers_and_parses(make_openai, bot, api_key):
    client = make_openai(api_key)
    raw = client.chat.completions.with_raw_response.create(model="helper", messages=[user("raw")])
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.parse().choices[0].message.content == "Echo: raw"

    raw_stream = client.chat.completions.with_raw_response.create(
        model="helper", messages=[user("raw stream")], stream=True
    )
    assert_sse_headers(raw_stream)
    text = "".join(c.choices[0].delta.content or "" for c in raw_stream.parse())
    assert text == "Echo: raw stream"


@pytest.mark.asyncio
async def test_async_client_creates_and_streams(make_async_openai, bot, api_key):
    async with make_async_openai(api_key) as client:
        completion = await client.chat.completions.create(
            model="helper", messages=[user("async hello")]
        )
        assert completion.choices[0].message.content == "Echo: async hello"

        stream = await client.chat.completions.create(
            model="helper",
            messages=[user("async stream")],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Echo: async stream"
        assert chunks[-1].usage.completion_tokens == 3

        raw = await client.chat.completions.with_raw_response.create(
            model="helper", messages=[user("async raw")]
        )
        assert raw.status_code == 200
        assert raw.parse().choices[0].message.content == "Echo: async raw"


@pytest.fixture
def cutter(make_bot):
    """A bot whose upstream sends two words, then drops the connection."""
    return make_bot(name="cutter", model="cut")


@pytest.mark.asyncio
async def test_async_client_raises_the_sdk_exceptions(make_async_openai, cutter, api_key):
    async with make_async_openai(api_key) as client:
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="nobody", messages=[user("x")])
        stream = await client.chat.completions.create(
            model="cutter", messages=[user("a b c d")], stream=True
        )
        with pytest.raises(openai.APIError) as raised:
            async for _chunk in stream:
                pass
        assert not isinstance(raised.value, openai.APIStatusError)
    async with make_async_openai("af-not-a-key") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="helper", messages=[user("x")])


# --- which bot --------------------------------------------------------------------------------
def test_a_key_with_one_bot_ignores_model(make_openai, make_bot, make_key, fake_upstream):
    only = make_bot(name="only", model="upstream-x")
    make_bot(name="other")
    key = make_key(bot_ids=[only.id])
    completion = make_openai(key).chat.completions.create(
        model="gpt-4o", messages=[user("single bot")]
    )
    assert completion.model == "only"
    assert upstream_request(fake_upstream, "single bot")["model"] == "upstream-x"


@pytest.mark.parametrize("by", ["name", "id"])
def test_model_names_the_bot_by_name_or_id(make_openai, make_bot, api_key, fake_upstream, by):
    make_bot(name="first", model="upstream-first")
    second = make_bot(name="second", model="upstream-second")
    model = "second" if by == "name" else str(second.id)
    completion = make_openai(api_key).chat.completions.create(
        model=model, messages=[user(f"pick {by}")]
    )
    assert completion.model == "second"
    assert upstream_request(fake_upstream, f"pick {by}")["model"] == "upstream-second"


def test_unknown_or_disabled_model_is_not_found(make_openai, make_bot, api_key):
    make_bot(name="sleeping", enabled=False)
    client = make_openai(api_key)
    for model in ("no-such-bot", "sleeping", "999999"):
        with pytest.raises(openai.NotFoundError) as raised:
            client.chat.completions.create(model=model, messages=[user("x")])
        assert raised.value.status_code == 404
        assert raised.value.code == "model_not_found"
        assert raised.value.param == "model"


def test_model_outside_the_keys_scope_is_permission_denied(make_openai, make_bot, make_key):
    a, b = make_bot(name="a"), make_bot(name="b")
    make_bot(name="c")
    client = make_openai(make_key(bot_ids=[a.id, b.id]))
    assert client.chat.completions.create(model="b", messages=[user("x")]).model == "b"
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.chat.completions.create(model="c", messages=[user("x")])
    assert raised.value.status_code == 403
    assert raised.value.type == "permission_error"


def test_model_is_required_when_the_key_may_use_several_bots(make_openai, bot, api_key):
    with pytest.raises(openai.BadRequestError) as raised:
        make_openai(api_key).chat.completions.create(model="", messages=[user("x")])
    assert raised.value.param == "model"


# --- /v1/models -------------------------------------------------------------------------------
def test_models_lists_exactly_the_bots_the_key_may_use(make_openai, make_bot, make_key):
    a, b = make_bot(name="alpha"), make_bot(name="beta")
    off = make_bot(name="off", enabled=False)
    make_bot(name="gamma")
    scoped = make_openai(make_key(bot_ids=[a.id, b.id, off.id])).models.list()
    assert [model.id for model in scoped.data] == ["alpha", "beta"]
    assert {model.object for model in scoped.data} == {"model"}
    assert {model.owned_by for model in scoped.data} == {"aiflowy"}
    assert all(model.created > 1_700_000_000 for model in scoped.data)
    everything = make_openai(make_key()).models.list()
    assert [model.id for model in everything.data] == ["alpha", "beta", "gamma"]


def test_models_retrieve_finds_a_bot_in_scope_only(make_openai, make_bot, make_key):
    a = make_bot(name="alpha")
    make_bot(name="beta")
    client = make_openai(make_key(bot_ids=[a.id]))
    assert client.models.retrieve("alpha").id == "alpha"
    assert client.models.retrieve(str(a.id)).id == "alpha"
    with pytest.raises(openai.PermissionDeniedError):
        client.models.retrieve("beta")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nobody")


# --- request fields ---------------------------------------------------------------------------
def test_request_settings_override_the_bots_when_it_allows(
    make_openai, make_bot, api_key, fake_upstream
):
    make_bot(name="open", allow_request_overrides=True, temperature=0.9, top_p=0.9)
    make_openai(api_key).chat.completions.create(
        model="open",
        messages=[user("override me")],
        temperature=0.2,
        top_p=0.5,
        max_tokens=7,
        stop="END",
        user="end-user-1",
    )
    sent = upstream_request(fake_upstream, "override me")
    assert sent["temperature"] == 0.2
    assert sent["top_p"] == 0.5
    assert sent["max_tokens"] == 7
    assert sent["stop"] == ["END"]
    assert sent["user"] == "end-user-1"


def test_max_completion_tokens_is_honoured(make_openai, bot, api_key, fake_upstream):
    make_openai(api_key).chat.completions.create(
        model="helper", messages=[user("newer field")], max_completion_tokens=9
    )
    sent = upstream_request(fake_upstream, "newer field")
    # Under its own name: reasoning models refuse `max_tokens`.
    assert sent["max_completion_tokens"] == 9
    assert "max_tokens" not in sent


def test_bot_settings_win_when_the_bot_forbids_overrides(
    make_openai, make_bot, api_key, fake_upstream
):
    make_bot(
        name="locked", allow_request_overrides=False, temperature=0.3, top_p=0.4, max_tokens=50
    )
    make_openai(api_key).chat.completions.create(
        model="locked",
        messages=[user("try to override")],
        temperature=1.5,
        top_p=0.1,
        max_tokens=4000,
        stop=["x"],
    )
    sent = upstream_request(fake_upstream, "try to override")
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.3, 0.4, 50)
    assert "stop" not in sent


def test_text_content_parts_developer_role_and_unknown_fields_are_accepted(
    make_openai, bot, api_key, fake_upstream
):
    completion = make_openai(api_key).chat.completions.create(
        model="helper",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "parts "}, {"type": "text", "text": "joined"}],
            },
        ],
        seed=7,
        presence_penalty=0.1,
        extra_body={"some_vendor_field": {"x": 1}},
    )
    assert completion.choices[0].message.content == "Echo: parts joined"
    sent = upstream_request(fake_upstream, "parts joined")["messages"]
    assert sent == [
        {"role": "system", "content": "You are helpful."},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "parts joined"},
    ]


# --- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["af-not-a-key", "no-prefix"])
def test_a_wrong_key_raises_authentication_error(make_openai, bot, key):
    with pytest.raises(openai.AuthenticationError) as raised:
        make_openai(key).chat.completions.create(model="helper", messages=[user("x")])
    assert raised.value.status_code == 401
    assert raised.value.type == "authentication_error"


def test_disabled_key_raises_authentication_error(make_openai, bot, make_key):
    key = make_key(name="to disable")
    ApiKey.objects.filter(name="to disable").update(enabled=False)
    with pytest.raises(openai.AuthenticationError) as raised:
        make_openai(key).models.list()
    assert "disabled" in raised.value.message


def test_over_the_rate_limit_raises_rate_limit_error_with_retry_after(make_openai, bot, make_key):
    client = make_openai(make_key(rate_limit_per_minute=1))
    client.chat.completions.create(model="helper", messages=[user("x")])
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="helper", messages=[user("x")])
    assert raised.value.status_code == 429
    assert raised.value.code == "rate_limit_exceeded"
    assert 1 <= int(raised.value.response.headers["retry-after"]) <= 60


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content",
        ),
        ({"temperature": 3}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"n": 0}, "n"),
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
    ],
)
def test_invalid_requests_raise_bad_request_error_naming_the_field(
    make_openai, bot, api_key, fields, param
):
    arguments = {"model": "helper", "messages": [user("x")], **fields}
    with pytest.raises(openai.BadRequestError) as raised:
        make_openai(api_key).chat.completions.create(**arguments)
    assert raised.value.status_code == 400
    assert raised.value.param == param
    assert raised.value.type == "invalid_request_error"


@pytest.mark.parametrize(("model", "status"), [("fail500", 502), ("fail429", 502), ("hang", 504)])
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_failures_raise_api_status_error_without_leaking(
    make_openai, make_bot, api_key, model, status, stream
):
    make_bot(name="failing", model=model)
    with pytest.raises(openai.APIStatusError) as raised:
        make_openai(api_key).chat.completions.create(
            model="failing", messages=[user("x")], stream=stream
        )
    assert raised.value.status_code == status
    assert "secret upstream detail" not in raised.value.message
    answer = stored_answer(conversation__bot__name="failing")
    assert answer.status == Message.Status.ERROR


def test_a_failure_mid_stream_raises_api_error_and_keeps_the_partial_answer(
    make_openai, cutter, api_key
):
    stream = make_openai(api_key).chat.completions.create(
        model="cutter", messages=[user("a b c d")], stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert not isinstance(raised.value, openai.APIStatusError)
    # The fake upstream sends two words then aborts (which may drop the second one unsent).
    assert received in (["Echo: "], ["Echo: ", "a "])
    assert raised.value.body["code"] == "upstream_error"
    answer = stored_answer(conversation__bot__name="cutter")
    assert answer.status == Message.Status.ERROR
    assert answer.content == "".join(received)


def test_the_alias_under_api_v1_answers_the_same(live_server_url, make_openai, bot, api_key):
    client = make_openai(api_key, base_url=f"{live_server_url}/api/v1")
    completion = client.chat.completions.create(model="helper", messages=[user("alias")])
    assert completion.choices[0].message.content == "Echo: alias"
    assert [model.id for model in client.models.list().data] == ["helper"]
