"""Full-text terms: words without an ASCII letter skip the Snowball stemmer (a speed-up for
items full of numbers), which must not change any term, or stored items and new questions
would stop matching."""

from __future__ import annotations

from knowledge import retrieval
from knowledge.retrieval import search_terms


def test_skipping_the_stemmer_gives_the_stemmers_own_answer():
    stemmer = retrieval._stemmer()
    words = ["900001", "900001条", "3公斤", "²", "ü3", "x", "12a", "running", "colours", "kg"]
    for word in words:
        assert retrieval._stem(word) == stemmer.stemWord(word), word


def test_terms_of_a_catalog_item_keep_numbers_and_stem_words():
    terms = search_terms("Catalog entry 900001: part model X-900001, 3 pieces in stock")
    assert terms == [
        "catalog",
        "entri",
        "900001",
        "part",
        "model",
        "x",
        "900001",
        "3",
        "piec",
        "stock",
    ]
    assert "900001条" in search_terms("产品目录第900001条")
