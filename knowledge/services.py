"""Filling and searching knowledge bases: FastGPT's pushData (index and QA mode), training
bills, searches in every mode, and the QA training job.

Writes are all-or-nothing: an item is embedded before its transaction opens, and the items,
their vectors, the bill's counters and the knowledge base's `data_version` are written in one
transaction, so a failed call leaves nothing behind and a re-sent call inserts only what is
missing (an item's identity is the hash of its `q` and `a` in its knowledge base).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from aiflowy import jobs
from aiflowy.errors import BadRequest, Forbidden, NotFound, UpstreamError, as_api_error
from aiflowy.llm import GenerationParams, estimate_tokens, llm_complete, upstream_clients_closed
from aiflowy.wire.fastgpt_dataset import SearchTestItem
from apikeys.selectors import ApiKeyPrincipal
from knowledge.models import Collection, DataItem, KnowledgeBase, QaText, SearchMode, TrainingBill
from knowledge.retrieval import (
    Hit,
    embed_texts,
    reciprocal_rank_fusion,
    rerank,
    search_terms,
    vector_to_bytes,
)
from knowledge.schemas import PushDataRequest, SearchTestRequest
from knowledge.selectors import (
    KnowledgeBaseConfig,
    full_text_index,
    knowledge_base_config_get,
    vector_codes,
    vector_matrix,
)
from knowledge.vectors import vector_store, vectors_forget

logger = logging.getLogger(__name__)

API_COLLECTION_NAME = "API"
# How many candidates each ranking gives mixed mode and rerank, beyond the limit asked for.
CANDIDATES = 50

# FastGPT's QA prompt (its `Prompt_AgentQA`): the caller's `prompt` is the theme.
QA_PROMPT = (
    "I will give you a text. {theme}. Learn it and sum it up as questions and answers: "
    "produce at most 25 questions, and for each a detailed, complete answer (markdown is "
    "allowed). Answer in the language of the text, in this format:\n"
    "Q1: question\nA1: answer\nQ2: question\nA2: answer\n…\n\n"
    'My text: """{text}"""'
)
DEFAULT_QA_THEME = "It may contain several topics"
_QA_PAIR = re.compile(r"Q\d+\s*[:：]\s*(.*?)\s*A\d+\s*[:：]\s*(.*?)(?=\s*Q\d+\s*[:：]|\Z)", re.S)


# --- items ------------------------------------------------------------------------------------
def content_hash(q: str, a: str) -> str:
    return hashlib.sha256(f"{q}\x00{a}".encode()).hexdigest()


@dataclass
class NewItem:
    q: str
    a: str = ""
    indexes: list = field(default_factory=list)
    source: str = ""


@dataclass
class InsertOutcome:
    inserted: int = 0
    skipped: int = 0
    tokens: int = 0
    item_ids: list[int] = field(default_factory=list)


@dataclass
class _Prepared:
    items: list[NewItem]
    hashes: list[str]
    tokens: list[int]
    skipped: int
    # Each item's full-text terms (`_terms_for`), computed by `_prepare` in the database thread,
    # before the items are embedded. Not in a worker thread while they are embedded: the
    # two then contended for the GIL (the event loop waited for it at every step of the
    # embedding calls) and took 340 ms per 1,000 items instead of 52 + 198 in sequence.
    terms: list[str] = field(default_factory=list)


def _prepare(kb_id: int, items: Sequence[NewItem]) -> _Prepared:
    """Drop empty, over-long, repeated and already-stored items (skipped, not counted)."""
    max_tokens = settings.AIFLOWY_KNOWLEDGE_MAX_ITEM_TOKENS
    kept: dict[str, tuple[NewItem, int]] = {}
    skipped = 0
    for item in items:
        q, a = item.q.strip(), item.a.strip()
        tokens = estimate_tokens(q) + estimate_tokens(a)
        if not q or tokens > max_tokens:
            skipped += 1
            continue
        digest = content_hash(q, a)
        if digest in kept:
            skipped += 1
            continue
        kept[digest] = (NewItem(q, a, list(item.indexes), item.source), tokens)
    hashes = list(kept)
    existing: set[str] = set()
    for start in range(0, len(hashes), 500):
        # `order_by()`: the model's default ordering (-id) made SQLite walk every item of
        # the knowledge base in id order instead of probing the (knowledge base, hash)
        # index: 365 instead of a few ms per 500 hashes at 100,000 items.
        existing |= set(
            DataItem.objects.filter(
                knowledge_base_id=kb_id, content_hash__in=hashes[start : start + 500]
            )
            .order_by()
            .values_list("content_hash", flat=True)
        )
    skipped += len(existing)
    hashes = [digest for digest in hashes if digest not in existing]
    new_items = [kept[digest][0] for digest in hashes]
    return _Prepared(
        items=new_items,
        hashes=hashes,
        tokens=[kept[digest][1] for digest in hashes],
        skipped=skipped,
        terms=_terms_for(new_items),
    )


def _terms_for(items: Sequence[NewItem]) -> list[str]:
    """Each item's full-text terms, space-joined (what `DataItem.search_terms` stores)."""
    return [" ".join(search_terms(_indexed_text(item))) for item in items]


