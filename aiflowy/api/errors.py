"""Errors an external caller sees, and their two renderings.

Services raise these; the endpoint family decides the wire shape: AIFlowy's
`{"errorCode", "message"}` or OpenAI's `{"error": {"message", "type", "param", "code"}}`.
Nothing else is ever shown to a caller: no tracebacks, no upstream error text verbatim.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failure with an HTTP status, a stable machine code and a message fit for the caller."""

    status = 400
    code = "invalid_request"
    openai_type = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401
    code = "invalid_api_key"
    openai_type = "authentication_error"


class Forbidden(ApiError):
    status = 403
    code = "permission_denied"
    openai_type = "permission_error"


class NotFound(ApiError):
    status = 404
    code = "not_found"
    openai_type = "not_found_error"


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"


class RateLimited(ApiError):
    status = 429
    code = "rate_limit_exceeded"
    openai_type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class UpstreamError(ApiError):
    """The model provider failed. `operator_detail` is logged and stored, never sent."""

    status = 502
    code = "upstream_error"
    openai_type = "api_error"

    def __init__(self, message: str, *, operator_detail: str = "") -> None:
        super().__init__(message)
        self.operator_detail = operator_detail or message


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class InternalError(ApiError):
    status = 500
    code = "internal_error"
    openai_type = "api_error"


def aiflowy_error_body(error: ApiError) -> dict[str, Any]:
    """AIFlowy's error shape; `errorCode` is the HTTP status (never 0, which means success)."""
    return {"errorCode": error.status, "message": error.message}


def openai_error_body(error: ApiError) -> dict[str, Any]:
    """OpenAI's error shape, which the openai SDKs parse into their exception classes."""
    return {
        "error": {
            "message": error.message,
            "type": error.openai_type,
            "param": error.param,
            "code": error.code,
        }
    }
