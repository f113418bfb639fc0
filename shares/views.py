"""The chat page itself (HTML) and its two assets. One template serves share links and the
playground; its script talks to the endpoints in `shares/routing.py`.

The page is rendered by Django (for the browser's language, the visitor cookie and the admin
session) under a strict Content-Security-Policy: scripts and styles from this origin only,
no inline script, no `eval`, no plugin, images only from this origin or `data:`. Answers are
sanitised HTML (`aiflowy.markdown`); the CSP is the second wall.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from bots.models import Bot
from shares.consumers import VISITOR_COOKIE, VISITOR_SALT, visitor_id_from_cookie

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_ASSETS_DIR = Path(__file__).resolve().parent / "page"
_ASSET_TYPES = {"chat.js": "text/javascript; charset=utf-8", "chat.css": "text/css; charset=utf-8"}


def _asset_version(name: str) -> str:
    return hashlib.sha256((_ASSETS_DIR / name).read_bytes()).hexdigest()[:12]


def _page_strings() -> dict[str, str]:
    """The script's words, in the request's language."""
    return {
        "send": _("Send"),
        "stop": _("Stop"),
        "newChat": _("New chat"),
        "history": _("Your chats"),
        "noChats": _("No chats yet."),
        "placeholder": _("Ask a question…"),
        "keysHint": _("Enter to send, Shift+Enter for a new line"),
        "thinking": _("…"),
        "stopped": _("Stopped."),
        "detail": _("Detail"),
        "prompt": _("Prompt sent"),
        "quotes": _("Quotes"),
        "noQuotes": _("No quotes."),
        "tokens": _("Tokens"),
        "timings": _("Timings"),
        "model": _("Model"),
        "firstToken": _("first token"),
        "total": _("total"),
        "copy": _("Copy"),
        "copied": _("Copied"),
        "networkError": _("The connection was lost. Please try again."),
        "you": _("You"),
        "untitled": _("Untitled chat"),
        "menu": _("Chats"),
    }


def _render_page(request: HttpRequest, config: dict) -> HttpResponse:
    config["strings"] = _page_strings()
    response = render(
        request,
        "shares/chat_page.html",
        {
            "config": config,
            "script_url": reverse("shares:asset", args=["chat.js"])
            + f"?v={_asset_version('chat.js')}",
            "style_url": reverse("shares:asset", args=["chat.css"])
            + f"?v={_asset_version('chat.css')}",
        },
    )
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    # The URL may carry an authToken: never send it on as a Referer.
    response["Referrer-Policy"] = "no-referrer"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def share_page(request: HttpRequest) -> HttpResponse:
    """`/chat/share?shareId=…[&authToken=…]`. Whether the link is usable is said by the
    page's first call (`open`), which also asks the link's auth server."""
    config = {
        "mode": "share",
        "shareId": request.GET.get("shareId", "")[:64],
        "authToken": request.GET.get("authToken", "")[:1000],
        "endpoints": {
            "open": "/api/chat-page/share/open",
            "messages": "/api/chat-page/share/messages",
            "answer": "/api/chat-page/share/answer",
        },
    }
    response = _render_page(request, config)
    if not visitor_id_from_cookie(request.COOKIES.get(VISITOR_COOKIE)):
        response.set_cookie(
            VISITOR_COOKIE,
            signing.dumps(secrets.token_urlsafe(16), salt=VISITOR_SALT),
            max_age=365 * 24 * 3600,
            httponly=True,
            samesite="Lax",
            secure=request.is_secure(),
        )
    return response


@staff_member_required
@require_GET
def playground_page_view(request: HttpRequest, bot_id: int) -> HttpResponse:
    """The playground: the same page, for a staff member, with every detail shown."""
    bot = get_object_or_404(Bot, pk=bot_id)
    config = {
        "mode": "playground",
        "botId": bot.pk,
        "adminUrl": reverse("admin:bots_bot_change", args=[bot.pk]),
        "endpoints": {
            "open": "/api/chat-page/playground/open",
            "messages": "/api/chat-page/playground/messages",
            "answer": "/api/chat-page/playground/answer",
        },
    }
    return _render_page(request, config)


@require_GET
def page_asset(request: HttpRequest, name: str) -> HttpResponse:
    """The page's script and style, served by the app itself, so that the page works
    wherever the project runs (Daphne serves no static files)."""
    content_type = _ASSET_TYPES.get(name)
    if content_type is None:
        raise Http404
    response = HttpResponse((_ASSETS_DIR / name).read_bytes(), content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    max_age = 0 if settings.DEBUG else 31_536_000
    response["Cache-Control"] = f"public, max-age={max_age}, immutable"
    return response
