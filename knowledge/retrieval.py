"""Retrieval for knowledge bases, in plain Python (no Django, no request): terms for
full-text search, the in-memory BM25 and vector indexes, embeddings and rerank through the
provider's OpenAI-compatible API, and reciprocal-rank fusion.

Why in-memory indexes: one code path for SQLite and PostgreSQL, and a search at 100,000
items is a few numpy operations (docs/knowledge.md has the numbers). The services load an
index per knowledge base once and rebuild it when the knowledge base's `data_version`
changes.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import openai

from aiflowy.errors import UpstreamError
from aiflowy.llm import ProviderConfig, estimate_tokens, upstream_post

logger = logging.getLogger(__name__)

EMBED_BATCH_SIZE = 64
EMBED_ATTEMPTS = 3
EMBED_CONCURRENCY = 4
RRF_K = 60

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[^\W_]+", re.UNICODE)
_STOPWORDS = frozenset(
    (
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "the",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "can",
        "my",
        "me",
        "we",
        "our",
        "this",
        "that",
        "these",
        "those",
        "there",
        "的",
        "了",
        "是",
        "在",
        "和",
        "与",
        "及",
        "或",
        "吗",
        "呢",
        "啊",
        "吧",
        "我",
        "你",
        "他",
        "她",
        "它",
        "们",
        "怎么",
        "什么",
        "如何",
        "哪些",
        "哪个",
        "一个",
        "有",
        "没有",
        "可以",
        "能",
        "要",
        "会",
        "就",
        "都",
        "也",
        "还",
        "请问",
        "请",
        "一下",
    )
)


@functools.cache
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


@functools.cache
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("english")


_ASCII_LETTER = re.compile("[a-z]")


def _stem(word: str) -> str:
    """The Snowball stem of a lower-cased word (no apostrophes: `_WORD` splits at them).
    A word without an ASCII letter (a number, "900001条") is its own stem: the English
    rules only strip a-z suffixes. Such words skip the stemmer (~0.15 ms of pure Python
    each) and its cache: catalog-like items carry new numbers in every item."""
    if _ASCII_LETTER.search(word) is None:
        return word
    return _stem_word(word)


@functools.lru_cache(maxsize=200_000)
def _stem_word(word: str) -> str:
    return _stemmer().stemWord(word)


@functools.lru_cache(maxsize=200_000)
def _chinese_terms(run: str) -> tuple[str, ...]:
    """jieba's search-mode cut of one run of Chinese characters, stopwords dropped. Runs
    (the text between punctuation and other scripts) repeat a lot within and across items,
    and jieba costs ~0.1 ms a run: each distinct run is cut once per process."""
    return tuple(piece for piece in _jieba().cut_for_search(run) if piece not in _STOPWORDS)


def search_terms(text: str) -> list[str]:
    """The full-text terms of `text`: Chinese runs cut by jieba (search mode, so a long word
    also yields its shorter words), other words lower-cased and Snowball-stemmed; stopwords
    dropped. The same function indexes items and queries, so a Chinese question finds a
    passage that shares words with it but no exact phrase."""
    text = unicodedata.normalize("NFKC", text).lower()
    terms: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group(0)
        if _CJK.fullmatch(word):
            terms += _chinese_terms(word)
        elif word not in _STOPWORDS:
            terms.append(_stem(word))
    return terms


# --- chunking -----------------------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;\n])|(?<=\.)\s")


def chunk_text(text: str, *, size: int, overlap: int) -> list[str]:
    """Split `text` into chunks of at most `size` characters, cut after paragraph or sentence
    ends where possible, consecutive chunks sharing about `overlap` characters."""
    text = text.strip()
    if not text:
        return []
    size = max(size, 50)
    overlap = min(max(overlap, 0), size // 2)
    pieces = [p for p in _SENTENCE_END.split(text) if p and p.strip()]
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        while len(piece) > size:
            head, piece = piece[:size], piece[size - overlap :]
            if current:
                chunks.append(current)
                current = ""
            chunks.append(head)
        if len(current) + len(piece) > size and current:
            chunks.append(current)
            current = current[-overlap:] if overlap else ""
        current += piece
    if current.strip():
        chunks.append(current)
    return [chunk.strip() for chunk in chunks if chunk.strip()]


# --- scored results ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Hit:
    """One item found, by its index position and a score in [0, 1]."""

    item_id: int
    score: float


# --- full text ---------------------------------------------------------------------------
@dataclass
class FullTextIndex:
    """BM25 over `search_terms`, as postings arrays per term."""

    item_ids: np.ndarray
    postings: dict[str, tuple[np.ndarray, np.ndarray]]
    doc_lengths: np.ndarray
    average_length: float
    k1: float = 1.2
    b: float = 0.75

    @classmethod
    def build(cls, rows: Iterable[tuple[int, str]]) -> FullTextIndex:
        """`rows`: (item id, space-joined terms)."""
        ids: list[int] = []
        lengths: list[int] = []
        term_docs: dict[str, list[int]] = {}
        term_tfs: dict[str, list[int]] = {}
        for position, (item_id, joined) in enumerate(rows):
            ids.append(item_id)
            terms = joined.split()
            lengths.append(len(terms))
            counts: dict[str, int] = {}
            for term in terms:
                counts[term] = counts.get(term, 0) + 1
            for term, count in counts.items():
                term_docs.setdefault(term, []).append(position)
                term_tfs.setdefault(term, []).append(count)
        postings = {
            term: (np.asarray(docs, dtype=np.int32), np.asarray(term_tfs[term], dtype=np.float32))
            for term, docs in term_docs.items()
        }
        doc_lengths = np.asarray(lengths, dtype=np.float32)
        average = float(doc_lengths.mean()) if len(lengths) else 0.0
        return cls(np.asarray(ids, dtype=np.int64), postings, doc_lengths, average or 1.0)

    def search(self, query: str, limit: int) -> list[Hit]:
        """The best `limit` items. The score is BM25 divided by its upper bound for this
        query (every query term at saturating frequency), so it lies in [0, 1] and a min-score
        means the same for short and long questions."""
        terms = list(dict.fromkeys(search_terms(query)))
        count = len(self.item_ids)
        if not terms or not count:
            return []
        scores = np.zeros(count, dtype=np.float32)
        bound = 0.0
        for term in terms:
            posting = self.postings.get(term)
            document_frequency = 0 if posting is None else len(posting[0])
            idf = math.log(1 + (count - document_frequency + 0.5) / (document_frequency + 0.5))
            bound += idf * (self.k1 + 1)
            if posting is None:
                continue
            docs, tfs = posting
            norm = self.k1 * (1 - self.b + self.b * self.doc_lengths[docs] / self.average_length)
            scores[docs] += idf * tfs * (self.k1 + 1) / (tfs + norm)
        return _top(self.item_ids, scores / bound if bound else scores, limit)


def _top(item_ids: np.ndarray, scores: np.ndarray, limit: int) -> list[Hit]:
    if limit <= 0 or not len(scores):
        return []
    limit = min(limit, len(scores))
    best = np.argpartition(-scores, limit - 1)[:limit]
    best = best[np.argsort(-scores[best], kind="stable")]
    return [
        Hit(int(item_ids[position]), float(min(max(scores[position], 0.0), 1.0)))
        for position in best
        if scores[position] > 0
    ]


# --- vectors -----------------------------------------------------------------------------
def vector_to_bytes(vector: Sequence[float]) -> bytes:
    return normalized(np.asarray(vector, dtype=np.float32)).astype("<f4").tobytes()


def vector_from_bytes(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f4")


def normalized(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


# Below this many vectors a search is exact (every vector scored); from it on, binary codes
# pick `APPROXIMATE_CANDIDATES` candidates that are then scored exactly. Measured on the
# benchmark's 256-dimension vectors (docs/knowledge.md): the exact scan costs about as much
# as the approximate path at ~10,000 vectors and grows with them (memory bandwidth:
# 100 MB at 100,000), the approximate path stays ~1-3 ms. Small knowledge bases (the test
# suite's, most real ones) keep exact results.
EXACT_BELOW = 20_000
APPROXIMATE_CANDIDATES = 2_000


@dataclass
class VectorMatrix:
    """Unit-length float32 vectors, one row per item: cosine similarity is one dot product per
    row. From `EXACT_BELOW` vectors on, also each vector's binary code (`BinaryCodes`)."""

    item_ids: np.ndarray
    matrix: np.ndarray
    codes: BinaryCodes | None = None

    @classmethod
    def build(cls, rows: Iterable[tuple[int, bytes]]) -> VectorMatrix:
        ids: list[int] = []
        vectors: list[np.ndarray] = []
        for item_id, raw in rows:
            if raw:
                ids.append(item_id)
                vectors.append(vector_from_bytes(bytes(raw)))
        if not vectors:
            return cls(np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))
        return cls.of(np.asarray(ids, dtype=np.int64), np.vstack(vectors))

    @classmethod
    def of(cls, item_ids: np.ndarray, matrix: np.ndarray) -> VectorMatrix:
        """The index over `matrix` (rows unit length), with binary codes when it is large
        enough for the approximate search to be used."""
        codes = BinaryCodes.build(matrix) if len(item_ids) >= EXACT_BELOW else None
        return cls(item_ids, matrix, codes)

    def search(self, query_vector: np.ndarray, limit: int) -> list[Hit]:
        if not len(self.item_ids) or self.matrix.shape[1] != len(query_vector):
            return []
        query = normalized(query_vector.astype(np.float32))
        if self.codes is None or len(self.item_ids) <= APPROXIMATE_CANDIDATES:
            # The cosine similarity is the score (FastGPT's); opposite directions count as 0.
            # `vecdot`, not `matrix @ query`: OpenBLAS's threaded gemv costs milliseconds of
            # thread wake-ups on a busy machine (0.13 vs 8 ms for 2,000 rows here).
            return _top(self.item_ids, np.vecdot(self.matrix, query), limit)
        positions = self.codes.nearest(query, max(APPROXIMATE_CANDIDATES, limit))
        cosine = np.vecdot(self.matrix[positions], query)
        return _top(self.item_ids[positions], cosine, limit)


