"""searchEngineNode: a web search through an engine the operator configured (Tinyflow's shape).

``data``: ``engine`` names the engine (the operator's name for it, from the editor's
``searchEngine`` list), ``keyword`` is the query text with placeholders (``{{query}}``;
without it the node's ``query`` parameter is the query, as in older Tinyflow exports) and
``limit`` how many results (text with placeholders; default 10, at most 50). Output:
``documents``, a list of ``{"title", "content", "url", "score"}``.

The engine is looked up when the node runs, through the resolver the project installs with
:func:`configure_search_engines` (the engine itself knows no database). The request goes
through :mod:`aiflowy.outbound`, which refuses private addresses unless the operator marked
the engine as living on a private network. Two kinds of engine:

* ``searxng``: SearXNG's JSON API, ``GET <url>/search?q=…&format=json``;
* ``json``: any JSON-over-HTTP search API: the query goes in a query parameter (GET) or a
  JSON body field (POST), results are read from a dotted path with configurable fields.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiflowy import outbound

from ..errors import DefinitionError, NodeFailed
from ..model import Parameter, loose_text
from ..values import split_path, walk
from .base import NodeContext, NodeType, render, resolve_parameters

DEFAULT_LIMIT = 10
MAX_LIMIT = 50
SEARCH_KINDS = ("searxng", "json")


@dataclass(frozen=True, slots=True)
class SearchEngineConfig:
    """One engine as the operator configured it (see ``workflows.models.SearchEngine``)."""

    name: str
    kind: str
    url: str
    api_key: str = field(default="", repr=False)
    api_key_header: str = "Authorization"
    api_key_prefix: str = "Bearer "
    method: str = "GET"
    query_field: str = "q"
    limit_field: str = ""
    results_path: str = "results"
    title_field: str = "title"
    content_field: str = "content"
    url_field: str = "url"
    extra_params: Mapping[str, str] = field(default_factory=dict)
    allow_private: bool = False
    enabled: bool = True


SearchEngineResolver = Callable[[str], Awaitable[SearchEngineConfig | None]]
_resolver: list[SearchEngineResolver] = []


def configure_search_engines(resolver: SearchEngineResolver | None) -> None:
    """Install (or with ``None`` remove) how engine names are resolved to configurations."""
    _resolver.clear()
    if resolver is not None:
        _resolver.append(resolver)


def parse_config(data: Mapping[str, Any], node_id: str, where: str) -> dict[str, Any]:
    engine = (loose_text(data.get("engine")) or "").strip()
    if not engine:
        raise DefinitionError(
            f"{where}: the search engine node names no engine (engine)", node_id=node_id
        )
    keyword = loose_text(data.get("keyword"))
    limit = loose_text(data.get("limit"))
    return {
        "engine": engine,
        "keyword": keyword if keyword and keyword.strip() else None,
        "limit": limit.strip() if limit and limit.strip() else "",
    }


def declared_outputs(
    data: Mapping[str, Any], params: tuple[Parameter, ...], output_defs: tuple[Parameter, ...]
) -> frozenset[str] | None:
    return frozenset({"documents"})


def _limit(text: str) -> int:
    if not text:
        return DEFAULT_LIMIT
    try:
        number = int(float(text))
    except ValueError:
        raise NodeFailed(f'limit "{text}" is not a number') from None
    return max(1, min(MAX_LIMIT, number))


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _request(engine: SearchEngineConfig, query: str, limit: int) -> tuple[str, str, dict]:
    headers = {"Accept": "application/json"}
    if engine.api_key:
        headers[engine.api_key_header or "Authorization"] = engine.api_key_prefix + engine.api_key
    if engine.kind == "searxng":
        url = engine.url.rstrip("/")
        if not url.endswith("/search"):
            url += "/search"
        params = {**engine.extra_params, "q": query, "format": "json"}
        return "GET", url, {"headers": headers, "params": params}
    if engine.method == "POST":
        body: dict[str, Any] = {**engine.extra_params, engine.query_field: query}
        if engine.limit_field:
            body[engine.limit_field] = limit
        return "POST", engine.url, {"headers": headers, "json": body}
    params = {**engine.extra_params, engine.query_field: query}
    if engine.limit_field:
        params[engine.limit_field] = str(limit)
    return "GET", engine.url, {"headers": headers, "params": params}


def _documents(engine: SearchEngineConfig, payload: Any, limit: int) -> list[dict[str, Any]]:
    path = engine.results_path.strip() or "results"
    parts = split_path(path) if path != "." else []
    results = walk(payload, parts) if parts else payload
    if not isinstance(results, list):
        raise NodeFailed(
            f'search engine "{engine.name}" answered without a result list at "{path}"'
        )
    documents = []
    for item in results[:limit]:
        if not isinstance(item, Mapping):
            documents.append({"title": "", "content": _text(item), "url": "", "score": None})
            continue
        score = item.get("score")
        documents.append(
            {
                "title": _text(item.get(engine.title_field)),
                "content": _text(item.get(engine.content_field)),
                "url": _text(item.get(engine.url_field)),
                "score": score if isinstance(score, int | float) else None,
            }
        )
    return documents


async def execute(ctx: NodeContext) -> dict[str, Any]:
    node, config = ctx.node, ctx.node.config
    params = resolve_parameters(node.parameters, ctx.memory)
    ctx.inputs.update(params)
    if config["keyword"] is not None:
        query = render(ctx, config["keyword"], params).strip()
    else:
        query = _text(params.get("query")).strip()
    if not query:
        raise NodeFailed("the search query is empty (keyword)")
    # A limit placeholder without a value means the default, as in Tinyflow.
    limit_text = render(ctx, config["limit"], params, strict=False).strip()
    limit = _limit("" if "{{" in limit_text else limit_text)
    if not _resolver:
        raise NodeFailed("no search engines are configured")
    engine = await _resolver[0](config["engine"])
    if engine is None:
        raise NodeFailed(f'engine "{config["engine"]}" names no configured search engine')
    if not engine.enabled:
        raise NodeFailed(f'the search engine "{engine.name}" is disabled')
    method, url, request = _request(engine, query, limit)
    ctx.meta.update(engine=engine.name, query=query, limit=limit)
    response = await outbound.fetch(
        method,
        url,
        timeout_s=ctx.limits.http_timeout_s,
        max_bytes=ctx.limits.http_max_response_bytes,
        allow_private=engine.allow_private or ctx.limits.http_allow_private,
        **request,
    )
    if response.status >= 400:
        preview = response.text.strip()[:200]
        raise NodeFailed(
            f'search engine "{engine.name}" answered HTTP {response.status}'
            + (f": {preview}" if preview else "")
        )
    try:
        payload = json.loads(response.text)
    except ValueError:
        raise NodeFailed(f'search engine "{engine.name}" did not answer JSON') from None
    documents = _documents(engine, payload, limit)
    ctx.meta["results"] = len(documents)
    return {"documents": documents}


NODE_TYPE = NodeType(
    name="searchEngineNode",
    execute=execute,
    parse_config=parse_config,
    declared_outputs=declared_outputs,
)
