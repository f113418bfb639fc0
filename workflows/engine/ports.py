"""What the engine needs from the outside world: an LLM, knowledge-base search, and its
resource limits.

The engine is plain async Python with no Django in it; the project plugs its LLM client in
through :class:`LlmPort`, and tests plug in a fake.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

TokenCallback = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LlmAnswer:
    """A complete model answer with its token usage."""

    content: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""


@runtime_checkable
class LlmPort(Protocol):
    """Chat with the model (or bot) that an ``llmNode`` names in ``llmId``.

    ``on_token`` is given only when somebody listens to the run's events; an implementation
    that streams should await it with each text delta. Raise an exception with a readable
    message on failure: it becomes the node's error text.
    """

    async def chat(
        self,
        llm_id: str | int | None,
        messages: list[dict],
        *,
        temperature: float | None,
        top_p: float | None,
        max_tokens: int | None,
        on_token: TokenCallback | None,
    ) -> LlmAnswer: ...


@runtime_checkable
class KnowledgePort(Protocol):
    """Search the knowledge base a ``knowledgeNode`` names in ``knowledgeId``: the best
    ``limit`` items for ``query`` as ``{id, q, a, source, score}`` dicts, best first.
    ``search_mode`` and ``min_score`` of None mean the knowledge base's defaults. Raise an
    exception with a readable message on failure (an unknown knowledge base, say)."""

    async def search(
        self,
        knowledge_id: str | int | None,
        query: str,
        *,
        limit: int,
        min_score: float | None,
        search_mode: str | None,
    ) -> list[dict]: ...


@dataclass(frozen=True, slots=True)
class EngineLimits:
    """Resource limits of one run; every field can be overridden per deployment or test."""

    run_timeout_s: float = 300.0
    node_timeout_s: float = 60.0
    js_timeout_ms: int = 1000
    js_memory_mb: int = 32
    http_timeout_s: float = 30.0
    http_max_response_bytes: int = 5_000_000
    http_allow_private: bool = False
    max_parallel_nodes: int = 8
    # Node-loop re-runs plus loopNode iterations allowed in one run (Tinyflow has no cap).
    max_loop_iterations: int = 10_000