def _indexed_text(item: NewItem) -> str:
    """What full-text search matches: the question, the answer and any extra index texts."""
    extra = [
        str(index.get("text", "")) if isinstance(index, dict) else str(index)
        for index in item.indexes
    ]
    return "\n".join([item.q, item.a, *extra])


def _embedded_text(item: NewItem) -> str:
    """What an item's vector is computed from: its question and its answer, so a question
    worded like the answer finds it too."""
    return f"{item.q}\n{item.a}" if item.a else item.q


def _write(
    kb_id: int,
    prepared: _Prepared,
    vectors: list[np.ndarray] | None,
    *,
    collection_id: int | None,
    api_key_id: int | None,
    user_id: int | None,
    bill_id: uuid.UUID | None,
    bill_counts: dict[str, int] | None,
) -> InsertOutcome:
    """Insert the prepared items, their vectors, the bill's counters and the new
    `data_version` in one transaction."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    indexes_field = DataItem._meta.get_field("indexes")
    embedding_field = DataItem._meta.get_field("embedding")
    rows = [
        (
            kb_id,
            collection_id,
            item.q,
            item.a,
            item.source[:1000],
            tokens,
            indexes_field.get_db_prep_save(item.indexes, connection),
            digest,
            terms,
            embedding_field.get_db_prep_save(
                vector_to_bytes(vectors[position]) if vectors else None, connection
            ),
            api_key_id,
            user_id,
            now,
            now,
        )
        for position, (item, digest, terms, tokens) in enumerate(
            zip(prepared.items, prepared.hashes, prepared.terms, prepared.tokens, strict=True)
        )
    ]
    with transaction.atomic():
        item_ids = _items_insert(kb_id, rows, prepared.hashes)
        if vectors:
            vector_store().add(kb_id, list(zip(item_ids, vectors, strict=True)))
        if item_ids:
            KnowledgeBase.objects.filter(pk=kb_id).update(data_version=F("data_version") + 1)
        if bill_id is not None and bill_counts is not None:
            TrainingBill.objects.filter(pk=bill_id).update(
                knowledge_base_id=kb_id,
                inserted=F("inserted") + len(item_ids),
                skipped=F("skipped") + prepared.skipped,
                **{name: F(name) + value for name, value in bill_counts.items()},
            )
    return InsertOutcome(inserted=len(item_ids), skipped=prepared.skipped, item_ids=item_ids)


# The columns `_write` fills, in its rows' order.
_INSERT_FIELDS = (
    "knowledge_base",
    "collection",
    "q",
    "a",
    "source",
    "tokens",
    "indexes",
    "content_hash",
    "search_terms",
    "embedding",
    "added_by_key",
    "added_by_user",
    "created_at",
    "updated_at",
)


@functools.cache
def _insert_sql() -> str:
    columns = [DataItem._meta.get_field(name).column for name in _INSERT_FIELDS]
    return (
        f"INSERT INTO {DataItem._meta.db_table} ({', '.join(columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )


def _items_insert(kb_id: int, rows: list[tuple], hashes: list[str]) -> list[int]:
    """Insert item rows with one `executemany` and return their ids in the rows' order
    (found again by their content hashes, unique in the knowledge base). Not the ORM's
    `bulk_create`: building a model instance and preparing each of its fields cost ~0.2 ms
    an item, most of a 1,000-item pushData on this machine (docs/knowledge.md)."""
    if not rows:
        return []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY: Django's psycopg cursor binds parameters client-side, so executemany
            # quoted every value into SQL text (~50 ms per 1,000 items).
            columns = ", ".join(DataItem._meta.get_field(name).column for name in _INSERT_FIELDS)
            with cursor.cursor.copy(
                f"COPY {DataItem._meta.db_table} ({columns}) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(_insert_sql(), rows)
    ids: dict[str, int] = {}
    for start in range(0, len(hashes), 500):
        ids.update(
            (digest, item_id)
            for item_id, digest in DataItem.objects.filter(
                knowledge_base_id=kb_id, content_hash__in=hashes[start : start + 500]
            )
            .order_by()  # the (knowledge base, hash) index, see `_prepare`
            .values_list("id", "content_hash")
        )
    return [ids[digest] for digest in hashes]


async def data_items_insert(
    kb: KnowledgeBaseConfig,
    items: Sequence[NewItem],
    *,
    collection_id: int | None = None,
    api_key_id: int | None = None,
    user_id: int | None = None,
    bill_id: uuid.UUID | None = None,
    bill_counts: dict[str, int] | None = None,
) -> InsertOutcome:
    """Embed (when the knowledge base has a model) and insert `items`, all or nothing.
    Duplicates already stored are skipped; an insert that races another's same item is
    prepared again and retried once."""
    for attempt in range(2):
        prepared = await database_sync_to_async(_prepare)(kb.id, items)
        tokens = 0
        vectors = None
        if prepared.items and kb.has_embeddings:
            embedded = await embed_texts(
                kb.embedding_provider,
                kb.embedding_model,
                [_embedded_text(item) for item in prepared.items],
            )
            vectors, tokens = embedded.vectors, embedded.tokens
        counts = dict(bill_counts or {})
        if bill_id is not None:
            counts["tokens"] = counts.get("tokens", 0) + tokens
        try:
            outcome = await database_sync_to_async(_write)(
                kb.id,
                prepared,
                vectors,
                collection_id=collection_id,
                api_key_id=api_key_id,
                user_id=user_id,
                bill_id=bill_id,
                bill_counts=counts if bill_id is not None else None,
            )
        except IntegrityError:
            if attempt:
                raise
            continue
        outcome.tokens = tokens
        return outcome
    raise AssertionError("unreachable")


def data_items_insert_now(
    kb: KnowledgeBaseConfig,
    items: Sequence[NewItem],
    *,
    collection_id: int | None = None,
    user_id: int | None = None,
) -> InsertOutcome:
    """`data_items_insert` for synchronous callers (management commands, the admin): the
    database work stays on the calling thread and its connection."""
    prepared = _prepare(kb.id, items)
    vectors = None
    if prepared.items and kb.has_embeddings:
        vectors = run_now(
            embed_texts,
            kb.embedding_provider,
            kb.embedding_model,
            [_embedded_text(item) for item in prepared.items],
        ).vectors
    return _write(
        kb.id,
        prepared,
        vectors,
        collection_id=collection_id,
        api_key_id=None,
        user_id=user_id,
        bill_id=None,
        bill_counts=None,
    )


def run_now(function, *args, **kwargs):
    """Run the coroutine function from synchronous code (the admin, management commands) on
    an event loop of its own, closing the upstream clients it opened: the server's loop and
    its shared clients are never touched."""

    results = []

    async def closed() -> None:
        async with upstream_clients_closed():
            results.append(await function(*args, **kwargs))

    # The task returns None, not the result: on the main thread Python 3.11's asyncio.run
    # ends with `signal.getsignal(SIGINT)`, which formats the repr of its handler and so of
    # the finished task with its result — 1,000 embedded vectors took seconds to print.
    asyncio.run(closed())
    return results[0]


# --- access -----------------------------------------------------------------------------------
async def knowledge_base_for_key(api_key: ApiKeyPrincipal, kb_id: int) -> KnowledgeBaseConfig:
    """The knowledge base, if it exists and the key may use it: 404 / 403 otherwise."""
    kb = await database_sync_to_async(knowledge_base_config_get)(kb_id)
    if kb is None:
        raise NotFound(
            f"'kbId': knowledge base {kb_id} does not exist.",
            code="dataset_not_found",
            param="kbId",
        )
    if not api_key.may_use_knowledge_base(kb.id):
        raise Forbidden(f"'kbId': this API key may not use knowledge base {kb_id}.", param="kbId")
    return kb


def _collection_check(kb_id: int, collection_id: int | None) -> int:
    if collection_id is None:
        collection, _ = Collection.objects.get_or_create(
            knowledge_base_id=kb_id,
            kind=Collection.Kind.API,
            name=API_COLLECTION_NAME,
            defaults={"status": Collection.Status.DONE},
        )
        return collection.pk
    if not Collection.objects.filter(pk=collection_id, knowledge_base_id=kb_id).exists():
        raise NotFound(
            f"'collectionId': collection {collection_id} does not exist in this knowledge base.",
            code="collection_not_found",
            param="collectionId",
        )
    return collection_id


def _bill_check(bill_id: uuid.UUID | None, api_key_id: int) -> None:
    if bill_id is not None and not TrainingBill.objects.filter(pk=bill_id).exists():
        raise NotFound(
            f"'billId': bill {bill_id} does not exist.", code="bill_not_found", param="billId"
        )


# --- endpoints' services ----------------------------------------------------------------------
def training_bill_create(*, api_key_id: int | None, name: str = "") -> str:
    return str(TrainingBill.objects.create(name=name, api_key_id=api_key_id).pk)


async def push_data(api_key: ApiKeyPrincipal, request: PushDataRequest) -> int:
    """FastGPT's pushData: the number of items inserted (index mode) or texts queued (QA)."""
    kb = await knowledge_base_for_key(api_key, request.knowledge_base_id)
    collection_id = await database_sync_to_async(_collection_check)(kb.id, request.collection_id)
    await database_sync_to_async(_bill_check)(request.bill_id, api_key.id)
    if request.mode == "qa":
        return await qa_texts_queue(api_key, kb, request, collection_id)
    outcome = await data_items_insert(
        kb,
        [NewItem(item.q, item.a, list(item.indexes)) for item in request.data],
        collection_id=collection_id,
        api_key_id=api_key.id,
        bill_id=request.bill_id,
        bill_counts={"items_in": len(request.data)},
    )
    return outcome.inserted


