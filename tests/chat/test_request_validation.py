"""Request validation of the chat endpoints through Daphne: every wrong field is a 400 in its
family's shape naming the field in the wire's notation, and hostile input (JSON nested 10,000
deep, 5,000-digit ids, NUL characters, lone surrogates) is a 400, never a 500.

Bodies with NUL or a lone surrogate are sent as raw bytes with JSON escapes (`\\u0000`,
`\\ud800`), as a hostile client would: json.loads decodes them into the strings PostgreSQL
cannot store and UTF-8 cannot encode."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chat.conftest import COMPLETIONS, user
from tests.conftest import aiflowy_bad_request, post_raw

EXTERNAL_CHAT = "/api/v1/aiBot/externalChat"
HISTORIES = "/api/v1/chat/histories"
RECORDS = "/api/v1/chat/records"

NUL = "a\x00b"
SURROGATE = "a\ud800b"
HUGE_DIGITS = "9" * 5000


def openai_error(response, param: str | None) -> dict:
    """OpenAI's error shape, `type` invalid_request_error and `param` named."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, body
    assert error["type"] == "invalid_request_error"
    assert isinstance(error["code"], str) and error["code"]
    assert error["param"] == param, body
    if param is not None:
        assert f"'{param}'" in error["message"], body
    return error


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": [value]}
    return value


# --- externalChat (AIFlowy's shape) -------------------------------------------------------------
def external(**fields) -> dict:
    return {"botId": 1, "messages": [user("x")], **fields}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [user("x")]}, "botId"),
        (external(botId=None), "botId"),
        (external(botId="12a"), "botId"),
        (external(botId=1.5), "botId"),
        (external(botId=True), "botId"),
        (external(botId=-3), "botId"),
        (external(botId="٣"), "botId"),  # a digit, but not an ASCII one
        (external(botId=HUGE_DIGITS), "botId"),
        (external(botId=2**63), "botId"),
        (external(messages={"role": "user"}), "messages"),
        (external(messages=[user("x"), "hi"]), "messages[1]"),
        (external(messages=[{"role": "developer", "content": "x"}]), "messages[0].role"),
        (external(messages=[user("q"), {"role": "user", "content": None}]), "messages[1].content"),
        (
            external(messages=[{"role": "user", "content": [{"type": "text"}]}]),
            "messages[0].content",
        ),
        (external(stream=1), "stream"),
        (external(messages=[user(NUL)]), "messages[0].content"),
        (external(messages=[user(SURROGATE)]), "messages[0].content"),
    ],
)
def test_external_chat_names_the_field_at_fault(http, api_key, body, param):
    aiflowy_bad_request(post_raw(http, EXTERNAL_CHAT, api_key, body), param)


def test_external_chat_says_what_is_wrong_in_one_sentence(http, api_key):
    body = aiflowy_bad_request(
        post_raw(http, EXTERNAL_CHAT, api_key, external(botId="abc")), "botId"
    )
    assert body["message"] == (
        "'botId' must be a positive integer id (a number or a string of digits)."
    )
    body = aiflowy_bad_request(post_raw(http, EXTERNAL_CHAT, api_key, external(botId="")), "botId")
    assert body["message"] == "'botId' is required."


def test_a_5000_digit_number_is_invalid_json_not_a_crash(http, api_key):
    raw = b'{"botId": ' + HUGE_DIGITS.encode() + b', "messages": [{"role": "user"}]}'
    response = post_raw(http, EXTERNAL_CHAT, api_key, raw)
    assert response.status_code == 400
    assert "JSON" in response.json()["message"]


def test_json_nested_10000_deep_is_a_400(http, api_key):
    raw = b'{"botId": 1, "messages": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    response = post_raw(http, EXTERNAL_CHAT, api_key, raw)
    assert response.status_code == 400
    assert response.json()["errorCode"] == 400


def test_a_string_id_and_an_alias_free_body_still_answer(http, bot, api_key):
    response = post_raw(
        http,
        EXTERNAL_CHAT,
        api_key,
        {"botId": f" {bot.id} ", "messages": [user("hi")], "stream": None, "requestId": 9},
    )
    assert response.status_code == 200, response.text


