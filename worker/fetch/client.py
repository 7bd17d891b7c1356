"""The HTTP client: httpx with our redirect loop, address guard, deadline and size caps."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpcore
import httpx

from worker.errors import (
    FetchError,
    PermanentFetchError,
    TransientFetchError,
    http_status_error,
)
from worker.fetch.decode import ACCEPT_ENCODING, BoundedDecoder, read_capped
from worker.fetch.guard import allowed_addresses, check_url
from worker.fetch.headers import retry_after
from worker.fetch.limits import FetchLimits

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
HostGate = Callable[[str], AbstractContextManager[None]]
OriginPolicy = Callable[[str, int], bool]


@dataclass
class Response:
    """A finished fetch: final URL, status, headers and the decoded (uncompressed) body."""

    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    redirects: list[tuple[int, str]] = field(default_factory=list)  # (status, target)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class GuardedBackend(httpcore.NetworkBackend):
    """Resolve, vet every address, then connect only to a vetted one.

    The check happens at connect time on the address actually used, so DNS rebinding
    between a check and the connect is impossible (miniflux's dialer Control).
    """

    def __init__(self, allow_private: bool, origin_allowed: OriginPolicy | None = None) -> None:
        self._inner = httpcore.SyncBackend()
        self._allow_private = allow_private
        self._origin_allowed = origin_allowed

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise TransientFetchError("dns_error", host, str(exc)) from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        allowed = allowed_addresses(addresses, self._allow_private)
        if not allowed and self._origin_allowed is not None and self._origin_allowed(host, port):
            allowed = addresses  # an operator allowed this one private origin (replay)
        if not allowed:
            raise PermanentFetchError("blocked_address", host, f"{host} resolves to {addresses}")
        last: Exception | None = None
        for address in allowed:
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise PermanentFetchError("unsupported_scheme", "", "unix sockets are never fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with its connection pool built on GuardedBackend."""

    def __init__(
        self,
        allow_private: bool,
        max_connections: int = 100,
        origin_allowed: OriginPolicy | None = None,
    ) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            network_backend=GuardedBackend(allow_private, origin_allowed),
        )


@contextlib.contextmanager
def _no_gate(host: str) -> Iterator[None]:
    yield


class Fetcher:
    """Fetch one URL at a time under FetchLimits; thread-safe (one pool per Fetcher)."""

    def __init__(
        self,
        user_agent: str,
        allow_private: bool = False,
        gate: HostGate | None = None,
        max_connections: int = 100,
        origin_allowed: OriginPolicy | None = None,
    ) -> None:
        self._gate = gate or _no_gate
        self._client = httpx.Client(
            transport=GuardedTransport(allow_private, max_connections, origin_allowed),
            headers={"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING},
            follow_redirects=False,
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def get(
        self,
        url: str,
        limits: FetchLimits,
        headers: dict[str, str] | None = None,
        accept: Callable[[str, str], None] | None = None,
    ) -> Response:
        """GET ``url`` following redirects ourselves (each hop checked).

        ``accept(content_type, url)`` may raise to refuse a response before its body is
        read. A 304 comes back as a Response with an empty body; other non-2xx raise.
        """
        deadline = time.monotonic() + limits.deadline_s
        visited: set[str] = set()
        redirects: list[tuple[int, str]] = []
        current = url
        for _hop in range(limits.max_redirects + 1):
            check_url(current)
            if current in visited:
                raise PermanentFetchError("redirect_loop", url, f"loops back to {current}")
            visited.add(current)
            response = self._one(current, limits, deadline, headers or {}, accept)
            if isinstance(response, Response):
                response.redirects = redirects
                return response
            status, target = response
            redirects.append((status, target))
            current = target
        raise PermanentFetchError("too_many_redirects", url, f"more than {limits.max_redirects}")

    def _one(
        self,
        url: str,
        limits: FetchLimits,
        deadline: float,
        headers: dict[str, str],
        accept: Callable[[str, str], None] | None,
    ) -> Response | tuple[int, str]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransientFetchError("deadline_exceeded", url, f"over {limits.deadline_s}s")
        timeout = httpx.Timeout(
            connect=min(limits.connect_timeout_s, remaining),
            read=min(limits.read_timeout_s, remaining),
            write=min(limits.read_timeout_s, remaining),
            pool=min(limits.connect_timeout_s, remaining),
        )
        try:
            host = httpx.URL(url).host
            with (
                self._gate(host),
                self._client.stream("GET", url, headers=headers, timeout=timeout) as resp,
            ):
                return self._handle(resp, url, limits, deadline, accept)
        except FetchError:
            raise
        except httpx.TimeoutException as exc:
            raise TransientFetchError("timeout", url, type(exc).__name__) from None
        except httpx.RemoteProtocolError as exc:
            if "location header" in str(exc):  # httpx parses Location even when not following
                raise PermanentFetchError("invalid_url", url, str(exc)) from None
            raise TransientFetchError("connection_reset", url, str(exc)) from None
        except httpx.ReadError as exc:
            raise TransientFetchError(
                "connection_reset", url, str(exc) or type(exc).__name__
            ) from None
        except httpx.TransportError as exc:
            raise TransientFetchError(
                "connection_error", url, str(exc) or type(exc).__name__
            ) from None
        except httpx.InvalidURL as exc:
            raise PermanentFetchError("invalid_url", url, str(exc)) from None

    def _handle(
        self,
        resp: httpx.Response,
        url: str,
        limits: FetchLimits,
        deadline: float,
        accept: Callable[[str, str], None] | None,
    ) -> Response | tuple[int, str]:
        status = resp.status_code
        if status in REDIRECT_STATUSES and "location" in resp.headers:
            _drain(resp)
            return status, urljoin(url, resp.headers["location"].strip())
        headers = {k.lower(): v for k, v in resp.headers.items()}
        if status == 304:
            _drain(resp)
            return Response(url, status, headers, b"")
        if not 200 <= status < 300:
            wait = retry_after(headers.get("retry-after"))
            defer = getattr(self._gate, "defer", None)
            if wait and status in (429, 503) and defer is not None:
                defer(httpx.URL(url).host, min(wait, 86_400.0))  # every worker backs off
            raise http_status_error(status, url, wait)
        if accept is not None:
            accept(headers.get("content-type", ""), url)
        decoder = BoundedDecoder(headers.get("content-encoding", ""), limits.max_bytes, url)
        body = read_capped(_until(resp.iter_raw(), deadline, url, limits), decoder)
        return Response(str(resp.url), status, headers, body)


def _drain(resp: httpx.Response, limit: int = 65_536) -> None:
    """Read a short body to its end so the connection goes back to the pool (keep-alive);
    a long one is abandoned and its connection closed."""
    size = 0
    for chunk in resp.iter_raw():
        size += len(chunk)
        if size > limit:
            return


def _until(
    chunks: Iterator[bytes], deadline: float, url: str, limits: FetchLimits
) -> Iterator[bytes]:
    """Pass chunks through until the total deadline (a slow drip never ends otherwise)."""
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise TransientFetchError("deadline_exceeded", url, f"over {limits.deadline_s}s")
        yield chunk