# --- search -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Quote:
    id: int
    q: str
    a: str
    source: str
    score: float

    def as_fastgpt(self) -> SearchTestItem:
        return {
            "id": str(self.id),
            "q": self.q,
            "a": self.a,
            "source": self.source,
            "score": round(self.score, 4),
        }


@dataclass
class SearchOutcome:
    quotes: list[Quote]
    mode: str
    tokens: int = 0
    seconds: float = 0.0
    reranked: bool = False


def effective_mode(kb: KnowledgeBaseConfig, mode: str | None) -> str:
    """The mode to search in: vector modes need the knowledge base's embedding model; without
    one every search is full-text."""
    mode = mode or kb.search_mode
    if not kb.has_embeddings:
        return SearchMode.FULL_TEXT
    return mode


def _full_text_hits(kb: KnowledgeBaseConfig, text: str, candidates: int) -> list[Hit]:
    return full_text_index(kb).search(text, candidates)


def _rank(
    kb: KnowledgeBaseConfig,
    text: str,
    vector,
    mode: str,
    candidates: int,
    full_text_hits: list[Hit] | None = None,
) -> list[Hit]:
    rankings: dict[str, list[Hit]] = {}
    if mode in (SearchMode.FULL_TEXT, SearchMode.MIXED):
        rankings["fullText"] = (
            full_text_hits if full_text_hits is not None else _full_text_hits(kb, text, candidates)
        )
    if mode in (SearchMode.EMBEDDING, SearchMode.MIXED) and vector is not None:
        rankings["embedding"] = vector_store().search(
            kb.id,
            vector,
            candidates,
            lambda: vector_matrix(kb),
            lambda: vector_codes(kb, exact_below=settings.AIFLOWY_KNOWLEDGE_PG_EXACT_BELOW),
        )
    if len(rankings) == 1:
        return next(iter(rankings.values()))
    return reciprocal_rank_fusion(rankings, candidates)


