"""The typed results and events that services and the workflow engine produce, and that the
wire modules (`aiflowy.wire.*`) render for one API family each.

Nothing here knows a wire's casing or envelope: names are Python's, times are seconds or
milliseconds as the field says. A chat answer streams as `str` deltas followed by the LLM
client's `StreamEnd` (`aiflowy.llm`); a workflow run streams the `Run*`/`Node*` events below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ModuleRun:
    """One executed module of an answer, as FastGPT's `detail` reports it. `history` is the
    conversation as the model saw it (stored history and the caller's messages, without the
    bot's own system prompt), as `{"role", "content"}` items; `complete_messages` is
    everything the model saw (system prompt included) followed by its answer. `price` is at
    the operator's prices (0 when none are set). `quotes` are the knowledge-base passages the
    answer drew on: none until a knowledge base feeds the chat module (the seam is
    `chat.services.knowledge_quotes`)."""

    name: str
    kind: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    running_seconds: float
    query: str
    history: list[dict] = field(default_factory=list)
    answer: str = ""
    price: float = 0.0
    max_tokens: int | None = None
    temperature: float | None = None
    complete_messages: list[dict] = field(default_factory=list)
    # FastGPT's `quoteList`: the knowledge-base items this module found or quoted.
    quote_list: list[dict] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    workflow_id: int


@dataclass(frozen=True, slots=True)
class NodeStarted:
    node_id: str
    node_type: str
    title: str


@dataclass(frozen=True, slots=True)
class NodeFinished:
    node_id: str
    node_type: str
    title: str
    status: str
    outputs: dict[str, Any]
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class LlmToken:
    node_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The last event of every run. `run_id` is filled in by the service (the engine does not
    know it)."""

    status: str
    result: dict[str, Any] | None
    error: str | None
    run_id: str = ""
    # A suspended run: what it waits for (nodes, messages, fields).
    waiting_for: list[dict[str, Any]] | None = None


RunEvent = RunStarted | NodeStarted | NodeFinished | LlmToken | RunFinished
