"""Request validation of the workflow endpoints through Daphne: every wrong field is a 400 in
AIFlowy's shape naming the field, whatever form the body takes (JSON, urlencoded or multipart
form, query string), and hostile input is a 400, never a 500.

Bodies with NUL or a lone surrogate are sent as raw bytes with JSON escapes (`\\u0000`,
`\\ud800`), as a hostile client would."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator

from config.asgi import application
from tests.conftest import aiflowy_bad_request, post_raw
from tests.workflows.conftest import data_file

BASE = "/api/v1/workflow/external"
RUN = f"{BASE}/run"
PARAMS = f"{BASE}/getRunningParams"
STATUS = f"{BASE}/runStatus"

NUL = "a\x00b"
SURROGATE = "a\ud800b"
HUGE_DIGITS = "9" * 5000
BOUNDARY = "----aiflowy-test-boundary"


def multipart(*parts: bytes) -> bytes:
    return b"".join(b"--" + BOUNDARY.encode() + b"\r\n" + part for part in parts) + (
        b"--" + BOUNDARY.encode() + b"--\r\n"
    )


def field(name: str, value: bytes, headers: bytes = b"") -> bytes:
    return (
        b'Content-Disposition: form-data; name="' + name.encode() + b'"\r\n'
        + headers + b"\r\n" + value + b"\r\n"
    )  # fmt: skip


def file_part(name: str, filename: str, content: bytes) -> bytes:
    return (
        b'Content-Disposition: form-data; name="' + name.encode() + b'"; filename="'
        + filename.encode() + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + content + b"\r\n"
    )  # fmt: skip


def multipart_type(**params: str) -> str:
    extra = "".join(f"; {key}={value}" for key, value in params.items())
    return f"multipart/form-data; boundary={BOUNDARY}{extra}"


@pytest.fixture
def ip_workflow(make_workflow):
    return make_workflow(data_file("aiflowy_ip_lookup.json"), title="IP")


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": [value]}
    return value


# --- run ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"variables": {}}, "id"),
        ({"id": "", "variables": {}}, "id"),
        ({"id": "12x"}, "id"),
        ({"id": 0}, "id"),
        ({"id": 1.0}, "id"),
        ({"id": False}, "id"),
        ({"id": HUGE_DIGITS}, "id"),
        ({"id": NUL}, "id"),
        ({"id": 1, "variables": "{}"}, "variables"),
        ({"id": 1, "variables": [{"a": 1}]}, "variables"),
        ({"id": 1, "stream": "false"}, "stream"),
        ({"id": 1, "async": 1}, "async"),
        ({"id": 1, "stream": True, "async": True}, "async"),
        ({"id": 1, "variables": {"text": NUL}}, "variables"),
        ({"id": 1, "variables": {"text": SURROGATE}}, "variables"),
        ({"id": 1, "variables": {"items": ["ok", {SURROGATE: 1}]}}, "variables"),
        ({"id": 1, "variables": nested(200, NUL)}, "variables"),
    ],
)
def test_run_names_the_field_at_fault(http, api_key, body, param):
    aiflowy_bad_request(post_raw(http, RUN, api_key, body), param)


def test_run_says_what_is_wrong_in_one_sentence(http, api_key):
    body = aiflowy_bad_request(
        post_raw(http, RUN, api_key, {"id": 1, "stream": True, "async": True}), "async"
    )
    assert body["message"] == "'async' cannot be true when 'stream' is true."
    body = aiflowy_bad_request(
        post_raw(http, RUN, api_key, {"id": 1, "variables": [1]}), "variables"
    )
    assert body["message"] == "'variables' must be an object."


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": ' + HUGE_DIGITS.encode() + b"}",
        b'{"id": 1, "variables": ' + b'{"k": ' * 10_000 + b"1" + b"}" * 10_001,
        b'{"id": 1, "variables": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    ],
    ids=["5000-digit number", "objects 10000 deep", "lists 10000 deep"],
)
def test_run_refuses_hostile_json_with_a_400(http, api_key, raw):
    response = post_raw(http, RUN, api_key, raw)
    assert response.status_code == 400
    assert response.json()["errorCode"] == 400


# --- getRunningParams ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"params": {"id": HUGE_DIGITS}}, "id"),
        ({"params": {"id": "-1"}}, "id"),
        ({"params": {"id": ""}}, "id"),
        ({"data": {"id": HUGE_DIGITS}}, "id"),
        ({"data": {"id": NUL}}, "id"),
        ({"files": {"id": (None, HUGE_DIGITS)}}, "id"),
        ({"files": {"other": (None, "1")}}, "id"),
    ],
)
def test_running_params_name_the_id_in_every_form(http, api_key, options, param):
    response = http.post(PARAMS, headers={"Authorization": api_key}, **options)
    aiflowy_bad_request(response, param)


def test_running_params_refuse_json_nested_10000_deep(http, api_key):
    raw = b'{"id": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    response = post_raw(http, PARAMS, api_key, raw)
    assert response.status_code == 400
    assert response.json()["errorCode"] == 400


def test_a_multipart_form_with_a_file_part_reads_the_fields_only(http, api_key, ip_workflow):
    body = multipart(
        file_part("upload", "notes.txt", b"\x00\xff" * 10_000),
        field("id", str(ip_workflow.id).encode()),
        field("id", b"not the first"),
    )
    response = post_raw(http, PARAMS, api_key, body, multipart_type())
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "IP"


def test_a_multipart_form_in_a_declared_charset_is_read(http, api_key, ip_workflow):
    body = multipart(
        field("note", "café".encode("latin-1")), field("id", str(ip_workflow.id).encode())
    )
    response = post_raw(http, PARAMS, api_key, body, multipart_type(charset="iso-8859-1"))
    assert response.status_code == 200, response.text


def in_process(api_key: str, url: str, body: bytes, content_type: str) -> tuple[int, Any]:
    """POST through the ASGI application itself. Daphne answers some malformed multipart
    bodies with its own 400 before the application sees them (Twisted parses form bodies);
    uvicorn, the production server, hands every body over as it came."""

    async def call() -> dict:
        communicator = HttpCommunicator(
            application,
            "POST",
            url,
            body=body,
            headers=[
                (b"authorization", api_key.encode()),
                (b"content-type", content_type.encode("latin-1")),
            ],
        )
        return await communicator.get_response(timeout=10)

    response = async_to_sync(call)()
    return response["status"], json.loads(response["body"])


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (multipart(field("id", b"1")), multipart_type(charset="no-such-charset")),
        (multipart(field("id", b"1")), multipart_type(charset="base64")),  # not a text encoding
        (multipart(field("id", b"1")), "multipart/form-data"),  # no boundary
        (multipart(field("id", b"1")), "multipart/form-data; boundary=\x7f"),
        (multipart(field("id", b"1")), "multipart/form-data; boundary=é"),
        (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data", multipart_type()),
        (multipart(*[field(f"f{i}", b"x") for i in range(1100)]), multipart_type()),
        (
            multipart(field("id", b"!!!", b"Content-Transfer-Encoding: base64\r\n")),
            multipart_type(),
        ),
        (b"\x00" * 1000, multipart_type()),
    ],
    ids=[
        "unknown charset",
        "binary codec",
        "no boundary",
        "bad boundary",
        "non-ascii boundary",
        "truncated",
        "too many fields",
        "bad base64",
        "garbage",
    ],
)
def test_an_unreadable_multipart_form_is_a_400(api_key, body, content_type):
    status, answer = in_process(api_key, PARAMS, body, content_type)
    assert status == 400, answer
    assert set(answer) <= {"errorCode", "message", "param"}, answer
    assert answer["errorCode"] == 400


# --- runStatus -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"params": {}}, "runId"),
        ({"params": {"runId": NUL}}, "runId"),
        ({"params": {"runId": HUGE_DIGITS}}, "runId"),
        ({"data": {"runId": "not-a-uuid"}}, "runId"),
        ({"json": {"runId": 12345}}, "runId"),
        ({"json": {"runId": ["a"]}}, "runId"),
    ],
)
def test_run_status_names_the_run_id(http, api_key, options, param):
    response = http.post(STATUS, headers={"Authorization": api_key}, **options)
    aiflowy_bad_request(response, param)


def test_run_status_with_a_surrogate_run_id_is_a_400(http, api_key):
    aiflowy_bad_request(post_raw(http, STATUS, api_key, {"runId": SURROGATE}), "runId")