def _quotes(hits: list[Hit]) -> list[Quote]:
    if not hits:
        return []
    placeholders = ", ".join(["%s"] * len(hits))
    with connection.cursor() as cursor:
        # Plain SQL: the ORM's query compilation cost more (~1.5 ms) than the query.
        cursor.execute(_QUOTES_SQL.format(placeholders), [hit.item_id for hit in hits])
        rows = {row[0]: row for row in cursor.fetchall()}
    return [
        Quote(hit.item_id, *rows[hit.item_id][1:], hit.score) for hit in hits if hit.item_id in rows
    ]


_QUOTES_SQL = f"SELECT id, q, a, source FROM {DataItem._meta.db_table} WHERE id IN ({{}})"


def _search_sync(
    kb, text, vector, mode, limit, min_score, candidates, full_text_hits=None
) -> list[Quote]:
    ranked = _rank(kb, text, vector, mode, candidates, full_text_hits)
    hits = [hit for hit in ranked if hit.score >= min_score]
    return _quotes(hits[:candidates])


async def knowledge_search(
    kb: KnowledgeBaseConfig,
    text: str,
    *,
    mode: str | None = None,
    limit: int | None = None,
    min_score: float | None = None,
    use_rerank: bool = False,
) -> SearchOutcome:
    """The best `limit` items for `text`, best first, scores in [0, 1] at least `min_score`."""
    started = time.monotonic()
    mode = effective_mode(kb, mode)
    limit = limit or kb.search_limit
    min_score = kb.min_score if min_score is None else min_score
    vector = None
    tokens = 0
    reranking = use_rerank and kb.rerank_provider is not None and bool(kb.rerank_model)
    candidates = max(limit, CANDIDATES) if (reranking or mode == SearchMode.MIXED) else limit
    full_text_hits = None
    if mode in (SearchMode.EMBEDDING, SearchMode.MIXED):
        # Mixed mode ranks by full text while the provider embeds the question: the two
        # overlap instead of adding up.
        embedding = asyncio.create_task(
            embed_texts(kb.embedding_provider, kb.embedding_model, [text])
        )
        try:
            if mode == SearchMode.MIXED:
                full_text_hits = await database_sync_to_async(_full_text_hits)(kb, text, candidates)
        except BaseException:
            embedding.cancel()
            raise
        embedded = await embedding
        vector, tokens = embedded.vectors[0], embedded.tokens
    quotes = await database_sync_to_async(_search_sync)(
        kb, text, vector, mode, limit, min_score, candidates, full_text_hits
    )
    reranked = False
    if reranking and quotes:
        scores = await rerank(
            kb.rerank_provider, kb.rerank_model, text, [f"{q.q}\n{q.a}" for q in quotes]
        )
        if scores is not None:
            quotes = sorted(
                (
                    Quote(q.id, q.q, q.a, q.source, score)
                    for q, score in zip(quotes, scores, strict=True)
                ),
                key=lambda quote: -quote.score,
            )
            quotes = [quote for quote in quotes if quote.score >= min_score]
            reranked = True
    return SearchOutcome(
        quotes=quotes[:limit],
        mode=mode,
        tokens=tokens,
        seconds=time.monotonic() - started,
        reranked=reranked,
    )


