"""DRF plumbing for the external API views that live behind Django (the history API): one
exception handler that renders our `ApiError`s and DRF's own errors with the view's wire
module, so a DRF view answers exactly like a consumer of its family.

A view chooses its family with the class attribute `wire` (`aiflowy.wire.aiflowy`, the
default, or `aiflowy.wire.openai`), so one view never mixes two error shapes. Key
authentication for these views is `apikeys.auth.ApiKeyAuthentication`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from aiflowy.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
    as_api_error,
)
from aiflowy.wire import aiflowy as aiflowy_wire


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
    carried = getattr(exc, "api_error", None)  # raised from an authentication class
    if isinstance(carried, ApiError):
        return carried
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
    return error_class(message, code=code, param=param, status=exc.status_code)


def exception_handler(exc: Exception, context: dict) -> Response:
    """`REST_FRAMEWORK["EXCEPTION_HANDLER"]`: every failure as JSON in the view's family shape,
    with its status and headers (`Retry-After` on 429, `WWW-Authenticate` on 401)."""
    view = context.get("view")
    error = api_error_from(exc) or as_api_error(exc, where=type(view).__name__)
    wire = getattr(type(view), "wire", aiflowy_wire)
    headers = dict(error.headers)
    if error.status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return Response(wire.error_body(error), status=error.status, headers=headers)


class ApiView(APIView):
    """The base of the external DRF views: a wrong method is a 405 before the key is checked,
    as on the consumers (DRF alone authenticates first)."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if request.method.lower() not in self.http_method_names or not hasattr(
            self, request.method.lower()
        ):
            self.http_method_not_allowed(request, *args, **kwargs)
        super().initial(request, *args, **kwargs)
