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
import socket
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import aiohttp
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
    # OpenAI's newer name for the reply limit; reasoning models accept only this one.
    max_completion_tokens: int | None = None
    # The caller's other OpenAI request fields (tools, response_format, seed, ...), already
    # validated, sent as they came.
    extra: Mapping[str, object] | None = None


@dataclass(slots=True)
class Completion:
    """The whole answer. `content` and `tool_calls` are choice 0's, as history stores them;
    `choices` are the provider's own (every field of each message, `logprobs`, several
    choices for `n`), empty for the echo provider."""

    content: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    model: str = ""
    choices: list[dict] = field(default_factory=list)
    tool_calls: list[dict] | None = None
    system_fingerprint: str | None = None
    # The provider's usage fields beyond the three counts (`prompt_tokens_details`, ...).
    usage_details: dict | None = None


@dataclass(slots=True)
class StreamDelta:
    """A streamed piece that is not plain text of choice 0: tool call deltas, a refusal,
    logprobs, or any piece of another choice (`n` > 1). `delta` is the provider's own, less its
    `role` (the wire adds it on each choice's first chunk); `finish_reason` is set only for
    choices other than 0, whose end `StreamEnd` reports."""

    index: int
    delta: dict
    logprobs: dict | None = None
    finish_reason: str | None = None


@dataclass(slots=True)
class StreamEnd:
    """The last item of `llm_stream`: token usage and why generation stopped."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    model: str = ""
    tool_calls: list[dict] | None = None
    system_fingerprint: str | None = None
    usage_details: dict | None = None


@dataclass(frozen=True, slots=True)
class _Upstream:
    """A provider's client and what every call to it passes, built once with the client."""

    version: str
    client: openai.AsyncOpenAI
    # The absolute URL: a path relative to `base_url` is parsed and joined again per call.
    url: str


@dataclass(slots=True)
class _Clients:
    by_provider: dict[int, _Upstream] = field(default_factory=dict)


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
# The options of every call, built once. The two telemetry headers the SDK adds per request
# are dropped per request. The idempotency key is the SDK's own for its retries (which are off);
# the OpenAI client sends it in no header, and a given one spares a `uuid4()` per call.
_REQUEST_OPTIONS: openai.RequestOptions = {
    "headers": {
        "X-Stainless-Retry-Count": openai.Omit(),
        "X-Stainless-Read-Timeout": openai.Omit(),
    },
    "idempotency_key": "aiflowy-no-retries",
}
# Chunks as the SSE decoder parsed them (dicts): with `object` the SDK hands them over as they
# are, instead of rebuilding every value of every chunk against the type (`construct_type`).
_CHUNK_STREAM = openai.AsyncStream[object]

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Clients] = (
    weakref.WeakKeyDictionary()
)


def upstream_client(provider: ProviderConfig) -> openai.AsyncOpenAI:
    """The cached client for this provider (rebuilt when the provider's settings change)."""
    return _upstream(provider).client


def _upstream(provider: ProviderConfig) -> _Upstream:
    clients = _clients.get(asyncio.get_running_loop())
    if clients is not None:
        cached = clients.by_provider.get(provider.id)
        if cached is not None and cached.version == provider.version:
            return cached
    else:
        clients = _clients.setdefault(asyncio.get_running_loop(), _Clients())
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
    # `base_url` always ends with "/" (the SDK enforces it).
    upstream = _Upstream(provider.version, client, f"{client.base_url}chat/completions")
    clients.by_provider[provider.id] = upstream
    return upstream


async def upstream_post(provider: ProviderConfig, path: str, body: Mapping) -> bytes:
    """POST `body` to the provider's `path` (e.g. "embeddings", "rerank") through its cached
    SDK client, as chat does: options built once, the body sent as given, the answer's raw
    bytes back (the caller parses them; the SDK's models would rebuild every value). Errors
    are the SDK's own (`openai.RateLimitError`, `openai.APIConnectionError`, ...)."""
    upstream = _upstream(provider)
    response = await upstream.client.post(
        f"{upstream.client.base_url}{path.lstrip('/')}",
        body=body,
        cast_to=httpx2.Response,
        options=_REQUEST_OPTIONS,
    )
    return response.content


async def upstream_clients_close() -> None:
    """Close the running event loop's upstream clients and their connections (at shutdown, or
    when a short-lived loop ends); later calls open new ones."""
    clients = _clients.pop(asyncio.get_running_loop(), None)
    if clients is not None:
        for upstream in clients.by_provider.values():
            await upstream.client.close()


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
    return sum(estimate_tokens(content_text(m.get("content"))) + 4 for m in messages)