async def search_test(api_key: ApiKeyPrincipal, request: SearchTestRequest) -> list[SearchTestItem]:
    kb = await knowledge_base_for_key(api_key, request.knowledge_base_id)
    if request.search_mode in (SearchMode.EMBEDDING, SearchMode.MIXED) and not kb.has_embeddings:
        raise BadRequest(
            f"'searchMode': knowledge base {kb.id} has no embedding model; use 'fullTextRecall'.",
            param="searchMode",
        )
    outcome = await knowledge_search(
        kb,
        request.text,
        mode=request.search_mode,
        limit=request.limit,
        min_score=request.similarity,
        use_rerank=request.using_rerank,
    )
    return [quote.as_fastgpt() for quote in outcome.quotes]


# --- QA mode ----------------------------------------------------------------------------------
def _qa_texts_create(
    api_key_id: int, kb_id: int, request: PushDataRequest, collection_id: int
) -> tuple[uuid.UUID, int]:
    max_tokens = settings.AIFLOWY_KNOWLEDGE_MAX_QA_TOKENS
    texts = [item.q.strip() for item in request.data]
    kept = [text for text in texts if text and estimate_tokens(text) <= max_tokens]
    with transaction.atomic():
        if request.bill_id is None:
            bill = TrainingBill.objects.create(
                name="QA", mode=TrainingBill.Mode.QA, api_key_id=api_key_id, knowledge_base_id=kb_id
            )
            bill_id = bill.pk
        else:
            bill_id = request.bill_id
        QaText.objects.bulk_create(
            QaText(
                bill_id=bill_id,
                knowledge_base_id=kb_id,
                collection_id=collection_id,
                text=text,
                prompt=request.prompt,
            )
            for text in kept
        )
        TrainingBill.objects.filter(pk=bill_id).update(
            mode=TrainingBill.Mode.QA,
            knowledge_base_id=kb_id,
            status=TrainingBill.Status.RUNNING,
            items_in=F("items_in") + len(texts),
            skipped=F("skipped") + len(texts) - len(kept),
        )
        if kept:
            qa_training_start(bill_id)
    return bill_id, len(kept)


