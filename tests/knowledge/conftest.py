"""Knowledge-base fixtures: knowledge bases on the fake upstream (its deterministic
embeddings, rerank and QA answers), the bilingual ranking corpus, and FastGPT's envelope."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from knowledge.models import KnowledgeBase

CORPUS = json.loads((Path(__file__).parent / "data" / "ranking_corpus.json").read_text())

PUSH = "/api/core/dataset/data/pushData"
SEARCH = "/api/core/dataset/searchTest"
BILL = "/api/support/wallet/bill/createTrainingBill"
MODES = ("embedding", "fullTextRecall", "mixedRecall")


@pytest.fixture
def make_kb(provider, transactional_db) -> Callable[..., KnowledgeBase]:
    counter = iter(range(1, 10_000))

    def make(*, embeddings: bool = True, **fields) -> KnowledgeBase:
        fields.setdefault("name", f"kb-{next(counter)}")
        if embeddings:
            fields.setdefault("embedding_provider", provider)
            fields.setdefault("embedding_model", "fake-embedding")
        fields.setdefault("qa_provider", provider)
        return KnowledgeBase.objects.create(**fields)

    return make


@pytest.fixture
def kb(make_kb) -> KnowledgeBase:
    return make_kb(name="handbook")


def call(http: httpx.Client, path: str, api_key: str, body: Any) -> httpx.Response:
    return http.post(path, headers={"Authorization": f"Bearer {api_key}"}, json=body)


def ok_data(response: httpx.Response) -> Any:
    """FastGPT's success envelope, and its `data`."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"code", "statusText", "message", "data"}, body
    assert (body["code"], body["statusText"], body["message"]) == (200, "", "")
    return body["data"]


def error_of(response: httpx.Response, status: int, param: str | None = None) -> dict:
    """FastGPT's error envelope: `code` is the HTTP status, `message` names the field."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status and body["statusText"] and body["message"], body
    assert "data" not in body
    assert body.get("param") == param, body
    if param is not None:
        assert f"'{param}'" in body["message"] or param in body["message"], body
    return body


def corpus_items() -> list[dict]:
    return [{"q": item["q"], "a": item["a"]} for item in CORPUS["items"]]


def filler_items(count: int) -> list[dict]:
    """Catalog entries, in both languages, that no question is about."""
    return [
        {
            "q": f"产品目录第{i}条：型号X-{i}的零件",
            "a": f"颜色为蓝色，重量{i % 7 + 1}公斤，库存{i}件。",
        }
        if i % 2
        else {
            "q": f"Catalog entry {i}: part model X-{i}",
            "a": f"Colour blue, weight {i % 7 + 1} kg, {i} pieces in stock.",
        }
        for i in range(count)
    ]


@pytest.fixture(autouse=True, scope="session")
def _qa_training_runs(job_worker) -> None:
    """QA training is a durable job: on PostgreSQL a worker must be running to train."""
