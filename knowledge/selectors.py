"""Reading knowledge bases on the search path: a snapshot of the settings and the per-process
search indexes, rebuilt when the knowledge base's `data_version` has moved on."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection

from aiflowy.llm import ProviderConfig
from bots.models import LlmProvider
from bots.selectors import provider_config
from knowledge.models import BotKnowledgeBase, DataItem, KnowledgeBase
from knowledge.retrieval import CodeIndex, FullTextIndex, VectorMatrix


@dataclass(frozen=True, slots=True)
class KnowledgeBaseConfig:
    id: int
    name: str
    data_version: int
    embedding_provider: ProviderConfig | None
    embedding_model: str
    rerank_provider: ProviderConfig | None
    rerank_model: str
    qa_provider: ProviderConfig | None
    qa_model: str
    search_mode: str
    search_limit: int
    min_score: float
    quote_template: str
    quote_prompt: str

    @property
    def has_embeddings(self) -> bool:
        return self.embedding_provider is not None and bool(self.embedding_model)

    @classmethod
    def from_model(cls, kb: KnowledgeBase) -> KnowledgeBaseConfig:
        def provider(p):
            return provider_config(p) if p is not None else None

        return cls(
            id=kb.pk,
            name=kb.name,
            data_version=kb.data_version,
            embedding_provider=provider(kb.embedding_provider),
            embedding_model=kb.embedding_model,
            rerank_provider=provider(kb.rerank_provider),
            rerank_model=kb.rerank_model,
            qa_provider=provider(kb.qa_provider or kb.embedding_provider),
            qa_model=kb.qa_model,
            search_mode=kb.search_mode,
            search_limit=kb.search_limit,
            min_score=kb.min_score,
            quote_template=kb.quote_template,
            quote_prompt=kb.quote_prompt,
        )


def knowledge_base_config_get(knowledge_base_id: int) -> KnowledgeBaseConfig | None:
    """The knowledge base's current settings, or None. Every search must see the current
    `data_version` and settings, so the database is asked every time, but only for a stamp
    (one precompiled SQL query, ~0.2 ms): the knowledge base's `data_version` and
    `updated_at` and its providers' ids and `updated_at`. The full snapshot (the ORM query
    with three joins and the providers' API keys decrypted, ~4 ms on a busy machine) is
    loaded again only when the stamp has changed. Every edit of a knowledge base or provider
    goes through `save()` (which sets `updated_at`) or moves `data_version`."""
    stamp = _stamp(knowledge_base_id)
    if stamp is None:
        return None
    cached = _configs.get(knowledge_base_id)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    kb = (
        KnowledgeBase.objects.select_related("embedding_provider", "rerank_provider", "qa_provider")
        .filter(pk=knowledge_base_id)
        .first()
    )
    if kb is None:
        return None
    config = KnowledgeBaseConfig.from_model(kb)
    # The stamp read first: if the row moved on in between, the next call reloads.
    _configs[knowledge_base_id] = (stamp, config)
    return config


_configs: dict[int, tuple[tuple, KnowledgeBaseConfig]] = {}


@functools.cache
def _stamp_sql() -> str:
    kb = KnowledgeBase._meta
    provider = LlmProvider._meta
    columns = [f"kb.{kb.get_field(name).column}" for name in ("data_version", "updated_at")]
    joins = []
    for alias, name in (
        ("e", "embedding_provider"),
        ("r", "rerank_provider"),
        ("q", "qa_provider"),
    ):
        columns += [
            f"{alias}.{provider.pk.column}",
            f"{alias}.{provider.get_field('updated_at').column}",
        ]
        joins.append(
            f"LEFT JOIN {provider.db_table} {alias} "
            f"ON {alias}.{provider.pk.column} = kb.{kb.get_field(name).column}"
        )
    return (
        f"SELECT {', '.join(columns)} FROM {kb.db_table} kb {' '.join(joins)} "
        f"WHERE kb.{kb.pk.column} = %s"
    )


def _stamp(knowledge_base_id: int) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(_stamp_sql(), [knowledge_base_id])
        row = cursor.fetchone()
    return tuple(row) if row is not None else None


@dataclass
class _Indexes:
    version: int
    full_text: FullTextIndex | None = None
    vectors: VectorMatrix | None = None
    codes: CodeIndex | None = None


_indexes: dict[int, _Indexes] = {}
_lock = threading.Lock()


def _current(kb: KnowledgeBaseConfig) -> _Indexes:
    cached = _indexes.get(kb.id)
    if cached is None or cached.version != kb.data_version:
        cached = _Indexes(version=kb.data_version)
        _indexes[kb.id] = cached
    return cached


def full_text_index(kb: KnowledgeBaseConfig) -> FullTextIndex:
    """The knowledge base's BM25 index at `kb.data_version`, built on first use."""
    with _lock:
        indexes = _current(kb)
        if indexes.full_text is None:
            rows = DataItem.objects.filter(knowledge_base_id=kb.id).values_list(
                "id", "search_terms"
            )
            indexes.full_text = FullTextIndex.build(rows.iterator(chunk_size=5000))
        return indexes.full_text


def vector_matrix(kb: KnowledgeBaseConfig) -> VectorMatrix:
    """The knowledge base's vectors at `kb.data_version` (embedded backend), built on first use."""
    with _lock:
        indexes = _current(kb)
        if indexes.vectors is None:
            indexes.vectors = VectorMatrix.build(_stored_vectors(kb))
        return indexes.vectors


def vector_codes(kb: KnowledgeBaseConfig, *, exact_below: int) -> CodeIndex:
    """The knowledge base's binary codes at `kb.data_version` (pgvector backend), built on
    first use from the stored vectors, which are not kept."""
    with _lock:
        indexes = _current(kb)
        if indexes.codes is None:
            indexes.codes = CodeIndex.build(_stored_vectors(kb), exact_below=exact_below)
        return indexes.codes


def _stored_vectors(kb: KnowledgeBaseConfig) -> Iterator[tuple[int, bytes]]:
    """(item id, float32 bytes) of every item of `kb` that has a vector, streamed."""
    rows = DataItem.objects.filter(knowledge_base_id=kb.id, embedding__isnull=False).values_list(
        "id", "embedding"
    )
    return rows.iterator(chunk_size=5000)


def indexes_forget() -> None:
    with _lock:
        _indexes.clear()
    _configs.clear()


@dataclass(frozen=True, slots=True)
class BotKnowledgeLink:
    knowledge_base_id: int
    search_mode: str
    limit: int
    min_score: float


def bot_knowledge_links(bot_id: int) -> list[BotKnowledgeLink]:
    return [
        BotKnowledgeLink(kb_id, mode, limit, min_score)
        for kb_id, mode, limit, min_score in BotKnowledgeBase.objects.filter(bot_id=bot_id)
        .order_by("id")
        .values_list("knowledge_base_id", "search_mode", "limit", "min_score")
    ]
