"""Outbound HTTP for user-controlled URLs, with SSRF protection.

Everything in aiflowy that fetches a URL a user typed (the workflow ``httpNode`` first of all)
goes through :func:`fetch`. The address check happens where the socket is opened: a custom
httpcore network backend resolves the host, refuses the connection if *any* resolved address
is private, loopback, link-local, multicast, reserved or unspecified (IPv4 and IPv6, including
IPv4-mapped, 6to4, Teredo and NAT64 forms), and then connects to the very address it checked.
DNS rebinding therefore cannot swap the address between the check and the connect. The URL's
host name is still used for the ``Host`` header, TLS SNI and certificate verification, because
httpcore starts TLS with the origin's host name, not with the address we dialled.

Redirects are followed by hand (at most :data:`MAX_REDIRECTS`), each hop opening a new checked
connection, without reading redirect bodies. The response body is streamed and the download is
aborted as soon as it exceeds ``max_bytes`` (decoded size, so compression bombs are caught too).
Environment proxies are ignored on purpose: a proxy would make the address check meaningless.

Every failure is raised as :class:`OutboundError` with a message fit to show a user.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

__all__ = [
    "MAX_REDIRECTS",
    "OutboundError",
    "OutboundResponse",
    "fetch",
    "is_forbidden_address",
]

MAX_REDIRECTS = 5
_ALLOWED_SCHEMES = frozenset({"http", "https"})
_NAT64_NETWORKS = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundError(Exception):
    """An outbound request failed; ``str(error)`` is a readable, traceback-free message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class OutboundResponse:
    """A fully read response (the body never exceeds the caller's ``max_bytes``)."""

    status: int
    headers: dict[str, str]
    body_bytes: bytes
    content_type: str
    url: str = ""
    redirects: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The body decoded with the charset the server declared (UTF-8 when it declared none)."""
        charset = "utf-8"
        for part in self.content_type.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        try:
            return self.body_bytes.decode(charset, errors="replace")
        except LookupError:
            return self.body_bytes.decode("utf-8", errors="replace")


def is_forbidden_address(ip: IPAddress) -> bool:
    """True when ``ip`` must not be reached from user-supplied URLs.

    ``is_global`` alone is not enough: Python calls multicast, 6to4 and NAT64 addresses global,
    yet they can point back at internal hosts, so embedded IPv4 addresses are checked as well.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_forbidden_address(ip.ipv4_mapped)
        if ip.sixtofour is not None and is_forbidden_address(ip.sixtofour):
            return True
        if ip.teredo is not None and any(is_forbidden_address(part) for part in ip.teredo):
            return True
        for network in _NAT64_NETWORKS:
            if ip in network:
                embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
                if is_forbidden_address(embedded):
                    return True
        if ip.is_site_local:
            return True
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _parse_ip(text: str) -> IPAddress:
    # getaddrinfo may return scoped IPv6 addresses ("fe80::1%eth0").
    return ipaddress.ip_address(text.split("%", 1)[0])


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects to a checked address only."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def _resolve(self, host: str, port: int, timeout_s: float | None) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise OutboundError(f"resolving {host!r} timed out") from None
        except OSError as exc:
            raise OutboundError(f"cannot resolve host {host!r}: {exc.strerror or exc}") from None
        addresses: list[str] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            address = str(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise OutboundError(f"cannot resolve host {host!r}")
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port, timeout)
        if not self._allow_private:
            for address in addresses:
                if is_forbidden_address(_parse_ip(address)):
                    raise OutboundError(
                        f"refusing to connect to {host!r}: it resolves to {address}, "
                        "a private, loopback, link-local or otherwise non-public address"
                    )
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, but dialling through :class:`_GuardedBackend`.

    httpx has no public hook for the network backend, so the connection pool it builds is
    replaced by an identical one that uses ours; request/response mapping and exception
    translation stay httpx's.
    """

    def __init__(self, allow_private: bool) -> None:
        super().__init__(trust_env=False, http2=False, retries=0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=4,
            max_keepalive_connections=0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=_GuardedBackend(allow_private),
        )


def _check_url(url: httpx.URL) -> None:
    if url.scheme not in _ALLOWED_SCHEMES:
        raise OutboundError(
            f"unsupported URL scheme {url.scheme!r} in {str(url)!r}: only http and https"
        )
    if not url.host:
        raise OutboundError(f"URL {str(url)!r} has no host")


def _joined_headers(headers: httpx.Headers) -> dict[str, str]:
    joined: dict[str, str] = {}
    for key, value in headers.multi_items():
        name = key.lower()
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


async def _read_limited(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise OutboundError(
            f"response body too large: {declared} bytes declared, the limit is {max_bytes}"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise OutboundError(f"response body too large: more than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _describe_http_error(exc: httpx.HTTPError, url: str) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"request to {url} timed out"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {url}: {exc or 'connection failed'}"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return f"unsupported URL {url!r}"
    if isinstance(exc, httpx.InvalidURL):
        return f"invalid URL {url!r}: {exc}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server at {url} sent an invalid HTTP response: {exc}"
    return f"request to {url} failed: {exc or type(exc).__name__}"


async def fetch(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    content: bytes | str | None = None,
    json: Any = None,
    data: Mapping[str, Any] | None = None,
    files: Mapping[str, Any] | None = None,
    timeout_s: float = 30.0,
    max_bytes: int = 5_000_000,
    allow_private: bool = False,
) -> OutboundResponse:
    """Send one request and read the whole (size-limited) response.

    ``timeout_s`` bounds the entire exchange — DNS, connect, every redirect and the body.
    ``allow_private=True`` lifts the address check (tests, trusted intranet deployments).
    Raises :class:`OutboundError` for refused addresses, bad URLs, timeouts, too many
    redirects, oversized bodies and network failures. HTTP error statuses are *not* errors:
    the caller gets the status and decides.
    """
    try:
        request_url = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise OutboundError(f"invalid URL {url!r}: {exc}") from None
    _check_url(request_url)

    transport = _GuardedTransport(allow_private)
    timeout = httpx.Timeout(timeout_s)
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpx.AsyncClient(
                transport=transport, timeout=timeout, trust_env=False, follow_redirects=False
            ) as client,
        ):
            try:
                request = client.build_request(
                    method.upper(),
                    request_url,
                    headers=dict(headers or {}),
                    params=dict(params) if params else None,
                    content=content,
                    json=json,
                    data=dict(data) if data is not None else None,
                    files=dict(files) if files is not None else None,
                )
            except (httpx.HTTPError, TypeError, ValueError) as exc:
                raise OutboundError(f"cannot build the request to {url}: {exc}") from None
            redirects: list[str] = []
            while True:
                current = str(request.url)
                try:
                    response = await client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise OutboundError(_describe_http_error(exc, current)) from None
                try:
                    next_request = response.next_request
                    if next_request is not None:
                        if len(redirects) >= MAX_REDIRECTS:
                            raise OutboundError(
                                f"too many redirects (more than {MAX_REDIRECTS}) from {url}"
                            )
                        _check_url(next_request.url)
                        redirects.append(str(next_request.url))
                        request = next_request
                        continue
                    try:
                        body = await _read_limited(response, max_bytes)
                    except httpx.HTTPError as exc:
                        raise OutboundError(_describe_http_error(exc, current)) from None
                    return OutboundResponse(
                        status=response.status_code,
                        headers=_joined_headers(response.headers),
                        body_bytes=body,
                        content_type=response.headers.get("content-type", ""),
                        url=current,
                        redirects=redirects,
                    )
                finally:
                    await response.aclose()
    except TimeoutError:
        raise OutboundError(f"request to {url} timed out after {timeout_s:g} s") from None
