"""pushData, searchTest and createTrainingBill answer exactly as the OpenAPI document says
(FastGPT's envelope), on both their paths: each answer and refusal is checked with
schemathesis against the served document."""

from __future__ import annotations

import pytest
import schemathesis

from config.openapi import schema
from tests.knowledge.conftest import BILL, PUSH, SEARCH, call

pytestmark = pytest.mark.django_db(transaction=True)

DOCUMENT = schemathesis.openapi.from_dict(schema())
OLDER = {
    PUSH: "/api/openapi/kb/pushData",
    SEARCH: "/api/openapi/kb/searchTest",
    BILL: "/api/common/bill/createTrainingBill",
}


def conforms(path: str, response) -> None:
    """Raises (naming the mismatch) unless the answer is documented for `path`."""
    DOCUMENT[path]["POST"].validate_response(response)


@pytest.mark.parametrize("older", [False, True])
def test_the_knowledge_base_api_answers_as_documented(http, kb, api_key, older):
    def path(current: str) -> str:
        return OLDER[current] if older else current

    bill = call(http, path(BILL), api_key, {"name": "import"})
    assert bill.status_code == 200, bill.text
    conforms(path(BILL), bill)
    items = [{"q": "退货政策是什么", "a": "七天无理由退货"}, {"q": "How long is shipping?"}]
    pushed = call(
        http, path(PUSH), api_key, {"kbId": kb.id, "billId": bill.json()["data"], "data": items}
    )
    assert pushed.json()["data"] == {"insertLen": 2}
    conforms(path(PUSH), pushed)
    found = call(http, path(SEARCH), api_key, {"datasetId": kb.id, "text": "退货", "limit": 5})
    assert found.json()["data"][0]["q"] == "退货政策是什么"
    conforms(path(SEARCH), found)

    refused = call(http, path(PUSH), api_key, {"kbId": kb.id, "data": [{"a": "no q"}]})
    assert refused.status_code == 400
    conforms(path(PUSH), refused)
    missing = call(http, path(SEARCH), api_key, {"kbId": 2**40, "text": "x"})
    assert missing.status_code == 404
    conforms(path(SEARCH), missing)
