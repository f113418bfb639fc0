"""Where item vectors are stored and searched: one small interface, two backends.

- `EmbeddedVectors` (the default, and the only one on SQLite): vectors live in
  `DataItem.embedding` as float32 bytes; a search multiplies the query by the knowledge base's
  matrix, held per process and rebuilt when the knowledge base's `data_version` changes
  (`knowledge.selectors`). Numbers in docs/knowledge.md.
- `PgVectors`: PostgreSQL with the `vector` extension (pgvector). Vectors are also written to
  `knowledge_item_vector`, searched by an HNSW index (cosine) per knowledge base, a partial
  index on the vector cast to the knowledge base's dimension (one table serves knowledge
  bases of different embedding models).

`vector_store()` picks one: `AIFLOWY_KNOWLEDGE_VECTOR_BACKEND` = "auto" (pgvector when the
table exists, i.e. the extension was there at migrate time), "embedded" or "pgvector".
"""

from __future__ import annotations

import functools
import weakref
from typing import Protocol

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from knowledge.retrieval import Hit

PG_TABLE = "knowledge_item_vector"
# HNSW build and search widths above pgvector's defaults (64 and 40), for recall: with the
# defaults the done-when test's 1,000 items missed a right item (docs/knowledge.md).
EF_CONSTRUCTION = 128
EF_SEARCH = 200


class VectorStore(Protocol):
    name: str

    def add(self, knowledge_base_id: int, vectors: list[tuple[int, np.ndarray]]) -> None:
        """Store vectors of items just inserted (inside the caller's transaction)."""

    def search(
        self, knowledge_base_id: int, query: np.ndarray, limit: int, matrix_loader
    ) -> list[Hit]:
        """The `limit` items nearest `query`, scores in [0, 1]."""


class EmbeddedVectors:
    name = "embedded"

    def add(self, knowledge_base_id: int, vectors: list[tuple[int, np.ndarray]]) -> None:
        return None  # the item rows hold them

    def search(self, knowledge_base_id: int, query: np.ndarray, limit: int, matrix_loader):
        return matrix_loader().search(query, limit)


class PgVectors:
    name = "pgvector"

    def add(self, knowledge_base_id: int, vectors: list[tuple[int, np.ndarray]]) -> None:
        if not vectors:
            return
        dimensions = len(vectors[0][1])
        pg_index_ensure(knowledge_base_id, dimensions)
        _binary_vectors()
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {PG_TABLE} (item_id, knowledge_base_id, embedding) "
                "VALUES (%s, %s, %s) ON CONFLICT (item_id) DO NOTHING",
                [(item_id, knowledge_base_id, vector) for item_id, vector in vectors],
            )

    def search(self, knowledge_base_id: int, query: np.ndarray, limit: int, matrix_loader):
        dimensions = len(query)
        distance = f"embedding::vector({dimensions}) <=> %s::vector({dimensions})"
        # A wider HNSW search than pgvector's default 40 candidates: better recall for a few
        # tenths of a millisecond. SET LOCAL lasts for this transaction only.
        _binary_vectors()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, min(limit * 4, 1000))}")
            cursor.execute(
                f"SELECT item_id, 1 - ({distance}) FROM {PG_TABLE} "
                f"WHERE knowledge_base_id = %s ORDER BY {distance} LIMIT %s",
                [query, knowledge_base_id, query, limit],
            )
            rows = cursor.fetchall()
        return [Hit(int(item_id), min(max(float(cosine), 0.0), 1.0)) for item_id, cosine in rows]


_registered: weakref.WeakSet = weakref.WeakSet()


def _binary_vectors() -> None:
    """numpy arrays travel as pgvector's binary format on this connection (the `pgvector`
    package's psycopg adapter): formatting 256 floats as text per item cost more than the
    insert itself."""
    from pgvector.psycopg import register_vector

    connection.ensure_connection()
    raw = connection.connection
    if raw not in _registered:
        register_vector(raw)
        _registered.add(raw)


_indexed: set[tuple[int, int]] = set()


def pg_index_ensure(knowledge_base_id: int, dimensions: int) -> None:
    """The knowledge base's HNSW index for this dimension (created once, `IF NOT EXISTS`)."""
    if (knowledge_base_id, dimensions) in _indexed:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS knowledge_vec_{knowledge_base_id}_{dimensions} "
            f"ON {PG_TABLE} USING hnsw ((embedding::vector({dimensions})) vector_cosine_ops) "
            f"WITH (m = 16, ef_construction = {EF_CONSTRUCTION}) "
            f"WHERE knowledge_base_id = {int(knowledge_base_id)}"
        )
    _indexed.add((knowledge_base_id, dimensions))


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
