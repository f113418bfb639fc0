"""The embedded vector index: exact below `EXACT_BELOW` vectors, binary-code candidates
re-scored exactly from it on. The approximate path must find what exact search finds on the
test corpus at a size where it is used, and see new items after a change."""

from __future__ import annotations

import numpy as np
import pytest

from aiflowy.testing.fake_knowledge import embedding_matrix
from knowledge import retrieval
from knowledge.retrieval import EXACT_BELOW, VectorMatrix
from knowledge.selectors import knowledge_base_config_get
from knowledge.services import NewItem, data_items_insert_now, knowledge_search, run_now
from tests.knowledge.conftest import CORPUS, corpus_items, filler_items


def _texts(items: list[dict]) -> list[str]:
    return [f"{item['q']}\n{item['a']}" for item in items]  # what pushData embeds


@pytest.fixture(scope="module")
def large_index() -> tuple[VectorMatrix, VectorMatrix, list[str]]:
    """The ranking corpus among catalog entries, `EXACT_BELOW` vectors in all: the approximate
    index and the exact one over the same vectors."""
    items = corpus_items() + filler_items(EXACT_BELOW - len(CORPUS["items"]))
    matrix = embedding_matrix(_texts(items))
    ids = np.arange(1, len(items) + 1, dtype=np.int64)
    return VectorMatrix.of(ids, matrix), VectorMatrix(ids, matrix), [i["q"] for i in items]


def test_the_approximate_path_is_used_from_exact_below_on_and_not_under_it(large_index):
    approximate, _exact, _qs = large_index
    assert approximate.codes is not None
    small = VectorMatrix.of(approximate.item_ids[:-1], approximate.matrix[:-1])
    assert small.codes is None


def test_approximate_search_puts_first_what_exact_search_puts_first(large_index):
    approximate, exact, questions_of = large_index
    expected_q = {item["key"]: item["q"] for item in CORPUS["items"]}
    vectors = embedding_matrix([question["text"] for question in CORPUS["questions"]])
    right = 0
    for question, vector in zip(CORPUS["questions"], vectors, strict=True):
        found = approximate.search(vector, 12)
        wanted = exact.search(vector, 12)
        assert found[0] == wanted[0], question  # same item, same (exact) score
        right += questions_of[found[0].item_id - 1] == expected_q[question["expect"]]
        # The re-score is exact: the scores are cosines, best first.
        scores = [hit.score for hit in found]
        assert scores == sorted(scores, reverse=True)
    # Among 20,000 near-identical catalog entries the fake embeddings still rank most
    # handbook items first (the benchmark counts the rest as "wrong", in both paths).
    assert right >= len(CORPUS["questions"]) - 3


def test_candidates_are_the_nearest_codes_and_as_many_as_asked(large_index):
    approximate, _exact, _qs = large_index
    codes = approximate.codes
    query = approximate.matrix[123]
    positions = codes.nearest(query, 500)
    assert len(positions) == 500 and len(set(positions.tolist())) == 500
    assert 123 in positions  # its own code is at distance 0


def test_approximate_index_is_rebuilt_after_a_change(provider, make_kb, monkeypatch):
    """With the approximate path forced on for a small knowledge base, an item pushed after a
    search (a new `data_version`) is found by the next search: codes are not stale."""
    monkeypatch.setattr(retrieval, "EXACT_BELOW", 10)
    monkeypatch.setattr(retrieval, "APPROXIMATE_CANDIDATES", 8)
    model = make_kb(name="approximate")
    kb = knowledge_base_config_get(model.pk)
    data_items_insert_now(kb, [NewItem(i["q"], i["a"]) for i in filler_items(40)])
    first = run_now(knowledge_search, kb, "Catalog entry 4: part model X-4", mode="embedding")
    assert first.quotes[0].q == "Catalog entry 4: part model X-4"

    data_items_insert_now(kb, [NewItem("Penguins nest on Antarctic ice", "In colonies.")])
    kb = knowledge_base_config_get(model.pk)
    second = run_now(knowledge_search, kb, "Penguins nest on Antarctic ice", mode="embedding")
    assert second.quotes[0].q == "Penguins nest on Antarctic ice"