@dataclass
class CodeIndex:
    """Item ids and their binary codes only, for the pgvector backend, where the database
    holds the vectors and scores the candidates exactly: 64 bytes a vector in the process
    instead of 1 KB. `codes` is None below `pg_exact_below` vectors (every vector is scored)."""

    item_ids: np.ndarray
    codes: BinaryCodes | None

    @classmethod
    def build(cls, rows: Iterable[tuple[int, bytes]], *, exact_below: int) -> CodeIndex:
        matrix = VectorMatrix.build(rows)  # the vectors only while the codes are computed
        if len(matrix.item_ids) < exact_below:
            return cls(matrix.item_ids, None)
        return cls(matrix.item_ids, matrix.codes or BinaryCodes.build(matrix.matrix))


# Code bits per vector dimension, and at most: 512 bits for the benchmark's 256 dimensions,
# 1,024 for 1,536.
CODE_BITS_PER_DIMENSION = 2
CODE_BITS_MAX = 1024


@dataclass
class BinaryCodes:
    """A binary code per vector (SimHash): the signs of the mean-centred vector projected on
    `bits` fixed random directions, packed into uint64 words. The share of bits two codes
    differ in estimates the angle between the vectors, so the nearest by cosine are almost
    always among the nearest few thousand by code (Hamming distance: XOR and popcount over
    bits / 8 bytes per vector instead of 4 bytes per dimension), and an exact re-score of
    those puts them in order. Random directions, not the coordinates' own signs: measured on
    the benchmark's corpus the right item ranked up to 21,739th by coordinate signs, at most
    7th by 512 random directions (docs/knowledge.md)."""

    centre: np.ndarray  # float32, dimensions
    directions: np.ndarray  # float32, bits × dimensions
    # uint64, words × vectors: one row per 64 bits, so each XOR runs over contiguous memory.
    words: np.ndarray

    @classmethod
    def build(cls, matrix: np.ndarray) -> BinaryCodes:
        dimensions = matrix.shape[1]
        bits = min(CODE_BITS_MAX, -(-dimensions * CODE_BITS_PER_DIMENSION // 64) * 64)
        # Fixed seed: the same directions in every process and every build.
        directions = np.random.default_rng(0).standard_normal((bits, dimensions)).astype(np.float32)
        centre = matrix.mean(axis=0, dtype=np.float64).astype(np.float32)
        codes = cls(centre, directions, np.zeros((bits // 64, 0), dtype=np.uint64))
        chunks = [
            codes.encode(matrix[start : start + 10_000]) for start in range(0, len(matrix), 10_000)
        ]
        codes.words = np.ascontiguousarray(np.vstack(chunks).T)
        return codes

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """Rows of packed sign bits (vectors × words)."""
        projected = (vectors - self.centre) @ self.directions.T
        return np.packbits(projected > 0, axis=1).view(np.uint64)

    def nearest(self, query: np.ndarray, count: int) -> np.ndarray:
        """Positions of the `count` vectors whose codes are nearest the query's (ties by
        position), in position order."""
        projected = np.vecdot(self.directions, query - self.centre)  # no BLAS threads
        code = np.packbits(projected > 0).view(np.uint64)
        distance = np.bitwise_count(self.words[0] ^ code[0]).astype(np.uint16)
        for word in range(1, len(code)):
            distance += np.bitwise_count(self.words[word] ^ code[word])
        # Distances are small integers: the cut-off from their histogram (linear time)
        # instead of a partition of all of them.
        reached = np.cumsum(np.bincount(distance, minlength=64 * len(code) + 1))
        cutoff = int(np.searchsorted(reached, count))
        within = np.flatnonzero(distance < cutoff)
        at_cutoff = np.flatnonzero(distance == cutoff)[: count - len(within)]
        return np.sort(np.concatenate([within, at_cutoff]))


@dataclass(repr=False)
class EmbeddingResult:
    vectors: list[np.ndarray]
    tokens: int = 0
    calls: int = 0

    def __repr__(self) -> str:
        # Short: asyncio formats the reprs of finished tasks' results (see services.run_now),
        # and printing every vector costs milliseconds each.
        return f"EmbeddingResult({len(self.vectors)} vectors, tokens={self.tokens})"


async def embed_texts(
    provider: ProviderConfig,
    model: str,
    texts: Sequence[str],
    *,
    batch_size: int = EMBED_BATCH_SIZE,
) -> EmbeddingResult:
    """Embeddings for `texts` through the provider's `/v1/embeddings`, `batch_size` texts per
    call and up to `EMBED_CONCURRENCY` calls at once, each retried (with a short backoff) on a
    rate limit, a 5xx or a dropped connection. Vectors travel as base64 float32 (what the
    OpenAI SDK asks for by default: a quarter of the bytes of JSON numbers, and no float
    parsing). Tokens are the provider's count, or our estimate when it reports none."""
    batches = [
        list(texts[start : start + batch_size]) for start in range(0, len(texts), batch_size)
    ]
    limit = asyncio.Semaphore(EMBED_CONCURRENCY)

    async def one(batch: list[str]) -> tuple[list[np.ndarray], int]:
        async with limit:
            return await _embed_batch(provider, model, batch)

    done = await asyncio.gather(*(one(batch) for batch in batches))
    result = EmbeddingResult(vectors=[], calls=len(batches))
    for vectors, tokens in done:
        result.vectors += vectors
        result.tokens += tokens
    return result


async def _embed_batch(
    provider: ProviderConfig, model: str, batch: list[str]
) -> tuple[list[np.ndarray], int]:
    """One `/embeddings` call through the provider's SDK client (`aiflowy.llm.upstream_post`:
    raw bytes back, parsed here, instead of the SDK's models of every vector)."""
    body = {"model": model, "input": batch, "encoding_format": "base64"}
    for attempt in range(EMBED_ATTEMPTS):
        try:
            data = json.loads(await upstream_post(provider, "embeddings", body))
            break
        except (
            openai.RateLimitError,
            openai.InternalServerError,
            openai.APIConnectionError,
        ) as exc:
            if attempt == EMBED_ATTEMPTS - 1:
                raise _embedding_error(provider, exc) from None
            await asyncio.sleep(0.2 * 2**attempt)
        except (openai.OpenAIError, ValueError) as exc:
            raise _embedding_error(provider, exc) from None
    try:
        rows = sorted(data["data"], key=lambda row: row["index"])
        # One matrix for the batch: normalising row by row cost ~15 us a vector.
        matrix = np.vstack([_vector(row["embedding"]) for row in rows]) if rows else None
        vectors = []
        if matrix is not None:
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            vectors = list(matrix / norms)
    except (KeyError, TypeError, ValueError) as exc:
        raise _embedding_error(provider, exc) from None
    if len(vectors) != len(batch):
        raise UpstreamError(
            "The embedding provider returned the wrong number of vectors.",
            operator_detail=f"provider {provider.id}: {len(vectors)} vectors for {len(batch)}",
        )
    tokens = (data.get("usage") or {}).get("prompt_tokens") or sum(
        estimate_tokens(text) for text in batch
    )
    return vectors, tokens


def _vector(embedding) -> np.ndarray:
    """A vector as the provider sent it: base64 float32, or (from providers that ignore
    `encoding_format`) a list of numbers."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").astype(np.float32)
    return np.asarray(embedding, dtype=np.float32)


def _embedding_error(provider: ProviderConfig, exc: Exception) -> UpstreamError:
    status = getattr(exc, "status_code", None)
    error = UpstreamError(
        "The embedding provider failed" + (f" (HTTP {status})." if status else "."),
        operator_detail=f"provider {provider.id}: embeddings: {type(exc).__name__}: {exc}",
    )
    logger.warning("Embedding failure: %s", error.operator_detail)
    return error


async def rerank(
    provider: ProviderConfig, model: str, query: str, documents: list[str]
) -> list[float] | None:
    """Relevance scores in [0, 1] from the provider's `/rerank` (Jina/Cohere/Xinference shape:
    `{model, query, documents}` → `results: [{index, relevance_score}]`), or None when it
    fails: a rerank is an improvement, never a reason to fail a search."""
    try:
        content = await upstream_post(
            provider, "rerank", {"model": model, "query": query, "documents": documents}
        )
        scores = [0.0] * len(documents)
        for result in json.loads(content)["results"]:
            scores[int(result["index"])] = float(result["relevance_score"])
        return scores
    except Exception as exc:
        logger.warning("Rerank failed, keeping the search order: %s", exc)
        return None


# --- fusion --------------------------------------------------------------------------------
@dataclass
class Fused:
    item_id: int
    score: float
    ranks: dict[str, int] = field(default_factory=dict)


def reciprocal_rank_fusion(rankings: dict[str, list[Hit]], limit: int) -> list[Hit]:
    """Reciprocal-rank fusion (k = 60) of several rankings. The fused score is scaled by its
    best possible value (first in every ranking) so it stays in [0, 1]."""
    totals: dict[int, float] = {}
    for hits in rankings.values():
        for rank, hit in enumerate(hits):
            totals[hit.item_id] = totals.get(hit.item_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    best_possible = len(rankings) / (RRF_K + 1) or 1.0
    ordered = sorted(totals.items(), key=lambda pair: -pair[1])[:limit]
    return [Hit(item_id, score / best_possible) for item_id, score in ordered]
