"""searchTest: the right passage first for paraphrased Chinese and English questions, in every
mode; limit, minimum score, mode errors, rerank."""

from __future__ import annotations

import pytest

from knowledge.models import DataItem
from tests.knowledge.conftest import (
    CORPUS,
    MODES,
    PUSH,
    SEARCH,
    call,
    corpus_items,
    error_of,
    filler_items,
    ok_data,
)


@pytest.fixture
def handbook(http, api_key, kb):
    ok_data(call(http, PUSH, api_key, {"kbId": kb.id, "data": corpus_items() + filler_items(200)}))
    return kb


@pytest.mark.parametrize("mode", MODES)
def test_every_paraphrased_question_finds_its_item_first(http, api_key, handbook, mode):
    expected_q = {item["key"]: item["q"] for item in CORPUS["items"]}
    for question in CORPUS["questions"]:
        results = ok_data(
            call(
                http,
                SEARCH,
                api_key,
                {"kbId": handbook.id, "text": question["text"], "searchMode": mode},
            )
        )
        assert results, question
        assert results[0]["q"] == expected_q[question["expect"]], (mode, question, results[:3])


def test_results_have_fastgpt_fields_scores_in_0_1_best_first_and_12_by_default(
    http, api_key, handbook
):
    results = ok_data(
        call(http, SEARCH, api_key, {"datasetId": handbook.id, "text": "Catalog entry part model"})
    )
    assert len(results) == 12
    assert all(set(result) == {"id", "q", "a", "source", "score"} for result in results)
    scores = [result["score"] for result in results]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert DataItem.objects.filter(pk=int(results[0]["id"])).exists()


def test_limit_and_similarity_cut_the_results(http, api_key, handbook):
    body = {"kbId": handbook.id, "text": "How do I book a meeting room?", "searchMode": "embedding"}
    assert len(ok_data(call(http, SEARCH, api_key, {**body, "limit": 3}))) == 3
    loose = ok_data(call(http, SEARCH, api_key, body))
    cut = (loose[0]["score"] + loose[1]["score"]) / 2
    strict = ok_data(call(http, SEARCH, api_key, {**body, "similarity": cut}))
    assert [result["q"] for result in strict] == ["How do I book a meeting room?"]


def test_the_older_path_answers_the_same(http, api_key, handbook):
    body = {"kbId": handbook.id, "text": "忘记了密码怎么办？", "searchMode": "fullTextRecall"}
    assert ok_data(call(http, "/api/openapi/kb/searchTest", api_key, body)) == ok_data(
        call(http, SEARCH, api_key, body)
    )


def test_a_knowledge_base_without_embeddings_searches_full_text_and_refuses_vector_modes(
    http, api_key, make_kb
):
    plain = make_kb(embeddings=False)
    ok_data(call(http, PUSH, api_key, {"kbId": plain.id, "data": corpus_items()}))
    results = ok_data(call(http, SEARCH, api_key, {"kbId": plain.id, "text": "忘记了密码怎么办？"}))
    assert results[0]["q"] == "如何重置电脑登录密码？"
    error_of(
        call(http, SEARCH, api_key, {"kbId": plain.id, "text": "x", "searchMode": "embedding"}),
        400,
        "searchMode",
    )


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"text": "x"}, 400, "kbId"),
        ({"kbId": 999_999, "text": "x"}, 404, "kbId"),
        ({"kbId": "{kb}"}, 400, "text"),
        ({"kbId": "{kb}", "text": ""}, 400, "text"),
        ({"kbId": "{kb}", "text": "x", "limit": 0}, 400, "limit"),
        ({"kbId": "{kb}", "text": "x", "similarity": 2}, 400, "similarity"),
        ({"kbId": "{kb}", "text": "x", "searchMode": "semantic"}, 400, "searchMode"),
    ],
)
def test_bad_input_is_an_error_naming_the_field(http, api_key, kb, body, status, param):
    body = {key: (kb.id if value == "{kb}" else value) for key, value in body.items()}
    error_of(call(http, SEARCH, api_key, body), status, param)


def test_rerank_reorders_by_the_providers_scores(http, api_key, make_kb, provider, fake_upstream):
    reranked = make_kb(rerank_provider=provider, rerank_model="fake-rerank")
    ok_data(call(http, PUSH, api_key, {"kbId": reranked.id, "data": corpus_items()}))
    before = len(fake_upstream.requests)
    results = ok_data(
        call(
            http,
            SEARCH,
            api_key,
            {"kbId": reranked.id, "text": "会议室预订", "usingReRank": True, "limit": 3},
        )
    )
    assert any(body.get("model") == "fake-rerank" for body in fake_upstream.requests[before:])
    assert results[0]["q"] == "会议室怎么预订？"
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