async def qa_texts_queue(
    api_key: ApiKeyPrincipal, kb: KnowledgeBaseConfig, request: PushDataRequest, collection_id: int
) -> int:
    """QA mode: the texts are stored with the bill and the caller is answered at once; the
    QA training job turns them into items. Returns the number of texts accepted."""
    _bill_id, accepted = await database_sync_to_async(_qa_texts_create)(
        api_key.id, kb.id, request, collection_id
    )
    return accepted


QA_TRAINING_JOB = "knowledge.run_qa_training"


def qa_training_start(bill_id: uuid.UUID | str) -> None:
    """Queue the bill's QA training as a durable job (`knowledge/tasks.py`). Inside
    `transaction.atomic()` the job commits with the texts it trains on (or neither), so texts
    accepted are trained even if this process dies right after answering."""
    jobs.enqueue_sync(QA_TRAINING_JOB, bill_id=str(bill_id))


def qa_pairs(answer: str) -> list[tuple[str, str]]:
    """The `Q1: … A1: …` pairs of an LLM answer, in order, empty ones dropped."""
    return [
        (question.strip(), reply.strip())
        for question, reply in _QA_PAIR.findall(answer)
        if question.strip() and reply.strip()
    ]


def run_qa_training(bill_id: str) -> None:
    """`qa_training` from synchronous code (a shell, a test), on a loop of its own."""

    async def train() -> None:
        async with upstream_clients_closed():
            await qa_training(bill_id)

    asyncio.run(train())


