"""pushData: index mode inserts each item once, skips what it must, and fails whole."""

from __future__ import annotations

import pytest

from knowledge.models import DataItem, TrainingBill
from tests.knowledge.conftest import PUSH, call, error_of, ok_data


def test_it_inserts_items_and_answers_insert_len_in_fastgpt_envelope(http, api_key, kb):
    data = ok_data(
        call(
            http,
            PUSH,
            api_key,
            {
                "kbId": kb.id,
                "mode": "index",
                "data": [
                    {"q": "What is aiflowy?", "a": "A platform for bots."},
                    {"q": "谁维护这个项目？", "a": "平台团队。"},
                ],
            },
        )
    )
    assert data == {"insertLen": 2}
    item = DataItem.objects.get(q="What is aiflowy?")
    assert item.a == "A platform for bots."
    assert item.embedding is not None and len(item.embedding) == 256 * 4
    assert item.collection.kind == "api"
    assert item.added_by_key is not None


def test_the_older_path_and_dataset_id_work_too(http, api_key, kb):
    response = call(
        http, "/api/openapi/kb/pushData", api_key, {"datasetId": str(kb.id), "data": [{"q": "one"}]}
    )
    assert ok_data(response) == {"insertLen": 1}


def test_empty_duplicate_and_over_long_items_are_skipped_and_resending_is_safe(http, api_key, kb):
    items = [
        {"q": "alpha", "a": "1"},
        {"q": "alpha", "a": "1"},
        {"q": "  "},
        {"q": "x" * 20_000},
        {"q": "beta"},
    ]
    assert ok_data(call(http, PUSH, api_key, {"kbId": kb.id, "data": items})) == {"insertLen": 2}
    assert ok_data(call(http, PUSH, api_key, {"kbId": kb.id, "data": items})) == {"insertLen": 0}
    assert DataItem.objects.filter(knowledge_base=kb).count() == 2


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"data": [{"q": "a"}]}, 400, "kbId"),
        ({"kbId": 999_999, "data": [{"q": "a"}]}, 404, "kbId"),
        ({"kbId": "KB", "data": [{"q": "a"}]}, 400, "kbId"),
        ({"kbId": "{kb}", "data": "not a list"}, 400, "data"),
        ({"kbId": "{kb}"}, 400, "data"),
        ({"kbId": "{kb}", "data": [{"q": "a"}, {"a": "no q"}]}, 400, "data[1].q"),
        ({"kbId": "{kb}", "data": [{"q": 5}]}, 400, "data[0].q"),
        ({"kbId": "{kb}", "mode": "train", "data": [{"q": "a"}]}, 400, "mode"),
        ({"kbId": "{kb}", "data": [{"q": "a"}] * 1001}, 400, "data"),
        ({"kbId": "{kb}", "collectionId": 999_999, "data": [{"q": "a"}]}, 404, "collectionId"),
        (
            {
                "kbId": "{kb}",
                "billId": "00000000-0000-0000-0000-000000000000",
                "data": [{"q": "a"}],
            },
            404,
            "billId",
        ),
        ({"kbId": "{kb}", "billId": "nope", "data": [{"q": "a"}]}, 400, "billId"),
    ],
)
def test_bad_input_is_an_error_naming_the_field_and_inserts_nothing(
    http, api_key, kb, body, status, param
):
    body = {key: (kb.id if value == "{kb}" else value) for key, value in body.items()}
    error_of(call(http, PUSH, api_key, body), status, param)
    assert not DataItem.objects.exists()


def test_a_body_over_the_limit_and_invalid_json_are_400s(http, api_key, kb):
    response = http.post(
        PUSH, headers={"Authorization": api_key}, content=b"{" + b" " * 1_100_000 + b"}"
    )
    assert error_of(response, 400)["statusText"] == "body_too_large"
    assert (
        error_of(http.post(PUSH, headers={"Authorization": api_key}, content=b"{nope"), 400)[
            "statusText"
        ]
        == "invalid_json"
    )


def test_a_missing_or_wrong_key_is_401_in_the_envelope(http, kb):
    assert (
        error_of(http.post(PUSH, json={"kbId": kb.id, "data": []}), 401)["statusText"]
        == "missing_api_key"
    )
    assert error_of(call(http, PUSH, "sk-wrong", {"kbId": kb.id, "data": []}), 401)


def test_an_embedding_failure_is_502_and_nothing_is_inserted(http, api_key, make_kb):
    broken = make_kb(embedding_model="fail500-embedding")
    response = call(http, PUSH, api_key, {"kbId": broken.id, "data": [{"q": "one"}, {"q": "two"}]})
    assert error_of(response, 502)["statusText"] == "upstream_error"
    assert "secret" not in response.text
    assert not DataItem.objects.exists()


def test_a_bill_counts_items_in_inserted_skipped_and_tokens(http, api_key, kb):
    bill_id = ok_data(
        call(http, "/api/common/bill/createTrainingBill", api_key, {"name": "import"})
    )
    items = [{"q": "alpha"}, {"q": "alpha"}, {"q": "beta"}]
    ok_data(call(http, PUSH, api_key, {"kbId": kb.id, "billId": bill_id, "data": items}))
    ok_data(call(http, PUSH, api_key, {"kbId": kb.id, "billId": bill_id, "data": [{"q": "gamma"}]}))
    bill = TrainingBill.objects.get(pk=bill_id)
    assert (bill.name, bill.knowledge_base, bill.mode) == ("import", kb, "index")
    assert (bill.items_in, bill.inserted, bill.skipped) == (4, 3, 1)
    assert bill.tokens > 0
