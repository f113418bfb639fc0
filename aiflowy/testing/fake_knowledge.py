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
import math
import re
import struct
import zlib

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


def embedding(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    vector = [0.0] * dimensions
    for feature in features(text):
        digest = zlib.crc32(feature.encode())
        vector[digest % dimensions] += 1.0 if digest & 0x80000000 else -1.0
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]


def embeddings_body(body: dict) -> dict:
    texts = body.get("input") or []
    if isinstance(texts, str):
        texts = [texts]
    dimensions = int(body.get("dimensions") or DIMENSIONS)
    as_base64 = body.get("encoding_format") == "base64"

    def encoded(vector: list[float]):
        if not as_base64:
            return vector
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()

    return {
        "object": "list",
        "model": body.get("model", ""),
        "data": [
            {
                "object": "embedding",
                "index": index,
                "embedding": encoded(embedding(str(text), dimensions)),
            }
            for index, text in enumerate(texts)
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
