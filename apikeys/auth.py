"""Authentication of external calls by API key: one `authenticate`, and the three ways the
endpoints use it (HTTP consumers, the WebSocket consumer, DRF views), so no endpoint writes
its own prologue.

`Authorization: <key>` (AIFlowy) and `Authorization: Bearer <key>` (OpenAI, FastGPT) are both
accepted. Browsers cannot set headers on a WebSocket: there the key may come as a subprotocol,
`new WebSocket(url, ["aiflowy", "apikey." + key])` (the server answers with `aiflowy`, never
echoing the key), which keeps it out of URLs and so out of access logs; `?api_key=` is still
accepted for older clients (and masked in logs by `aiflowy.logredact`).
"""

from __future__ import annotations

import time

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from aiflowy.background import spawn
from aiflowy.consumers import ApiConsumer, ApiSocketConsumer
from aiflowy.errors import ApiError, Unauthorized
from aiflowy.ratelimit import rate_limit_hit
from apikeys.selectors import ApiKeyPrincipal, api_key_principal_get
from apikeys.services import api_key_mark_used

# A browser's WebSocket offers `SUBPROTOCOL` and `apikey.<key>`; the server picks `SUBPROTOCOL`.
SUBPROTOCOL = "aiflowy"
SUBPROTOCOL_KEY_PREFIX = "apikey."

# `last_used_at` is written at most once a minute per key and process: a write per request
# would put the database on the hot path.
LAST_USED_WRITE_INTERVAL = 60.0
_last_used_written: dict[int, float] = {}


def key_from_authorization(value: str | None) -> str | None:
    """Accept `Authorization: <key>` (AIFlowy) and `Authorization: Bearer <key>` (OpenAI)."""
    if not value:
        return None
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    if rest and scheme.lower() == "bearer":
        value = rest.strip()
    return value or None


async def authenticate(
    authorization: str | None, *, query_key: str | None = None, note_use: bool = True
) -> ApiKeyPrincipal:
    """The caller's key principal, after the rate limit; 401 / 429 otherwise. Its last use
    is written in the background (`note_use=False`: the caller writes it itself)."""
    raw_key = key_from_authorization(authorization) or query_key
    if raw_key is None:
        raise Unauthorized(
            "Missing API key: send the header 'Authorization: Bearer <key>'.",
            code="missing_api_key",
        )
    principal = await api_key_principal_get(raw_key)
    if principal is None:
        raise Unauthorized("Invalid API key.")
    if not principal.enabled:
        raise Unauthorized("This API key is disabled.", code="api_key_disabled")
    if principal.is_expired:
        raise Unauthorized("This API key has expired.", code="api_key_expired")
    await rate_limit_hit(principal.id, principal.rate_limit_per_minute)
    if note_use and _use_due(principal.id):
        spawn(
            database_sync_to_async(api_key_mark_used)(api_key_id=principal.id),
            name="key-last-used",
        )
    return principal


def _use_due(api_key_id: int) -> bool:
    """Whether this process should write the key's `last_used_at` now (and note that it did)."""
    now = time.monotonic()
    if (
        now - _last_used_written.get(api_key_id, -LAST_USED_WRITE_INTERVAL)
        < LAST_USED_WRITE_INTERVAL
    ):
        return False
    _last_used_written[api_key_id] = now
    return True


class ApiKeyConsumer(ApiConsumer):
    """An HTTP endpoint that needs a key: `handle(api_key, body)` runs after authentication."""

    async def handle_request(self, body: bytes) -> None:
        api_key = await authenticate(self.header(b"authorization"))
        await self.handle(api_key, body)

    async def handle(self, api_key: ApiKeyPrincipal, body: bytes) -> None:
        raise NotImplementedError


class ApiKeySocketConsumer(ApiSocketConsumer):
    """A request/answer WebSocket that needs a key, checked when the socket opens and again
    with every request frame (revocation and the rate limit apply to each request)."""

    async def authenticate(self) -> ApiKeyPrincipal:
        return await authenticate(
            self.header(b"authorization"),
            query_key=self.subprotocol_key() or self.query_param("api_key"),
        )

    def subprotocol_key(self) -> str | None:
        for offered in self.scope.get("subprotocols") or ():
            if offered.startswith(SUBPROTOCOL_KEY_PREFIX):
                return offered[len(SUBPROTOCOL_KEY_PREFIX) :] or None
        return None

    async def connect(self) -> None:
        # A browser that offered subprotocols fails the handshake unless one is chosen.
        offered = self.scope.get("subprotocols") or ()
        await self.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        try:
            await self.authenticate()
        except ApiError as error:
            await self.send_error(error)
            await self.close(code=4000 + error.status)


class ApiKeyUser:
    """`request.user` for a key-authenticated DRF call (`request.auth` is the key's principal).
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
    through cleanly; `aiflowy.drf.exception_handler` unwraps it (`api_error`)."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(detail=error.message, code=error.code)
        self.status_code = error.status
        self.api_error = error


class ApiKeyAuthentication(BaseAuthentication):
    """DRF authentication by the same `authenticate` as the consumers: 401 when missing,
    unknown, disabled or expired, 429 over the key's rate limit."""

    def authenticate(self, request: Request) -> tuple[ApiKeyUser, ApiKeyPrincipal]:
        # Under ASGI this runs on the server's event loop (asgiref hands it back there), so the
        # key cache and the rate limiter's Redis client are the ones the consumers use.
        try:
            principal = async_to_sync(authenticate)(
                request.headers.get("Authorization"), note_use=False
            )
        except ApiError as error:
            raise ApiErrorRaised(error) from None
        # This is the view's own thread: a background write from here would outlive it.
        if _use_due(principal.id):
            api_key_mark_used(api_key_id=principal.id)
        return ApiKeyUser(principal), principal

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"
