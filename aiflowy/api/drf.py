"""DRF plumbing for the external API views that live behind Django (history, management):
key authentication by the same `authenticate()` as the consumers, and one exception handler
that renders our `ApiError`s and DRF's own errors in the endpoint family's error shape.

A view chooses its family with the class attribute `error_body` (`aiflowy_error_body`, the
default, or `openai_error_body`), so one view never mixes two error shapes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.response import Response

from aiflowy.api.auth import authenticate
from aiflowy.api.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    InternalError,
    NotFound,
    RateLimited,
    Unauthorized,
    aiflowy_error_body,
)
from apikeys.selectors import ApiKeyPrincipal

logger = logging.getLogger(__name__)

ErrorBody = Callable[[ApiError], dict[str, Any]]


class ApiKeyUser:
    """`request.user` for a key-authenticated call (`request.auth` is the key's principal).
    Not a Django user: it has no permissions beyond what the key's scope grants."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, principal: ApiKeyPrincipal) -> None:
        self.principal = principal
        self.pk = None

    def __str__(self) -> str:
        return f"API key {self.principal.prefix}…"


class ApiErrorRaised(exceptions.APIException):
    """Carries an `ApiError` through DRF's authentication step, which only lets `APIException`s
    through cleanly; the exception handler unwraps it."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(detail=error.message, code=error.code)
        self.status_code = error.status
        self.error = error


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: <key>` or `Authorization: Bearer <key>`: 401 when missing, unknown,
    disabled or expired, 429 over the key's rate limit, exactly as on the consumers."""

    def authenticate(self, request: Request) -> tuple[ApiKeyUser, ApiKeyPrincipal]:
        # Under ASGI this runs on the server's event loop (asgiref hands it back there), so the
        # key cache and the rate limiter's Redis client are the ones the consumers use.
        try:
            principal = async_to_sync(authenticate)(request.headers.get("Authorization"))
        except ApiError as error:
            raise ApiErrorRaised(error) from None
        return ApiKeyUser(principal), principal

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


def _detail_text(detail: Any, prefix: str = "") -> str:
    """DRF's error detail (a string, list or dict of them) as one readable sentence."""
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            name = field if field != "non_field_errors" else ""
            parts.append(_detail_text(value, f"{prefix}.{name}" if prefix and name else name))
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_detail_text(item, prefix) for item in detail)
    text = str(detail)
    return f"'{prefix}': {text}" if prefix else text


def _first_field(detail: Any) -> str | None:
    if isinstance(detail, dict) and detail:
        field = next(iter(detail))
        return None if field == "non_field_errors" else str(field)
    return None


def api_error_from(exc: Exception) -> ApiError | None:
    """Our error for anything a DRF view may raise; None for what is not an API error."""
    if isinstance(exc, ApiErrorRaised):
        return exc.error
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, Http404):
        return NotFound("Not found.")
    if isinstance(exc, DjangoPermissionDenied):
        return Forbidden("Permission denied.")
    if not isinstance(exc, exceptions.APIException):
        return None
    if isinstance(exc, exceptions.Throttled):
        return RateLimited(str(exc.detail), retry_after=max(1, int(exc.wait or 1)))
    message = _detail_text(exc.detail)
    param = _first_field(exc.detail)
    by_status = {400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound}
    error_class = by_status.get(exc.status_code, ApiError)
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else None
    error = error_class(message, code=code, param=param)
    error.status = exc.status_code
    return error


def exception_handler(exc: Exception, context: dict) -> Response:
    """`REST_FRAMEWORK["EXCEPTION_HANDLER"]`: every failure as JSON in the view's family shape,
    with its status and headers (`Retry-After` on 429, `WWW-Authenticate` on 401)."""
    error = api_error_from(exc)
    if error is None:
        view = context.get("view")
        logger.exception("Unhandled error in %s", type(view).__name__, exc_info=exc)
        error = InternalError("Internal error; the operator has the details.")
    # Looked up on the class, so a plain function assigned there is not bound as a method.
    render: ErrorBody = getattr(type(context.get("view")), "error_body", aiflowy_error_body)
    headers = dict(error.headers)
    if error.status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return Response(render(error), status=error.status, headers=headers)
