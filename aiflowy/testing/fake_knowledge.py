"""What the fake upstream answers for knowledge bases, deterministic and offline:

- `/v1/embeddings`: hashed character n-gram vectors (JSON numbers, or base64 float32 when
  `encoding_format` is "base64", as the OpenAI SDK asks) (Chinese characters and their bigrams,
  word trigrams and word prefixes otherwise), so texts that share words or characters get
  similar vectors, and the same text always the same vector. `dimensions` sets the size
  (default 256).
- `/v1/rerank`: relevance as the share of the query's n-grams a document contains.
- QA answers: a chat request whose user message ends in FastGPT's `My text: \"\"\"…\"\"\"` is
  answered with `Q1:/A1:` pairs, one per sentence of the text.
"""

from __future__ import annotations

import base64
import functools
import re
import zlib

import numpy as np

DIMENSIONS = 256
_CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
_LATIN_WORD = re.compile(r"[a-z0-9]+")
_QA_TEXT = re.compile(r'My text: """(.*)"""\s*$', re.S)
_SENTENCE = re.compile(r"[^。！？.!?\n]+[。！？.!?]?")


def features(text: str) -> list[str]:
    lowered = text.lower()
    found: list[str] = []
    for run in _CJK_RUN.findall(lowered):
        found += list(run)
        found += [run[i : i + 2] for i in range(len(run) - 1)]
    for word in _LATIN_WORD.findall(lowered):
        found.append("w:" + word[:5])
        padded = f" {word} "
        found += [padded[i : i + 3] for i in range(len(padded) - 2)]
    return found


@functools.lru_cache(maxsize=200_000)
def _digest(feature: str) -> int:
    """crc32 (the same on every run and in every process, unlike `hash`); features repeat
    across texts, so each is hashed once per process."""
    return zlib.crc32(feature.encode())


def embedding_matrix(texts: list[str], dimensions: int = DIMENSIONS) -> np.ndarray:
    """Unit-length float32 vectors, one row per text: each feature adds ±1 (the sign from
    its digest's top bit) to bucket `digest % dimensions`. One `np.add.at` for the batch, not
    a Python loop per feature and dimension."""
    rows: list[int] = []
    digests: list[int] = []
    for row, text in enumerate(texts):
        found = [_digest(feature) for feature in features(text)]
        digests += found
        rows += [row] * len(found)
    digest_array = np.asarray(digests, dtype=np.uint64)
    columns = (digest_array % dimensions).astype(np.intp)
    signs = np.where(digest_array & 0x80000000, 1.0, -1.0)
    matrix = np.zeros((len(texts), dimensions), dtype=np.float64)
    np.add.at(matrix, (np.asarray(rows, dtype=np.intp), columns), signs)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32)


def embedding(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    return embedding_matrix([text], dimensions)[0].tolist()


def embeddings_body(body: dict) -> dict:
    texts = body.get("input") or []
    if isinstance(texts, str):
        texts = [texts]
    dimensions = int(body.get("dimensions") or DIMENSIONS)
    as_base64 = body.get("encoding_format") == "base64"

    matrix = embedding_matrix([str(text) for text in texts], dimensions)

    def encoded(vector: np.ndarray):
        if as_base64:
            return base64.b64encode(vector.astype("<f4").tobytes()).decode()
        return vector.tolist()

    return {
        "object": "list",
        "model": body.get("model", ""),
        "data": [
            {"object": "embedding", "index": index, "embedding": encoded(vector)}
            for index, vector in enumerate(matrix)
        ],
        "usage": {
            "prompt_tokens": sum(len(str(text)) // 4 + 1 for text in texts),
            "total_tokens": sum(len(str(text)) // 4 + 1 for text in texts),
        },
    }


def rerank_body(body: dict) -> dict:
    query = set(features(str(body.get("query", ""))))
    results = []
    for index, document in enumerate(body.get("documents") or []):
        shared = query & set(features(str(document)))
        results.append({"index": index, "relevance_score": len(shared) / (len(query) or 1)})
    results.sort(key=lambda result: -result["relevance_score"])
    return {"results": results}


def qa_answer(prompt: str) -> str | None:
    """`Q1:/A1:` pairs for a QA prompt, or None when `prompt` is not one."""
    match = _QA_TEXT.search(prompt)
    if match is None:
        return None
    sentences = [s.strip() for s in _SENTENCE.findall(match.group(1)) if s.strip()]
    return "\n".join(
        f"Q{number}: What does the text say about “{sentence[:40]}”?\nA{number}: {sentence}"
        for number, sentence in enumerate(sentences, 1)
    )