def _request_body(messages: list[dict], params: GenerationParams) -> dict:
    """The chat completion request, already validated by us: it is sent through the client's
    low-level `post()`, which skips the SDK's per-call TypedDict transform and pydantic parsing
    (about 1 ms a call here) but keeps its transport, auth, timeouts and exception classes."""
    body: dict = {"model": params.model, "messages": messages}
    for name in ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "user"):
        value = getattr(params, name)
        if value is not None:
            body[name] = value
    if params.extra:
        body.update(params.extra)
    return body


_USAGE_COUNTS = frozenset({"prompt_tokens", "completion_tokens", "total_tokens"})


def _usage_details(usage: dict) -> dict | None:
    """The provider's usage fields beyond the counts, when it sent any that are not null."""
    if usage.keys() <= _USAGE_COUNTS:
        return None
    return {k: v for k, v in usage.items() if k not in _USAGE_COUNTS and v is not None} or None


# Why a connection could not be made, by the exception found in the failure's chain: the first
# match names the kind the operator reads. The openai SDK reports all of them as a timeout
# (aiohttp's connector errors become httpx's `ConnectTimeout`), so they are told apart here.
_CONNECT_FAILURES: tuple[tuple[type[BaseException], str], ...] = (
    (ConnectionRefusedError, "connection refused"),
    (socket.gaierror, "DNS failure"),
    (aiohttp.ClientConnectorDNSError, "DNS failure"),
    (ssl.SSLError, "TLS failure"),
    (ssl.CertificateError, "TLS failure"),
    (aiohttp.ClientSSLError, "TLS failure"),
    (ConnectionResetError, "connection reset"),
    (aiohttp.ClientConnectorError, "connection failed"),
)


def _connect_failure(exc: BaseException) -> tuple[str, BaseException] | None:
    """The kind of connection failure behind `exc` and the exception that says it, or None
    (a real timeout, or a failure after the connection was made)."""
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(seen) < 10:
        seen.append(cause)
        cause = cause.__cause__ or cause.__context__
    for kind, name in _CONNECT_FAILURES:
        for cause in seen:
            if isinstance(cause, kind):
                return name, cause
    return None


