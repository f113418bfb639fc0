"""The knowledge-base endpoints in the OpenAPI document (see `aiflowy.openapi`): FastGPT's
dataset API, each on its current path and its older one, answering in FastGPT's envelope
(`aiflowy.wire.fastgpt_dataset`)."""

from __future__ import annotations

from aiflowy.openapi import Operation, return_type
from aiflowy.wire import fastgpt_dataset
from knowledge.schemas import CreateBillRequest, PushDataRequest, SearchTestRequest

ERROR = return_type(fastgpt_dataset.error_body)
TAG = "Knowledge bases (FastGPT-compatible)"

OPERATIONS = [
    Operation(
        method="post",
        paths=("/api/core/dataset/data/pushData", "/api/openapi/kb/pushData"),
        summary="Add question/answer items to a knowledge base",
        tag=TAG,
        description="`kbId` (or `datasetId`) names a knowledge base the key may use. "
        "`mode: index` stores and indexes the items now; `mode: qa` queues each `q` as a "
        "text the bot's model splits into question/answer items. `data.insertLen` counts "
        "the items inserted (texts queued).",
        body=PushDataRequest,
        responses={200: return_type(fastgpt_dataset.push_data_body)},
        error=ERROR,
        error_statuses=(400, 401, 403, 404, 429, 500, 502, 503, 504),
    ),
    Operation(
        method="post",
        paths=("/api/core/dataset/searchTest", "/api/openapi/kb/searchTest"),
        summary="Search a knowledge base",
        tag=TAG,
        description="The items nearest to `text`, best first (full-text, embedding or both).",
        body=SearchTestRequest,
        responses={200: return_type(fastgpt_dataset.search_test_body)},
        error=ERROR,
        error_statuses=(400, 401, 403, 404, 429, 500, 502, 503, 504),
    ),
    Operation(
        method="post",
        paths=(
            "/api/support/wallet/bill/createTrainingBill",
            "/api/common/bill/createTrainingBill",
        ),
        summary="Open a training bill (its id goes with pushData's `billId`)",
        tag=TAG,
        description="The body is optional.",
        body=CreateBillRequest,
        body_required=False,
        responses={200: return_type(fastgpt_dataset.training_bill_body)},
        error=ERROR,
        error_statuses=(400, 401, 429, 500, 503),
    ),
]
