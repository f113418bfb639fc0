"""FastGPT's OpenAPI envelope, used by its knowledge-base endpoints (pushData, searchTest,
createTrainingBill): `{"code": 200, "statusText": "", "message": "", "data": …}`; an error is
`{"code": <HTTP status>, "statusText": <machine code>, "message": <text>}` sent with that same
HTTP status (FastGPT's clients read either).

Each body function returns a TypedDict: the OpenAPI document (`knowledge/openapi.py`) is
generated from these return types, so they must say exactly what is sent."""

from __future__ import annotations

from typing import Literal, NotRequired

from typing_extensions import TypedDict

from aiflowy.errors import ApiError


class DatasetError(TypedDict):
    code: int
    statusText: str
    message: str
    param: NotRequired[str]


class PushDataResult(TypedDict):
    insertLen: int


class SearchTestItem(TypedDict):
    """One quote, best first: the item's id, its question/answer and the score (0…1 for
    similarity; a rank fusion score in mixed recall)."""

    id: str
    q: str
    a: str
    source: str
    score: float


class PushDataBody(TypedDict):
    code: Literal[200]
    statusText: Literal[""]
    message: Literal[""]
    data: PushDataResult


class SearchTestBody(TypedDict):
    code: Literal[200]
    statusText: Literal[""]
    message: Literal[""]
    data: list[SearchTestItem]


class TrainingBillBody(TypedDict):
    """`data` is the new bill's id, to pass as pushData's `billId`."""

    code: Literal[200]
    statusText: Literal[""]
    message: Literal[""]
    data: str


def push_data_body(inserted: int) -> PushDataBody:
    return {"code": 200, "statusText": "", "message": "", "data": {"insertLen": inserted}}


def search_test_body(quotes: list[SearchTestItem]) -> SearchTestBody:
    return {"code": 200, "statusText": "", "message": "", "data": quotes}


def training_bill_body(bill_id: str) -> TrainingBillBody:
    return {"code": 200, "statusText": "", "message": "", "data": bill_id}


def error_body(error: ApiError) -> DatasetError:
    body: DatasetError = {
        "code": error.status,
        "statusText": error.code,
        "message": error.message,
    }
    if error.param:
        body["param"] = error.param
    return body