def _upstream_error(exc: Exception, provider: ProviderConfig) -> UpstreamError:
    failure = (
        _connect_failure(exc)
        if isinstance(exc, openai.APIConnectionError | aiohttp.ClientError | OSError)
        else None
    )
    kind = (
        failure[0].replace(" ", "_")
        if failure is not None
        else "timeout"
        if isinstance(exc, openai.APITimeoutError)
        else f"http_{exc.status_code}"
        if isinstance(exc, openai.APIStatusError)
        else "connection"
        if isinstance(exc, openai.APIConnectionError)
        else "invalid"
    )
    metrics.UPSTREAM_ERRORS.labels(str(provider.id), kind).inc()
    if failure is not None:
        _, cause = failure
        error: UpstreamError = UpstreamError(
            "The model provider could not be reached or closed the connection.",
            operator_detail=(
                f"provider {provider.id}: {failure[0]}: {type(cause).__name__}: {cause}"
            ),
        )
    elif isinstance(exc, openai.APITimeoutError):
        error = UpstreamTimeout(
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


def content_text(content: object) -> str:
    """A message's text: the string itself, or its text parts joined (images and other media
    parts have none)."""
    if type(content) is str:
        return content
    if type(content) is list:
        return "".join(
            part.get("text") or ""
            for part in content
            if type(part) is dict and part.get("type") == "text"
        )
    return ""


def _last_user_text(messages: list[Mapping]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def _echo_reply(messages: list[Mapping]) -> str:
    return f"Echo: {_last_user_text(messages)}"


def _tool_calls(message: Mapping) -> list[dict] | None:
    """A message's tool calls, with the old `function_call` as a call of its own."""
    calls = message.get("tool_calls")
    if calls:
        return calls
    function_call = message.get("function_call")
    if function_call:
        return [{"id": "", "type": "function", "function": function_call}]
    return None


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
        upstream = _upstream(provider)
        response = await upstream.client.post(
            upstream.url,
            body=_request_body(messages, params),
            cast_to=httpx2.Response,
            options=_REQUEST_OPTIONS,
        )
        data = json.loads(response.content)
        choices = data["choices"]
        choice = choices[0]
        message = choice["message"]
        content = message.get("content") or ""
        tool_calls = _tool_calls(message)
        usage = data.get("usage") or {}
        usage_details = _usage_details(usage)
    except openai.OpenAIError as exc:
        raise _upstream_error(exc, provider) from None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise _upstream_error(exc, provider) from None
    finally:
        upstream_waited(time.perf_counter() - started)
    return Completion(
        content=content,
        prompt_tokens=usage.get("prompt_tokens") or _messages_tokens(messages),
        completion_tokens=usage.get("completion_tokens") or estimate_tokens(content),
        finish_reason=choice.get("finish_reason") or "stop",
        model=data.get("model") or params.model,
        choices=choices,
        tool_calls=tool_calls,
        system_fingerprint=data.get("system_fingerprint"),
        usage_details=usage_details,
    )


# A choice-0 delta with only these keys is plain text: the hot path yields its text as a `str`.
_TEXT_DELTA_KEYS = frozenset({"role", "content"})
_ROLE_KEY = frozenset({"role"})


def _delta_rest(delta: dict, without: frozenset[str]) -> dict:
    """`delta` less the keys `without` and the empty values (null, "")."""
    return {k: v for k, v in delta.items() if k not in without and v is not None and v != ""}


def _tool_calls_seen(calls: list[dict], piece: dict) -> None:
    if piece.get("tool_calls"):
        _tool_call_merged(calls, piece["tool_calls"])
    elif piece.get("function_call"):
        _tool_call_merged(calls, [piece["function_call"]])


def delta_text(item: str | StreamDelta) -> str:
    """The text of choice 0 in a streamed piece (none in tool calls or other choices)."""
    if type(item) is str:
        return item
    if item.index == 0:
        return item.delta.get("content") or ""
    return ""


def _tool_call_merged(calls: list[dict], pieces: list[dict]) -> None:
    """Accumulate OpenAI's indexed tool call deltas into whole calls (for history)."""
    for piece in pieces:
        index = piece.get("index", len(calls))
        while len(calls) <= index:
            calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        call = calls[index]
        if piece.get("id"):
            call["id"] = piece["id"]
        if piece.get("type"):
            call["type"] = piece["type"]
        function = piece.get("function") or {}
        if function.get("name"):
            call["function"]["name"] += function["name"]
        if function.get("arguments"):
            call["function"]["arguments"] += function["arguments"]


async def llm_stream(
    provider: ProviderConfig, messages: list[dict], params: GenerationParams
) -> AsyncIterator[str | StreamDelta | StreamEnd]:
    """Text deltas of choice 0 as the upstream sends them (`str`), any other piece as a
    `StreamDelta`, then one `StreamEnd`.

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
    tool_calls: list[dict] = []
    finish_reason: str | None = None
    usage: dict = {}
    model = params.model
    fingerprint: str | None = None
    started = time.perf_counter()
    try:
        upstream = _upstream(provider)
        stream = await upstream.client.post(
            upstream.url,
            body={
                **_request_body(messages, params),
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            cast_to=object,
            stream=True,
            stream_cls=_CHUNK_STREAM,
            options=_REQUEST_OPTIONS,
        )
        async with stream:
            async for chunk in stream:
                if chunk.get("usage"):
                    usage = chunk["usage"]
                model = chunk.get("model") or model
                fingerprint = chunk.get("system_fingerprint") or fingerprint
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    index = choice.get("index") or 0
                    logprobs = choice.get("logprobs")
                    if index == 0 and logprobs is None:
                        # Choice 0's text goes as a `str` (what every consumer reads); other
                        # fields of the same delta (tool calls, refusal, a provider's
                        # `reasoning_content`) follow as a `StreamDelta`.
                        text = delta.get("content")
                        if text:
                            produced.append(text)
                            yield text
                        if not delta.keys() <= _TEXT_DELTA_KEYS and (
                            rest := _delta_rest(delta, _TEXT_DELTA_KEYS)
                        ):
                            _tool_calls_seen(tool_calls, rest)
                            yield StreamDelta(0, rest)
                    else:
                        # With logprobs, or another choice: the delta as it came.
                        piece = _delta_rest(delta, _ROLE_KEY)
                        if index == 0:
                            if piece.get("content"):
                                produced.append(piece["content"])
                            _tool_calls_seen(tool_calls, piece)
                        other_finish = choice.get("finish_reason") if index else None
                        if piece or logprobs or other_finish:
                            yield StreamDelta(index, piece, logprobs, other_finish)
                    if index == 0 and choice.get("finish_reason"):
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
        tool_calls=tool_calls or None,
        system_fingerprint=fingerprint,
        usage_details=_usage_details(usage),
    )