# --- /v1/chat/completions (OpenAI's shape) ------------------------------------------------------
def completion(**fields) -> dict:
    return {"model": "helper", "messages": [user("x")], **fields}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "helper"}, "messages"),
        (completion(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role"),
        (completion(messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id"),
        (
            completion(messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
            "messages[0].content",
        ),
        (completion(tool_choice="sometimes"), "tool_choice"),
        (completion(logit_bias={"50256": 500}), "logit_bias"),
        (completion(seed="7"), "seed"),
        (completion(messages=[user("x"), {"content": "x"}]), "messages[1].role"),
        (completion(messages=[{"role": "user", "content": {"text": "x"}}]), "messages[0].content"),
        (completion(messages=[{"role": "user", "content": ["x"]}]), "messages[0].content"),
        (completion(model=["helper"]), "model"),
        (completion(model=True), "model"),
        (completion(model=HUGE_DIGITS), "model"),
        (completion(n=0), "n"),
        (completion(stream="true"), "stream"),
        (completion(stream=True, stream_options=[]), "stream_options"),
        (
            completion(stream=True, stream_options={"include_usage": 1}),
            "stream_options.include_usage",
        ),
        (completion(max_completion_tokens=0), "max_completion_tokens"),
        (completion(max_tokens="256"), "max_tokens"),
        (completion(temperature="0.5"), "temperature"),
        (completion(temperature=False), "temperature"),
        (completion(top_p=1.5), "top_p"),
        (completion(stop=[1]), "stop"),
        (completion(user=5), "user"),
        (completion(variables="x=1"), "variables"),
        (completion(chatId=" " + "c" * 251), "chatId"),
        (completion(chatId=True), "chatId"),
        (completion(customUid="u" * 251), "customUid"),
        (completion(responseChatItemId=7), "responseChatItemId"),
        (completion(detail=0), "detail"),
    ],
)
def test_completions_name_the_field_at_fault(http, api_key, body, param):
    openai_error(post_raw(http, COMPLETIONS, api_key, body), param)


def test_completions_say_what_is_wrong_in_one_sentence(http, api_key):
    error = openai_error(
        post_raw(http, COMPLETIONS, api_key, completion(temperature=2.5)), "temperature"
    )
    assert error["message"] == "'temperature' must be between 0 and 2."
    error = openai_error(
        post_raw(http, COMPLETIONS, api_key, completion(stop=["a", "b", "c", "d", "e"])), "stop"
    )
    assert error["message"] == "'stop' must be a string or a list of up to 4 strings."


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"chatId": NUL}, "chatId"),
        ({"chatId": SURROGATE}, "chatId"),
        ({"customUid": NUL}, "customUid"),
        ({"customUid": SURROGATE}, "customUid"),
        ({"responseChatItemId": NUL}, "responseChatItemId"),
        ({"responseChatItemId": SURROGATE}, "responseChatItemId"),
        ({"model": NUL}, "model"),
        ({"model": SURROGATE}, "model"),
        ({"user": NUL}, "user"),
        ({"stop": ["ok", SURROGATE]}, "stop"),
        ({"messages": [user(NUL)]}, "messages[0].content"),
        (
            {"messages": [user("q"), {"role": "assistant", "content": SURROGATE}]},
            "messages[1].content",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": SURROGATE}]}]},
            "messages[0].content",
        ),
        ({"variables": {"name": NUL}}, "variables"),
        ({"variables": {"name": [1, {"deep": SURROGATE}]}}, "variables"),
        ({"variables": {NUL: "a key"}}, "variables"),
        ({"variables": nested(200, NUL)}, "variables"),
    ],
)
def test_completions_refuse_nul_and_lone_surrogates(http, bot, api_key, fields, param):
    error = openai_error(post_raw(http, COMPLETIONS, api_key, completion(**fields)), param)
    assert "NUL" in error["message"] or "surrogate" in error["message"]


