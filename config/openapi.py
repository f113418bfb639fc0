"""The external API's OpenAPI document, its pages and their one registry.

A new API family joins the document with one line in `FAMILIES`: its app's list of
`aiflowy.openapi.Operation`s (docs/openapi.md says how to write one).
"""

from __future__ import annotations

import functools
from pathlib import Path

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from aiflowy.openapi import openapi_document
from chat.openapi import OPERATIONS as CHAT_OPERATIONS
from chat.openapi import SOCKET_SCHEMAS
from knowledge.openapi import OPERATIONS as KNOWLEDGE_OPERATIONS
from shares.openapi import OPERATIONS as SHARE_OPERATIONS
from workflows.openapi import OPERATIONS as WORKFLOW_OPERATIONS

FAMILIES = [
    CHAT_OPERATIONS,
    WORKFLOW_OPERATIONS,
    KNOWLEDGE_OPERATIONS,
    SHARE_OPERATIONS,
]

# Routes deliberately left out of the document, and why (docs/openapi.md). Everything else
# that is routed must be documented (tests/project/test_openapi.py).
NOT_IN_SCHEMA = {
    # The admin's own page: an active staff member's session cookie and X-Requested-With.
    "/api/chat-page/playground/open": "staff-only (admin session)",
    "/api/chat-page/playground/messages": "staff-only (admin session)",
    "/api/chat-page/playground/answer": "staff-only (admin session)",
    # For the operator's load balancer and Prometheus, not for API clients (docs/deploy.md).
    "/healthz": "operations",
    "/readyz": "operations",
    "/metrics": "operations (its own token; 404 unless configured)",
}

DESCRIPTION = """\
LLM bots and workflows behind API keys, in three wire families: AIFlowy (`errorCode`),
OpenAI-compatible (`{"error": {…}}`, with FastGPT's extensions) and the workflow API; FastGPT's
knowledge-base API (`{code, statusText, message, data}`); and the share links' page API.

Every request but the share pages' needs an API key: `Authorization: Bearer <key>`. Errors
come in the family's own shape, with the HTTP status. Streams are server-sent events and
always end with a final event.

**WebSocket** `/ws/v1/aiBot/chat`: each text frame is an externalChat request (plus an
optional `requestId`), answered by frames shaped as `BotChatSocketFrame`. Browsers send the
key as subprotocols: `new WebSocket(url, ["aiflowy", "apikey." + key])`.

**WebSocket** `/ws/v1/workflow/events`: `{"action": "run", "id", "variables"}` starts a
background run and follows it, `{"action": "subscribe", "runId"}` follows one started with the
same key; frames are the workflow run's events (`nodeStarted`, `nodeFinished`, a last
`runFinished`), or an `error` frame with AIFlowy's error body.
"""

REDOC = Path(__file__).resolve().parent.parent / "aiflowy/static/aiflowy/vendor/redoc"


@functools.cache
def schema() -> dict:
    from django.conf import settings

    return openapi_document(
        [operation for family in FAMILIES for operation in family],
        title="aiflowy API",
        version=getattr(settings, "AIFLOWY_API_VERSION", "1"),
        description=DESCRIPTION,
        extra_schemas=SOCKET_SCHEMAS,
    )


@require_GET
def schema_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(schema(), json_dumps_params={"ensure_ascii": False})


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aiflowy API</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/api/schema/"></redoc>
<script src="/api/docs/redoc.standalone.js"></script></body></html>
"""


DOCS_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:"
)


@require_GET
def docs_view(request: HttpRequest) -> HttpResponse:
    """Redoc, served from the vendored bundle: works offline, needs no static-file server. The
    policy keeps the page to this server (Redoc's footer would fetch its logo from a CDN)."""
    response = HttpResponse(DOCS_PAGE)
    response["Content-Security-Policy"] = DOCS_POLICY
    return response


@functools.cache
def _redoc_script() -> bytes:
    return (REDOC / "redoc.standalone.js").read_bytes()


@require_GET
def redoc_script_view(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(_redoc_script(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=86400"
    return response
