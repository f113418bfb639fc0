"""Schema-driven fuzzing: schemathesis generates requests from the served OpenAPI document
(valid and invalid ones) and sends them to the live server with a real key. Every answer must
be no 5xx, have a documented status and content type, and match the documented schema; a
bounded number of examples per operation keeps the suite fast. The hang guard is the client's
timeout. Runs on SQLite and on PostgreSQL (CI runs the suite on both)."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.openapi import schema as openapi_schema

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA = schemathesis.openapi.from_dict(openapi_schema())
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = int(os.environ.get("AIFLOWY_FUZZ_EXAMPLES", "10"))


@pytest.fixture
def fuzz_key(make_key):
    """A key with no rate limit."""
    return make_key()


@pytest.fixture
def targets(bot, provider) -> dict[str, object]:
    """What generated bodies name: a real bot (on the fake upstream), knowledge base (with
    the fake's embeddings) and share link, so that answers, streams included, are checked
    against their documented shapes, not only the 404."""
    from knowledge.models import KnowledgeBase
    from shares.models import ShareLink

    kb = KnowledgeBase.objects.create(
        name="fuzzed",
        embedding_provider=provider,
        embedding_model="fake-embedding",
        qa_provider=provider,
    )
    link = ShareLink.objects.create(bot=bot, name="fuzzed")
    return {
        "botId": bot.id,
        "model": bot.name,
        "kbId": kb.id,
        "datasetId": kb.id,
        "shareId": link.share_id,
    }


def naming_the_targets(case, targets: dict[str, object]) -> None:
    if isinstance(case.body, dict):
        for name, value in targets.items():
            if name in case.body:
                case.body[name] = value


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_the_live_server_keeps_its_contract_under_generated_requests(
    case, live_server_url, fuzz_key, targets
):
    naming_the_targets(case, targets)
    case.call_and_validate(
        base_url=live_server_url,
        headers={"Authorization": f"Bearer {fuzz_key}"},
        checks=CHECKS,
        timeout=30,
    )