def test_deeply_nested_variables_are_validated_without_a_crash(http, bot, api_key):
    response = post_raw(
        http, COMPLETIONS, api_key, completion(messages=[user("deep")], variables=nested(200, "ok"))
    )
    assert response.status_code == 200, response.text
    too_deep = b'{"model": "helper", "messages": [], "variables": ' + b'{"k": ' * 10_000
    response = post_raw(http, COMPLETIONS, api_key, too_deep + b"1" + b"}" * 10_001)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_fields_are_ignored_and_known_aliases_are_taken(http, bot, api_key, fake_upstream):
    response = post_raw(
        http,
        COMPLETIONS,
        api_key,
        completion(
            messages=[{"role": "developer", "content": "be brief"}, user("aliases")],
            logprobs=True,
            seed=7,
            n=1,
            model=f" {bot.id} ",
            chatId=None,
            max_tokens=5,
            max_completion_tokens=9,
        ),
    )
    assert response.status_code == 200, response.text
    sent = next(r for r in reversed(fake_upstream.requests) if "aliases" in str(r["messages"]))
    assert {"role": "system", "content": "be brief"} in sent["messages"]


# --- the history API (AIFlowy's shape, through DRF) ---------------------------------------------
@pytest.mark.parametrize(
    ("url", "params", "param"),
    [
        (HISTORIES, {"botId": HUGE_DIGITS}, "botId"),
        (HISTORIES, {"botId": "0"}, "botId"),
        (HISTORIES, {"botId": "{bot}", "offset": str(2**63)}, "offset"),
        (HISTORIES, {"botId": "{bot}", "offset": HUGE_DIGITS}, "offset"),
        (HISTORIES, {"botId": "{bot}", "offset": "1.5"}, "offset"),
        (HISTORIES, {"botId": "{bot}", "pageSize": "0"}, "pageSize"),
        (HISTORIES, {"botId": "{bot}", "pageSize": "many"}, "pageSize"),
        (HISTORIES, {"botId": "{bot}", "customUid": NUL}, "customUid"),
        (HISTORIES, {"botId": "{bot}", "customUid": "u" * 251}, "customUid"),
        (RECORDS, {"botId": "{bot}"}, "chatId"),
        (RECORDS, {"botId": "{bot}", "chatId": "  "}, "chatId"),
        (RECORDS, {"botId": "{bot}", "chatId": NUL}, "chatId"),
        (RECORDS, {"botId": "{bot}", "chatId": "c" * 251}, "chatId"),
        (RECORDS, {"botId": "{bot}", "chatId": "c", "offset": "-1"}, "offset"),
    ],
)
def test_history_queries_name_the_parameter_at_fault(http, bot, api_key, url, params, param):
    params = {k: bot.id if v == "{bot}" else v for k, v in params.items()}
    response = http.get(url, headers={"Authorization": f"Bearer {api_key}"}, params=params)
    aiflowy_bad_request(response, param)


def test_history_delete_refuses_a_nul_chat_id(http, bot, api_key):
    response = http.delete(
        HISTORIES,
        headers={"Authorization": f"Bearer {api_key}"},
        params={"botId": bot.id, "chatId": NUL},
    )
    aiflowy_bad_request(response, "chatId")


def test_history_query_says_what_is_wrong_in_one_sentence(http, bot, api_key):
    response = http.get(
        HISTORIES,
        headers={"Authorization": f"Bearer {api_key}"},
        params={"botId": bot.id, "pageSize": 101},
    )
    body = aiflowy_bad_request(response, "pageSize")
    assert body["message"] == "'pageSize' must be an integer between 1 and 100."


def test_history_query_with_undecodable_bytes_is_not_a_crash(http, bot, api_key):
    # %ED%A0%80 is a surrogate encoded as UTF-8 bytes (invalid UTF-8); Django decodes query
    # strings with replacement, so it is an ordinary unknown chatId.
    response = http.get(
        f"{RECORDS}?botId={bot.id}&chatId=%ED%A0%80", headers={"Authorization": f"Bearer {api_key}"}
    )
    assert response.status_code == 404


def test_blank_history_parameters_are_absent(http, bot, api_key):
    response = http.get(
        f"{HISTORIES}?botId={bot.id}&offset=&pageSize=&customUid=",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 200, response.text
    assert (response.json()["offset"], response.json()["pageSize"]) == (0, 20)


@pytest.mark.parametrize("model", [HUGE_DIGITS, "9" * 20, "0"])
def test_a_model_path_that_names_no_bot_is_an_openai_404(http, bot, api_key, model):
    """Digits name a bot by id only as far as an id goes (19 digits); beyond, they are a name
    that no bot has, never a 500."""
    response = http.get(f"/v1/models/{model}", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "model_not_found"
