"""The one place that turns a provider, messages and settings into an answer.

Plain async Python with no Django in it (importable and testable without settings): chat
endpoints and workflow LLM nodes both call `llm_complete` / `llm_stream`. Every upstream
call goes through `openai.AsyncOpenAI`, one client per provider and event loop (connections
are reused), with no retries on the hot path: a retry would double the caller's wait, and the
caller can retry itself. Upstream failures become `UpstreamError` (502) or `UpstreamTimeout`
(504) with a message safe to show the caller; the upstream's own text is kept in
`operator_detail` for logs and history only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import httpx2
import openai

from aiflowy import metrics
from aiflowy.errors import UpstreamError, UpstreamTimeout
from aiflowy.requestcontext import upstream_waited

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """An OpenAI-compatible endpoint (or the offline `echo` provider) as the client needs it."""

    id: int
    kind: str
    base_url: str
    api_key: str = field(repr=False)
    default_model: str
    timeout_seconds: float
    # Changes whenever the provider is edited, so cached upstream clients are rebuilt.
    version: str


@dataclass(frozen=True, slots=True)
class GenerationParams:
    model: str
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    user: str | None = None


@dataclass(slots=True)
class Completion:
    content: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    model: str = ""


@dataclass(slots=True)
class StreamEnd:
    """The last item of `llm_stream`: token usage and why generation stopped."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    model: str = ""


@dataclass(slots=True)
class _Clients:
    by_provider: dict[int, tuple[str, openai.AsyncOpenAI]] = field(default_factory=dict)


# The SDK's `X-Stainless-*` headers tell every provider our OS, architecture and runtime, and
# header handling is a measurable share of each call: they are not sent.
_NO_SDK_TELEMETRY = {
    name: openai.Omit()
    for name in (
        "X-Stainless-Arch",
        "X-Stainless-Async",
        "X-Stainless-Lang",
        "X-Stainless-OS",
        "X-Stainless-Package-Version",
        "X-Stainless-Runtime",
        "X-Stainless-Runtime-Version",
    )
}
# These two are added per request, so they are dropped per request.
_NO_SDK_REQUEST_TELEMETRY = {
    "options": {
        "headers": {
            "X-Stainless-Retry-Count": openai.Omit(),
            "X-Stainless-Read-Timeout": openai.Omit(),
        }
    }
}

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Clients] = (
    weakref.WeakKeyDictionary()
)


def upstream_client(provider: ProviderConfig) -> openai.AsyncOpenAI:
    """The cached client for this provider (rebuilt when the provider's settings change)."""
    clients = _clients.setdefault(asyncio.get_running_loop(), _Clients())
    cached = clients.by_provider.get(provider.id)
    if cached is not None and cached[0] == provider.version:
        return cached[1]
    client = openai.AsyncOpenAI(
        api_key=provider.api_key or "not-needed",
        base_url=provider.base_url or None,
        timeout=provider.timeout_seconds,
        max_retries=0,
        # openai's aiohttp transport (the `openai[aiohttp]` extra): its C HTTP parser costs
        # about a third of the default httpx transport per call (docs/benchmarks.md).
        http_client=openai.DefaultAioHttpClient(),
        default_headers=_NO_SDK_TELEMETRY,
    )
    clients.by_provider[provider.id] = (provider.version, client)
    return client


async def upstream_clients_close() -> None:
    """Close the running event loop's upstream clients and their connections (at shutdown, or
    when a short-lived loop ends); later calls open new ones."""
    clients = _clients.pop(asyncio.get_running_loop(), None)
    if clients is not None:
        for _version, client in clients.by_provider.values():
            await client.close()


@contextlib.asynccontextmanager
async def upstream_clients_closed() -> AsyncIterator[None]:
    """Close this event loop's upstream clients on exit (for code that owns a short-lived loop,
    such as a test or a management command; servers keep theirs for the process's life)."""
    try:
        yield
    finally:
        await upstream_clients_close()


def estimate_tokens(text: str) -> int:
    """A rough count for providers that report no usage: CJK characters count one each,
    other text one per four characters."""
    cjk = len(re.findall(r"[\u3000-\u9fff\uac00-\ud7af\uff00-\uffef]", text))
    return cjk + (len(text) - cjk + 3) // 4


def _messages_tokens(messages: list[Mapping]) -> int:
    return sum(estimate_tokens(str(m.get("content") or "")) + 4 for m in messages)


def _request_body(messages: list[dict], params: GenerationParams) -> dict:
    """The chat completion request, already validated by us: it is sent through the client's
    low-level `post()`, which skips the SDK's per-call TypedDict transform and pydantic parsing
    (about 1 ms a call here) but keeps its transport, auth, timeouts and exception classes."""
    body: dict = {"model": params.model, "messages": messages}
    for name in ("temperature", "top_p", "max_tokens", "stop", "user"):
        value = getattr(params, name)
        if value is not None:
            body[name] = value
    return body