async def qa_training(bill_id: uuid.UUID | str) -> None:
    """Turn the bill's pending (and previously failed) QA texts into items. Idempotent: a text
    already done is not sent again, and a pair already stored is skipped (items are unique by
    content), so a retried or repeated job never inserts a pair twice. A text that fails is
    marked failed with its error, counted in the bill, and retried by the next run."""
    bill_id = uuid.UUID(str(bill_id))
    texts = await database_sync_to_async(_qa_texts_open)(bill_id)
    configs: dict[int, KnowledgeBaseConfig | None] = {}
    for text in texts:
        if text.knowledge_base_id not in configs:
            configs[text.knowledge_base_id] = await database_sync_to_async(
                knowledge_base_config_get
            )(text.knowledge_base_id)
        try:
            await _qa_text_train(bill_id, text, configs[text.knowledge_base_id])
        except Exception as exc:
            await database_sync_to_async(_qa_text_failed)(bill_id, text.pk, exc)
    await database_sync_to_async(_qa_bill_settle)(bill_id)


def _qa_texts_open(bill_id: uuid.UUID) -> list[QaText]:
    TrainingBill.objects.filter(pk=bill_id).update(status=TrainingBill.Status.RUNNING)
    return list(
        QaText.objects.filter(
            bill_id=bill_id, status__in=[QaText.Status.PENDING, QaText.Status.FAILED]
        ).order_by("id")
    )


async def _qa_text_train(bill_id: uuid.UUID, text: QaText, kb: KnowledgeBaseConfig | None) -> None:
    if kb is None or kb.qa_provider is None:
        raise UpstreamError(
            "The knowledge base has no QA model.",
            operator_detail="set the knowledge base's QA provider (or embedding provider)",
        )
    prompt = QA_PROMPT.format(theme=text.prompt or DEFAULT_QA_THEME, text=text.text)
    completion = await llm_complete(
        kb.qa_provider,
        [{"role": "user", "content": prompt}],
        GenerationParams(model=kb.qa_model or kb.qa_provider.default_model, temperature=0.3),
    )
    pairs = qa_pairs(completion.content)
    if not pairs:
        raise UpstreamError(
            "The QA model answered without Q1:/A1: pairs.",
            operator_detail=f"answer began: {completion.content[:200]!r}",
        )
    outcome = await data_items_insert(
        kb,
        [NewItem(q, a, source=f"QA {bill_id}") for q, a in pairs],
        collection_id=text.collection_id,
        bill_id=bill_id,
        bill_counts={"tokens": completion.prompt_tokens + completion.completion_tokens},
    )
    await database_sync_to_async(QaText.objects.filter(pk=text.pk).update)(
        status=QaText.Status.DONE,
        pairs_inserted=F("pairs_inserted") + outcome.inserted,
        attempts=F("attempts") + 1,
        error="",
    )


def _qa_text_failed(bill_id: uuid.UUID, text_id: int, exc: Exception) -> None:
    detail = exc.operator_detail if isinstance(exc, UpstreamError) else as_api_error(exc).message
    QaText.objects.filter(pk=text_id).update(
        status=QaText.Status.FAILED, attempts=F("attempts") + 1, error=detail[:2000]
    )
    bill = TrainingBill.objects.get(pk=bill_id)
    bill.errors = [*bill.errors, {"text": text_id, "error": detail[:500]}][-50:]
    bill.save(update_fields=["errors", "updated_at"])


def _qa_bill_settle(bill_id: uuid.UUID) -> None:
    failed = QaText.objects.filter(bill_id=bill_id, status=QaText.Status.FAILED).count()
    TrainingBill.objects.filter(pk=bill_id).update(
        failed=failed,
        status=TrainingBill.Status.FAILED if failed else TrainingBill.Status.DONE,
    )


# --- collections: uploads, pasted texts, links --------------------------------------------------
IMPORT_BATCH = 50


def collection_create(
    *, knowledge_base: KnowledgeBase, name: str, kind: str, source: str = "", total: int = 0
) -> Collection:
    return Collection.objects.create(
        knowledge_base=knowledge_base,
        name=name[:255],
        kind=kind,
        source=source[:1000],
        status=Collection.Status.PENDING,
        chunks_total=total,
    )


