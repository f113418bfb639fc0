"""QA mode: texts are accepted at once, the job turns them into Q/A items with FastGPT's
prompt, failures show in the bill, and a retry never inserts a pair twice."""

from __future__ import annotations

from knowledge.models import DataItem, QaText, TrainingBill
from knowledge.services import QA_PROMPT, qa_pairs, run_qa_training
from tests.conftest import wait_until
from tests.knowledge.conftest import BILL, PUSH, call, ok_data

TEXT = "年假按工龄计算，最少五天。Overtime on weekends is paid twice."


def _settled(bill_id: str) -> TrainingBill:
    return wait_until(
        lambda: TrainingBill.objects.filter(pk=bill_id).exclude(status="running").first(),
        timeout=20,
    )


def test_qa_texts_become_question_answer_items_through_the_llm(http, api_key, kb, fake_upstream):
    bill_id = ok_data(call(http, BILL, api_key, {"name": "qa"}))
    body = {
        "kbId": kb.id,
        "mode": "qa",
        "prompt": "公司制度",
        "billId": bill_id,
        "data": [{"q": TEXT}],
    }
    assert ok_data(call(http, PUSH, api_key, body)) == {"insertLen": 1}
    bill = _settled(bill_id)
    assert (bill.status, bill.mode, bill.items_in, bill.failed) == ("done", "qa", 1, 0)
    pairs = list(DataItem.objects.filter(knowledge_base=kb).order_by("id").values_list("q", "a"))
    assert [a for _q, a in pairs] == [
        "年假按工龄计算，最少五天。",
        "Overtime on weekends is paid twice.",
    ]
    assert bill.inserted == 2 and bill.tokens > 0
    prompt = next(
        body["messages"][-1]["content"]
        for body in fake_upstream.requests
        # The fake upstream keeps the whole session's requests (some with null content).
        if body and "messages" in body and TEXT in str(body["messages"][-1].get("content"))
    )
    assert "公司制度" in prompt and "Q1:" in prompt and f'"""{TEXT}"""' in prompt


def test_a_failed_text_is_visible_in_the_bill_and_a_retry_inserts_each_pair_once(
    http, api_key, make_kb
):
    kb = make_kb(qa_model="fail500-model")
    body = {
        "kbId": kb.id,
        "mode": "qa",
        "data": [{"q": TEXT}, {"q": "Second text. It has two sentences."}],
    }
    assert ok_data(call(http, PUSH, api_key, body)) == {"insertLen": 2}
    bill = _settled(TrainingBill.objects.get().pk)
    assert (bill.status, bill.failed, bill.inserted) == ("failed", 2, 0)
    assert "HTTP 500" in bill.errors[0]["error"]
    assert set(QaText.objects.values_list("status", flat=True)) == {"failed"}

    kb.qa_model = "fake-model"
    kb.save()
    run_qa_training(str(bill.pk))
    run_qa_training(str(bill.pk))  # a repeated job finds nothing left to do
    bill.refresh_from_db()
    assert (bill.status, bill.failed, bill.inserted) == ("done", 0, 4)
    assert DataItem.objects.filter(knowledge_base=kb).count() == 4

    # Even a text run again from scratch inserts no pair twice.
    QaText.objects.update(status="pending")
    run_qa_training(str(bill.pk))
    assert DataItem.objects.filter(knowledge_base=kb).count() == 4


def test_qa_pairs_parses_numbered_pairs_in_either_colon():
    answer = (
        "Q1: 什么是年假？\nA1： 带薪休假。\n\nQ2: Why?\nA2: Because\nit is law.\nQ3: empty\nA3:"
    )
    assert qa_pairs(answer) == [("什么是年假？", "带薪休假。"), ("Why?", "Because\nit is law.")]
    assert "{theme}" in QA_PROMPT and "{text}" in QA_PROMPT
