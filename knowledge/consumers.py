"""FastGPT's knowledge-base endpoints, as Channels consumers ahead of Django's middleware:
each parses, calls one service and answers in FastGPT's envelope
(`aiflowy.wire.fastgpt_dataset`); errors go through the bases' one error path."""

from __future__ import annotations

from channels.db import database_sync_to_async

from aiflowy.validation import json_object, validated
from aiflowy.wire import fastgpt_dataset
from apikeys.auth import ApiKeyConsumer
from apikeys.selectors import ApiKeyPrincipal
from knowledge.schemas import CreateBillRequest, PushDataRequest, SearchTestRequest
from knowledge.services import push_data, search_test, training_bill_create


class PushDataConsumer(ApiKeyConsumer):
    """`POST /api/core/dataset/data/pushData` → `{"insertLen": N}`."""

    wire = fastgpt_dataset

    async def handle(self, api_key: ApiKeyPrincipal, body: bytes) -> None:
        request = validated(PushDataRequest, json_object(body))
        inserted = await push_data(api_key, request)
        await self.send_json(fastgpt_dataset.push_data_body(inserted))


class SearchTestConsumer(ApiKeyConsumer):
    """`POST /api/core/dataset/searchTest` → `[{id, q, a, source, score}]`, best first."""

    wire = fastgpt_dataset

    async def handle(self, api_key: ApiKeyPrincipal, body: bytes) -> None:
        request = validated(SearchTestRequest, json_object(body))
        await self.send_json(fastgpt_dataset.search_test_body(await search_test(api_key, request)))


class CreateTrainingBillConsumer(ApiKeyConsumer):
    """`POST /api/support/wallet/bill/createTrainingBill` → the new bill's id. The body is
    optional (`{name?}`)."""

    wire = fastgpt_dataset

    async def handle(self, api_key: ApiKeyPrincipal, body: bytes) -> None:
        request = validated(CreateBillRequest, json_object(body) if body.strip() else {})
        bill_id = await database_sync_to_async(training_bill_create)(
            api_key_id=api_key.id, name=request.name
        )
        await self.send_json(fastgpt_dataset.training_bill_body(bill_id))
