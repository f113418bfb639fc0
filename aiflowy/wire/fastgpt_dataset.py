"""FastGPT's OpenAPI envelope, used by its knowledge-base endpoints (pushData, searchTest,
createTrainingBill): `{"code": 200, "statusText": "", "message": "", "data": …}`; an error is
`{"code": <HTTP status>, "statusText": <machine code>, "message": <text>}` sent with that same
HTTP status (FastGPT's clients read either)."""

from __future__ import annotations

from typing import Any

from aiflowy.errors import ApiError


def ok_body(data: Any) -> dict[str, Any]:
    return {"code": 200, "statusText": "", "message": "", "data": data}


def error_body(error: ApiError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": error.status,
        "statusText": error.code,
        "message": error.message,
    }
    if error.param:
        body["param"] = error.param
    return body
