"""Where item vectors are stored and searched: one small interface, two backends.

- `EmbeddedVectors` (the default, and the only one on SQLite): vectors live in
  `DataItem.embedding` as float32 bytes; a search scores the knowledge base's matrix, held
  per process and rebuilt when the knowledge base's `data_version` changes
  (`knowledge.selectors`): exactly below `retrieval.EXACT_BELOW` vectors, from there on
  binary-code candidates re-scored exactly. Numbers in docs/knowledge.md.
- `PgVectors`: PostgreSQL with the `vector` extension (pgvector). Vectors are also written to
  `knowledge_item_vector` (one table serves knowledge bases of different embedding models:
  the column is cast to the knowledge base's dimension) and pgvector computes the exact
  cosine distances: of every vector of the knowledge base below
  `AIFLOWY_KNOWLEDGE_PG_EXACT_BELOW` (a scan), of
  the candidates that the process's binary codes (`retrieval.BinaryCodes`, 64 bytes a vector
  instead of 1 KB) pick from there on.

  No HNSW index: measured on the benchmark's corpus (docs/knowledge.md), pgvector's HNSW graph
  over 20,000 near-identical catalog items missed the right item for 15 of 16 questions at
  `ef_search` 40-200 (4 of 16 with m = 48, ef_construction = 256, a 93 s build), was right
  only at `ef_search` 1,000, slower (37 ms) than an exact scan (34 ms), and maintaining it
  cost ~8 ms an inserted item (pushData ran at 124 items/s).

`vector_store()` picks one: `AIFLOWY_KNOWLEDGE_VECTOR_BACKEND` = "auto" (pgvector when the
table exists, i.e. the extension was there at migrate time), "embedded" or "pgvector".
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Protocol

import numpy as np
from django.conf import settings
from django.db import connection

from knowledge.retrieval import CodeIndex, Hit, VectorMatrix

PG_TABLE = "knowledge_item_vector"
# `settings.AIFLOWY_KNOWLEDGE_PG_EXACT_BELOW` (5,000): below this many vectors pgvector scores
# all of them (a sequential scan: ~34 ms at 20,000 here, so ~8 ms at 5,000); from there on
# `settings.AIFLOWY_KNOWLEDGE_PG_CANDIDATES` (500) picked by the binary codes. Each candidate
# is an index lookup and a heap fetch (~5 us): 1,000 of 20,000 took 8 ms here, 2,000 took
# 11 ms, and the benchmark's first items were the exact search's at 500 already.


class VectorStore(Protocol):
    name: str

    def add(self, knowledge_base_id: int, vectors: list[tuple[int, np.ndarray]]) -> None:
        """Store vectors of items just inserted (inside the caller's transaction)."""

    def search(
        self,
        knowledge_base_id: int,
        query: np.ndarray,
        limit: int,
        matrix_loader: Callable[[], VectorMatrix],
        codes_loader: Callable[[], CodeIndex],
    ) -> list[Hit]:
        """The `limit` items nearest `query`, scores in [0, 1]. The loaders return the
        per-process indexes at the knowledge base's current `data_version`."""


class EmbeddedVectors:
    name = "embedded"

    def add(self, knowledge_base_id: int, vectors: list[tuple[int, np.ndarray]]) -> None:
        return None  # the item rows hold them

    def search(self, knowledge_base_id, query, limit, matrix_loader, codes_loader):
        return matrix_loader().search(query, limit)


class PgVectors:
    name = "pgvector"

    def add(self, knowledge_base_id: int, vectors: list[tuple[int, np.ndarray]]) -> None:
        if not vectors:
            return
        _binary_vectors()
        # Binary COPY: Django's psycopg cursor binds parameters client-side, so an INSERT
        # sent each vector as text (pgvector's `to_text`, ~150 us a vector, most of a
        # 1,000-item pushData); COPY sends pgvector's binary format. The items are new (ids
        # just assigned; an edited item's old vector is deleted first): nothing conflicts.
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(
                f"COPY {PG_TABLE} (item_id, knowledge_base_id, embedding) "
                "FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int8", "int8", "vector"])
            for item_id, vector in vectors:
                copy.write_row((item_id, knowledge_base_id, np.asarray(vector, dtype=np.float32)))

    def search(self, knowledge_base_id, query, limit, matrix_loader, codes_loader):
        dimensions = len(query)
        query = query.astype(np.float32)
        distance = f"embedding::vector({dimensions}) <=> %s::vector({dimensions})"
        index = codes_loader()
        if index.codes is None or index.codes.centre.shape[0] != dimensions:
            where, scope = "knowledge_base_id = %s", knowledge_base_id  # exact: every vector
        else:
            candidates = settings.AIFLOWY_KNOWLEDGE_PG_CANDIDATES
            positions = index.codes.nearest(query, max(candidates, limit))
            where, scope = "item_id = ANY(%s)", index.item_ids[positions].tolist()
        _binary_vectors()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT item_id, 1 - ({distance}) FROM {PG_TABLE} "
                f"WHERE {where} ORDER BY {distance} LIMIT %s",
                [query, scope, query, limit],
            )
            rows = cursor.fetchall()
        return [Hit(int(item_id), min(max(float(cosine), 0.0), 1.0)) for item_id, cosine in rows]


_registered: weakref.WeakSet = weakref.WeakSet()


def _binary_vectors() -> None:
    """pgvector's types on this connection (the `pgvector` package's psycopg adapters): the
    binary format for COPY, numpy arrays as query parameters."""
    from pgvector.psycopg import register_vector

    connection.ensure_connection()
    raw = connection.connection
    if raw not in _registered:
        register_vector(raw)
        _registered.add(raw)


@functools.cache
def _pg_table_exists() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [PG_TABLE])
        return bool(cursor.fetchone()[0])


def vector_store() -> VectorStore:
    backend = settings.AIFLOWY_KNOWLEDGE_VECTOR_BACKEND
    if backend == "pgvector" or (backend == "auto" and _pg_table_exists()):
        return PgVectors()
    return EmbeddedVectors()


def vectors_forget(
    *, item_ids: list[int] | None = None, knowledge_base_id: int | None = None
) -> None:
    """Delete stored vectors of deleted items (pgvector; the embedded rows go with the items)."""
    if not _pg_table_exists():
        return
    with connection.cursor() as cursor:
        if item_ids:
            cursor.execute(f"DELETE FROM {PG_TABLE} WHERE item_id = ANY(%s)", [list(item_ids)])
        if knowledge_base_id is not None:
            cursor.execute(
                f"DELETE FROM {PG_TABLE} WHERE knowledge_base_id = %s", [knowledge_base_id]
            )
