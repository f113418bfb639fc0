"""Hand-made hostile requests a schema-driven fuzzer would not invent, against every external
HTTP endpoint of the live server: each gets a 4xx in its family's error shape (or, when
accepted, an answer whose stored history holds exactly what was sent) — never a 5xx, never a
plain-text answer, never a hang."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest

from chat.models import Message

pytestmark = pytest.mark.django_db(transaction=True)

DEEP_OBJECTS = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
DEEP_LISTS = b"[" * 10_000 + b"]" * 10_000
HUGE = "9" * 5_000
NUL = "a\x00b"
SURROGATE = "a\ud800b"


def raw_json(body: Any) -> bytes:
    """JSON with ASCII escapes, so NUL and lone surrogates arrive as a hostile client sends
    them (`\\u0000`, `\\ud800`)."""
    return body if isinstance(body, bytes) else json.dumps(body).encode("ascii")


def assert_family_error(response: httpx.Response, family: str) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    body = response.json()
    if family == "openai":
        assert set(body) == {"error"}, body
        assert {"message", "type", "param", "code"} <= set(body["error"]), body
    else:
        assert body["errorCode"] == response.status_code, body
        assert isinstance(body["message"], str) and body["message"], body


# --- every POST endpoint × hostile bodies ---------------------------------------------------------
POSTS = {
    "externalChat": ("/api/v1/aiBot/externalChat", "aiflowy"),
    "completions": ("/v1/chat/completions", "openai"),
    "api-completions": ("/api/v1/chat/completions", "openai"),
    "workflow-run": ("/api/v1/workflow/external/run", "aiflowy"),
    "getRunningParams": ("/api/v1/workflow/external/getRunningParams", "aiflowy"),
    "runStatus": ("/api/v1/workflow/external/runStatus", "aiflowy"),
}


def nested_inside(field: str, depth: int) -> bytes:
    return (
        b'{"botId": 1, "id": 1, "'
        + field.encode()
        + b'": '
        + b'{"k":' * depth
        + b"1"
        + b"}" * (depth + 1)
    )


HOSTILE_BODIES = {
    "objects 10000 deep": DEEP_OBJECTS,
    "lists 10000 deep": DEEP_LISTS,
    "variables 990 deep": nested_inside("variables", 990),
    "5000-digit botId/id/model": b'{"botId": %s, "id": %s, "model": %s, "runId": %s}'
    % ((HUGE.encode(),) * 4),
    "5000-digit strings": raw_json({"botId": HUGE, "id": HUGE, "model": HUGE, "runId": HUGE}),
    "1e999": b'{"botId": 1e999, "id": 1e999, "temperature": 1e999}',
    "NaN": b'{"botId": NaN, "id": NaN, "temperature": NaN}',
    "invalid UTF-8": b'{"botId": 1, "id": 1, "messages": [{"role": "user", "content": "\xff"}]}',
    "NUL bytes": b"\x00" * 1000,
    "duplicate keys": b'{"botId": 1, "botId": {"x": 1}, "id": 1, "id": [], "model": []}',
    "empty": b"",
    "not an object": b'"just a string"',
    "over the body cap": b'{"pad": "' + b"x" * 1_100_000 + b'"}',
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
@pytest.mark.parametrize("endpoint", POSTS.values(), ids=POSTS.keys())
def test_hostile_bodies_get_a_4xx_in_the_family_shape(http, api_key, endpoint, body):
    path, family = endpoint
    response = http.post(
        path,
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        content=body,
    )
    assert_family_error(response, family)


# --- NUL and lone surrogates in every stored field: refused, never 200-and-dropped ---------------
def chat_fields(bot) -> dict[str, tuple[str, str, dict]]:
    message = {"role": "user", "content": "hello"}
    completions = {"model": bot.name, "messages": [message], "chatId": "c1"}
    return {
        "content": (
            "/v1/chat/completions",
            "openai",
            {**completions, "messages": [{"role": "user", "content": "{}"}]},
        ),
        "chatId": ("/v1/chat/completions", "openai", {**completions, "chatId": "{}"}),
        "model": ("/v1/chat/completions", "openai", {**completions, "model": "{}"}),
        "customUid": ("/v1/chat/completions", "openai", {**completions, "customUid": "{}"}),
        "responseChatItemId": (
            "/v1/chat/completions",
            "openai",
            {**completions, "responseChatItemId": "{}"},
        ),
        "variables": ("/v1/chat/completions", "openai", {**completions, "variables": {"v": "{}"}}),
        "variables key": (
            "/v1/chat/completions",
            "openai",
            {**completions, "variables": {"{}": 1}},
        ),
        "externalChat content": (
            "/api/v1/aiBot/externalChat",
            "aiflowy",
            {"botId": bot.id, "messages": [{"role": "user", "content": "{}"}]},
        ),
    }


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["NUL", "lone surrogate"])
@pytest.mark.parametrize(
    "field",
    [
        "content",
        "chatId",
        "model",
        "customUid",
        "responseChatItemId",
        "variables",
        "variables key",
        "externalChat content",
    ],
)
def test_nul_and_lone_surrogates_are_refused_never_dropped(http, bot, api_key, field, bad):
    path, family, template = chat_fields(bot)[field]
    body = json.loads(json.dumps(template).replace('"{}"', json.dumps(bad)))
    before = Message.objects.count()
    response = http.post(
        path,
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        content=raw_json(body),
    )
    if response.status_code == 200:  # accepted: then stored exactly as sent
        assert Message.objects.count() > before
        assert any(bad in str(m.content) for m in Message.objects.all()), response.text
    else:
        assert_family_error(response, family)
        assert response.status_code == 400


# --- query strings and paths ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        {"offset": "9223372036854775808"},
        {"offset": "-1"},
        {"pageSize": "99999999999999999999999"},
        {"botId": "9" * 5000},
        {"botId": "1\x00"},
    ],
)
def test_history_queries_out_of_range_are_400(http, bot, api_key, params):
    response = http.get(
        "/api/v1/chat/histories",
        headers={"Authorization": f"Bearer {api_key}"},
        params={"botId": bot.id, **params},
    )
    assert_family_error(response, "aiflowy")


@pytest.mark.parametrize("model", ["a%00b", "%ED%A0%80", "%FF", "9" * 5000])
def test_model_paths_that_name_no_bot_are_an_openai_404(http, bot, api_key, model):
    response = http.get(f"/v1/models/{model}", headers={"Authorization": f"Bearer {api_key}"})
    assert_family_error(response, "openai")


def test_a_10000_message_history_is_answered_not_crashed(http, bot, api_key, fake_upstream):
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(9_999)
    ]
    response = http.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": bot.name, "messages": messages},
    )
    assert response.status_code == 200, response.text[:300]
    assert fake_upstream.requests[-1]["messages"][-1] == {"role": "user", "content": "m9998"}


# --- header abuse ---------------------------------------------------------------------------------
def raw_request(base_url: str, request: bytes) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
            if b"\r\n\r\n" in received:
                head, _, rest = received.partition(b"\r\n\r\n")
                length = [
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if length and len(rest) >= length[0]:
                    break
    return received


@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", "Bearer " + "x" * 8_000)],
        [("Authorization", "Bearer a"), ("Authorization", "Bearer b")],
        [("Authorization", "Bearer \u00e9\u00e8")],
        [("Authorization", "Basic dXNlcjpwYXNz")],
        [("Authorization", "Bearer")],
        [("Authorization", "   ")],
    ],
    ids=["8 KB key", "two keys", "latin-1 key", "basic auth", "bearer alone", "blank"],
)
def test_abusive_authorization_headers_are_a_401(live_server_url, headers, transactional_db):
    lines = [f"{name}: {value}" for name, value in headers]
    payload = b'{"botId": 1, "messages": [{"role": "user", "content": "x"}]}'
    request = (
        "POST /api/v1/aiBot/externalChat HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + "".join(line + "\r\n" for line in lines)
        + f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode("latin-1") + payload
    answer = raw_request(live_server_url, request)
    status = int(answer.split(b" ", 2)[1])
    assert status == 401, answer[:500]
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert body["errorCode"] == 401


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/json; charset=no-such-charset",
        "multipart/form-data; boundary=x; charset=no-such-charset",
        # Not "multipart/form-data" without a boundary: Twisted (under Daphne, the test server)
        # answers that itself with a bare 400 before the application sees it; uvicorn does not.
        "\u00ff/\u00ff",
    ],
)
def test_odd_content_types_are_4xx_in_the_family_shape(http, api_key, content_type):
    for path, family in POSTS.values():
        response = http.post(
            path,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Content-Type": content_type.encode("latin-1"),
            },
            content=b'--x\r\nContent-Disposition: form-data; name="id"\r\n\r\n\xff\r\n--x--\r\n',
        )
        assert_family_error(response, family)