def collection_import(
    collection_id: int, items: list[tuple[str, str]], user_id: int | None
) -> None:
    """Insert a collection's items in batches, writing its progress after each batch (the admin
    shows it). Synchronous, for a background thread; items already stored are skipped, so an
    interrupted import can be run again."""
    asyncio.run(_collection_import(collection_id, items, user_id))


async def _collection_import(collection_id: int, items: list[tuple[str, str]], user_id) -> None:
    async with upstream_clients_closed():
        collection = await database_sync_to_async(Collection.objects.get)(pk=collection_id)
        kb = await database_sync_to_async(knowledge_base_config_get)(collection.knowledge_base_id)
        update = database_sync_to_async(Collection.objects.filter(pk=collection_id).update)
        await update(status=Collection.Status.RUNNING, chunks_total=len(items))
        done = 0
        try:
            for start in range(0, len(items), IMPORT_BATCH):
                batch = items[start : start + IMPORT_BATCH]
                await data_items_insert(
                    kb,
                    [NewItem(q, a, source=collection.name) for q, a in batch],
                    collection_id=collection_id,
                    user_id=user_id,
                )
                done += len(batch)
                await update(chunks_done=done)
        except Exception as exc:  # shown on the collection
            detail = exc.operator_detail if isinstance(exc, UpstreamError) else str(exc)
            await update(status=Collection.Status.FAILED, error=detail[:2000])
            logger.warning("Import of collection %s failed: %s", collection_id, detail)
            return
        await update(status=Collection.Status.DONE)


def collection_import_start(collection_id: int, items: list[tuple[str, str]], user_id) -> None:
    """Import in a thread of this process, so the admin's request answers at once."""
    import threading

    threading.Thread(
        target=collection_import,
        args=(collection_id, items, user_id),
        name=f"knowledge-import-{collection_id}",
        daemon=True,
    ).start()


async def link_text(url: str) -> str:
    """A page's visible text, fetched once through the SSRF-safe outbound client."""
    from aiflowy.outbound import OutboundError, fetch
    from knowledge.documents import DocumentError, html_text

    try:
        response = await fetch("GET", url, timeout_s=20, max_bytes=5_000_000)
    except OutboundError as exc:
        raise DocumentError(f"{url}: {exc.message}") from None
    if response.status >= 400:
        raise DocumentError(f"{url}: HTTP {response.status}.")
    if "html" in response.content_type:
        return html_text(response.text)
    return response.text


# --- edits from the admin -----------------------------------------------------------------------
def data_item_save(item: DataItem) -> None:
    """Save an edited item: its terms, content hash and (with a model) its vector follow the
    text, and the knowledge base's indexes are rebuilt on their next search."""
    kb = knowledge_base_config_get(item.knowledge_base_id)
    new = NewItem(item.q.strip(), item.a.strip(), list(item.indexes or []))
    item.q, item.a = new.q, new.a
    item.content_hash = content_hash(new.q, new.a)
    item.search_terms = " ".join(search_terms(_indexed_text(new)))
    item.tokens = estimate_tokens(new.q) + estimate_tokens(new.a)
    vector = None
    if kb is not None and kb.has_embeddings:
        vector = run_now(
            embed_texts, kb.embedding_provider, kb.embedding_model, [_embedded_text(new)]
        ).vectors[0]
        item.embedding = vector_to_bytes(vector)
    with transaction.atomic():
        item.save()
        if vector is not None:
            vectors_forget(item_ids=[item.pk])
            vector_store().add(item.knowledge_base_id, [(item.pk, vector)])
        KnowledgeBase.objects.filter(pk=item.knowledge_base_id).update(
            data_version=F("data_version") + 1
        )


def data_items_delete(item_ids: list[int]) -> None:
    kb_ids = set(
        DataItem.objects.filter(pk__in=item_ids).values_list("knowledge_base_id", flat=True)
    )
    with transaction.atomic():
        DataItem.objects.filter(pk__in=item_ids).delete()
        vectors_forget(item_ids=item_ids)
        KnowledgeBase.objects.filter(pk__in=kb_ids).update(data_version=F("data_version") + 1)