def _upstream_error(exc: Exception, provider: ProviderConfig) -> UpstreamError:
    kind = (
        "timeout"
        if isinstance(exc, openai.APITimeoutError)
        else f"http_{exc.status_code}"
        if isinstance(exc, openai.APIStatusError)
        else "connection"
        if isinstance(exc, openai.APIConnectionError)
        else "invalid"
    )
    metrics.UPSTREAM_ERRORS.labels(str(provider.id), kind).inc()
    if isinstance(exc, openai.APITimeoutError):
        error: UpstreamError = UpstreamTimeout(
            "The model provider did not answer in time.",
            operator_detail=f"provider {provider.id}: timeout after {provider.timeout_seconds}s",
        )
    elif isinstance(exc, openai.APIStatusError):
        error = UpstreamError(
            f"The model provider returned an error (HTTP {exc.status_code}).",
            operator_detail=f"provider {provider.id}: HTTP {exc.status_code}: {exc.message}",
        )
    elif isinstance(exc, openai.APIConnectionError):
        error = UpstreamError(
            "The model provider could not be reached or closed the connection.",
            operator_detail=f"provider {provider.id}: {type(exc.__cause__ or exc).__name__}: "
            f"{exc.__cause__ or exc}",
        )
    else:
        error = UpstreamError(
            "The model provider sent an invalid answer.",
            operator_detail=f"provider {provider.id}: {type(exc).__name__}: {exc}",
        )
    logger.warning("Upstream LLM failure: %s", error.operator_detail)
    return error


def _last_user_text(messages: list[Mapping]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def _echo_reply(messages: list[Mapping]) -> str:
    return f"Echo: {_last_user_text(messages)}"


async def llm_complete(
    provider: ProviderConfig, messages: list[dict], params: GenerationParams
) -> Completion:
    """The whole answer at once."""
    if provider.kind == "echo":
        content = _echo_reply(messages)
        return Completion(
            content, _messages_tokens(messages), estimate_tokens(content), "stop", params.model
        )
    started = time.perf_counter()
    try:
        response = await upstream_client(provider).post(
            "/chat/completions",
            body=_request_body(messages, params),
            cast_to=httpx2.Response,
            **_NO_SDK_REQUEST_TELEMETRY,
        )
        data = json.loads(response.content)
        choice = data["choices"][0]
        content = choice["message"].get("content") or ""
    except openai.OpenAIError as exc:
        raise _upstream_error(exc, provider) from None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise _upstream_error(exc, provider) from None
    finally:
        upstream_waited(time.perf_counter() - started)
    usage = data.get("usage") or {}
    return Completion(
        content=content,
        prompt_tokens=usage.get("prompt_tokens") or _messages_tokens(messages),
        completion_tokens=usage.get("completion_tokens") or estimate_tokens(content),
        finish_reason=choice.get("finish_reason") or "stop",
        model=data.get("model") or params.model,
    )


async def llm_stream(
    provider: ProviderConfig, messages: list[dict], params: GenerationParams
) -> AsyncIterator[str | StreamEnd]:
    """Text deltas as the upstream sends them, then one `StreamEnd`.

    Cancelling the consuming task closes the upstream response, which cancels generation there.
    """
    if provider.kind == "echo":
        content = _echo_reply(messages)
        for piece in re.findall(r"\S+\s*|\s+", content):
            yield piece
            await asyncio.sleep(0)
        yield StreamEnd(_messages_tokens(messages), estimate_tokens(content), "stop", params.model)
        return

    produced: list[str] = []
    finish_reason: str | None = None
    usage: dict = {}
    model = params.model
    started = time.perf_counter()
    try:
        stream = await upstream_client(provider).post(
            "/chat/completions",
            body={
                **_request_body(messages, params),
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            cast_to=dict,
            stream=True,
            stream_cls=openai.AsyncStream[dict],
            **_NO_SDK_REQUEST_TELEMETRY,
        )
        async with stream:
            async for chunk in stream:
                if chunk.get("usage"):
                    usage = chunk["usage"]
                model = chunk.get("model") or model
                for choice in chunk.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        produced.append(text)
                        yield text
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
    except openai.OpenAIError as exc:
        raise _upstream_error(exc, provider) from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _upstream_error(exc, provider) from None
    finally:
        upstream_waited(time.perf_counter() - started)
    if finish_reason is None:
        metrics.UPSTREAM_ERRORS.labels(str(provider.id), "ended_early").inc()
        raise UpstreamError(
            "The model provider ended the answer early.",
            operator_detail=f"provider {provider.id}: stream ended without a finish_reason",
        )
    content = "".join(produced)
    yield StreamEnd(
        prompt_tokens=usage.get("prompt_tokens") or _messages_tokens(messages),
        completion_tokens=usage.get("completion_tokens") or estimate_tokens(content),
        finish_reason=finish_reason,
        model=model,
    )
