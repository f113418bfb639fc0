"""The errors an external caller can see, independent of any wire format.

Services, the LLM client and the workflow layer raise these; each API family's wire module
(`aiflowy.wire.*`) renders them, so an error carries only what every family needs: an HTTP
status, a stable machine `code`, a `message` fit for the caller and the `param` at fault.
No wire attributes (no OpenAI `type`, no AIFlowy `errorCode`) live here.

`as_api_error` is the one place where an arbitrary exception becomes an `ApiError`: anything
that is not already one is logged with its traceback and shown as a 500 whose text says
nothing about the failure (the operator has the log).
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """A failure with an HTTP status, a stable machine code and a message fit for the caller."""

    status = 400
    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.param = param
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401
    code = "invalid_api_key"


class Forbidden(ApiError):
    status = 403
    code = "permission_denied"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"


class RateLimited(ApiError):
    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class InternalError(ApiError):
    status = 500
    code = "internal_error"


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"


class UpstreamError(ApiError):
    """The model provider failed. `operator_detail` is logged and stored, never sent."""

    status = 502
    code = "upstream_error"

    def __init__(self, message: str, *, operator_detail: str = "") -> None:
        super().__init__(message)
        self.operator_detail = operator_detail or message


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class RunFailed(ApiError):
    """A workflow run ended without a result; the message names the failing node. The run's
    id and the node's id are facts a caller may act on (look the run up, fix the node)."""

    status = 500
    code = "workflow_failed"

    def __init__(self, message: str, *, run_id: str, node_id: str | None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.node_id = node_id


class RunTimedOut(RunFailed):
    status = 504
    code = "workflow_timeout"


INTERNAL_ERROR_MESSAGE = "Internal error; the operator has the details."


UNAVAILABLE_MESSAGE = "A service this API depends on is unavailable; retry in a few seconds."
UNAVAILABLE_RETRY_AFTER_SECONDS = 2
# A store that cannot be reached (or answered too late: connect, pool and statement timeouts)
# is a 503 the caller may retry, not a bug. Named, not imported: this module imports no
# Django or driver (docs/architecture.md).
_UNAVAILABLE_ERRORS = frozenset(
    {
        ("django.db.utils", "OperationalError"),
        ("django.db.utils", "InterfaceError"),
        ("psycopg", "OperationalError"),
        ("psycopg_pool", "PoolTimeout"),
        ("redis.exceptions", "ConnectionError"),
        ("redis.exceptions", "TimeoutError"),
    }
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says a database or Redis could not be reached in time."""
    return any((cls.__module__, cls.__name__) in _UNAVAILABLE_ERRORS for cls in type(exc).__mro__)


def as_api_error(exc: BaseException, *, where: str = "") -> ApiError:
    """`exc` as the error a caller may see. Unexpected exceptions are logged here, once, with
    their traceback, and become a 500 that does not repeat their text; a store that cannot be
    reached is a 503 with `Retry-After`, logged in one line."""
    if isinstance(exc, ApiError):
        return exc
    if is_unavailable(exc):
        logger.warning(
            "Service unavailable%s: %s: %s",
            f" in {where}" if where else "",
            type(exc).__name__,
            str(exc)[:300],
        )
        return ServiceUnavailable(
            UNAVAILABLE_MESSAGE,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
        )
    logger.error("Unhandled error%s", f" in {where}" if where else "", exc_info=exc)
    return InternalError(INTERNAL_ERROR_MESSAGE)
