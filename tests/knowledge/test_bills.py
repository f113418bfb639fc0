"""createTrainingBill on both paths, with and without a body."""

from __future__ import annotations

import uuid

from knowledge.models import TrainingBill
from tests.knowledge.conftest import call, error_of, ok_data


def test_it_creates_a_bill_on_both_paths(http, api_key):
    first = ok_data(
        call(http, "/api/support/wallet/bill/createTrainingBill", api_key, {"name": "docs"})
    )
    second = ok_data(
        http.post("/api/common/bill/createTrainingBill", headers={"Authorization": api_key})
    )
    assert uuid.UUID(first) and uuid.UUID(second) and first != second
    assert TrainingBill.objects.get(pk=first).name == "docs"
    assert TrainingBill.objects.get(pk=second).api_key is not None


def test_a_bad_name_is_400_naming_it(http, api_key):
    error_of(call(http, "/api/common/bill/createTrainingBill", api_key, {"name": 5}), 400, "name")
    error_of(
        http.get("/api/common/bill/createTrainingBill", headers={"Authorization": api_key}), 405
    )
