"""The HTTP client: urllib3 with our redirect loop, address guard, deadline and size caps.

urllib3 rather than httpx: a poll or a page fetch costs about half the CPU (bench/poll.py),
and its pool never hands a connection to a request while closing it (encode/httpcore#1110).
Everything that matters is ours anyway: redirects (each hop checked), the resolved
address check at connect time, the total deadline and the cap on decoded bytes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3 import exceptions as u3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from worker.errors import (
    FetchError,
    PermanentFetchError,
    TransientFetchError,
    http_status_error,
)
from worker.fetch.decode import ACCEPT_ENCODING, BoundedDecoder, read_capped, read_capped_into
from worker.fetch.guard import allowed_addresses, check_url
from worker.fetch.headers import retry_after
from worker.fetch.limits import FetchLimits

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Most a read asks of the socket: one recv returns what has arrived, so a drip is still
# seen byte by byte. Under 64 KiB, the workers' malloc mmap threshold
# (config.WORKER_MALLOC_ENVIRONMENT), each read's buffer comes from the heap; a 256 KiB
# read was mapped and faulted in afresh, which cost more than the system calls it saved:
# a page fetch took 6% less CPU with 60 KiB reads (paired blocks over the bench's pages).
CHUNK = 61_440
# A thread's body buffer (``get_decoded``) is kept for its next fetch up to this size:
# pages are ~170 KB; the buffer of a bigger one (up to the cap) is let go after use.
KEEP_BUFFER_BYTES = 1 << 20
T = TypeVar("T")
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


@dataclass(frozen=True)
class Redirect:
    """A hop: the redirect's status and its absolute target."""

    status: int
    target: str


@dataclass(frozen=True)
class AddressGuard:
    """Resolve, vet every address, then connect only to a vetted one.

    The check happens at connect time on the address actually used, so DNS rebinding
    between a check and the connect is impossible (miniflux's dialer Control).
    """

    allow_private: bool
    origin_allowed: OriginPolicy | None = None

    def connect(self, host: str, port: int, timeout: Any) -> socket.socket:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise TransientFetchError("dns_error", host, str(exc)) from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        allowed = allowed_addresses(addresses, self.allow_private)
        if not allowed and self.origin_allowed is not None and self.origin_allowed(host, port):
            allowed = addresses  # an operator allowed this one private origin (replay)
        if not allowed:
            raise PermanentFetchError("blocked_address", host, f"{host} resolves to {addresses}")
        last: OSError | None = None
        for address in allowed:
            try:
                sock = socket.create_connection((address, port), timeout)
            except OSError as exc:
                last = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise TransientFetchError("connection_error", host, str(last)) from None


def _pool_classes(guard: AddressGuard) -> dict[str, type[HTTPConnectionPool]]:
    """Connection pools whose connections dial through ``guard``."""

    class GuardedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return guard.connect(self._dns_host, self.port, self.timeout)

    class GuardedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:  # TLS and SNI still use the host name
            return guard.connect(self._dns_host, self.port, self.timeout)

    class GuardedHTTPPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    return {"http": GuardedHTTPPool, "https": GuardedHTTPSPool}


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
        per_origin: int = 8,
    ) -> None:
        self._gate = gate or _no_gate
        self._headers = {"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING}
        self._pool = urllib3.PoolManager(
            num_pools=max(max_connections, 10),
            # idle connections kept per origin: as many as may be in flight to one host
            # from this process, or each extra one is closed after use (and reopened)
            maxsize=per_origin,
            block=False,
            retries=False,
        )
        self._pool.pool_classes_by_scheme = _pool_classes(  # type: ignore[assignment]
            AddressGuard(allow_private, origin_allowed)
        )
        self._buffers = threading.local()

    def close(self) -> None:
        self._pool.clear()

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
        response, _size = self._follow(url, limits, headers or {}, accept, None)
        return response

    def get_decoded(
        self,
        url: str,
        limits: FetchLimits,
        decode: Callable[[memoryview, Response], T],
        accept: Callable[[str, str], None] | None = None,
    ) -> T:
        """``get`` for a body turned into something else at once (a page into its text):
        the body goes into this thread's reusable buffer, and ``decode`` gets a view of
        it, valid only during the call (``Response.body`` is empty). Made a bytes object
        of its own, a ~170 KB page was one more block mapped and faulted in afresh, and
        one more copy: 7% of a page fetch's CPU (0.86 against 0.79 ms, paired blocks
        over bench/throughput.py's pages)."""
        buffer = getattr(self._buffers, "buffer", None)
        if buffer is None:
            buffer = self._buffers.buffer = bytearray()
        try:
            response, size = self._follow(url, limits, {}, accept, buffer)
            with memoryview(buffer) as whole, whole[:size] as body:
                return decode(body, response)
        finally:
            if len(buffer) > KEEP_BUFFER_BYTES:
                self._buffers.buffer = bytearray()

    def _follow(
        self,
        url: str,
        limits: FetchLimits,
        headers: dict[str, str],
        accept: Callable[[str, str], None] | None,
        buffer: bytearray | None,
    ) -> tuple[Response, int]:
        """The final response of ``url``'s redirects, and its body's size (in ``buffer``
        when one is given)."""
        deadline = time.monotonic() + limits.deadline_s
        visited: set[str] = set()
        redirects: list[tuple[int, str]] = []
        current = url
        for _hop in range(limits.max_redirects + 1):
            check_url(current)
            if current in visited:
                raise PermanentFetchError("redirect_loop", url, f"loops back to {current}")
            visited.add(current)
            outcome = self._one(current, limits, deadline, headers, accept, buffer)
            if isinstance(outcome, Redirect):
                redirects.append((outcome.status, outcome.target))
                current = outcome.target
                continue
            response, size = outcome
            response.redirects = redirects
            return response, size
        raise PermanentFetchError("too_many_redirects", url, f"more than {limits.max_redirects}")

    def _one(
        self,
        url: str,
        limits: FetchLimits,
        deadline: float,
        headers: dict[str, str],
        accept: Callable[[str, str], None] | None,
        buffer: bytearray | None,
    ) -> tuple[Response, int] | Redirect:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransientFetchError("deadline_exceeded", url, f"over {limits.deadline_s}s")
        timeout = urllib3.Timeout(
            connect=min(limits.connect_timeout_s, remaining),
            read=min(limits.read_timeout_s, remaining),
        )
        host = urlsplit(url).hostname or ""
        try:
            with self._gate(host):
                resp = self._pool.urlopen(
                    "GET", url, headers={**self._headers, **headers}, redirect=False,
                    retries=False, timeout=timeout, preload_content=False, decode_content=False,
                )  # fmt: skip
                try:
                    result = self._handle(resp, url, host, limits, deadline, accept, buffer)
                except BaseException:
                    resp.close()  # unread data would poison the connection: do not reuse it
                    raise
                resp.release_conn()
                return result
        except FetchError:
            raise
        except (u3.ConnectTimeoutError, u3.ReadTimeoutError, TimeoutError) as exc:
            raise TransientFetchError("timeout", url, type(exc).__name__) from None
        except (u3.ProtocolError, ConnectionError) as exc:
            raise TransientFetchError("connection_reset", url, str(exc)) from None
        except (u3.LocationValueError, u3.LocationParseError, ValueError) as exc:
            raise PermanentFetchError("invalid_url", url, str(exc)) from None
        except (u3.HTTPError, OSError) as exc:
            raise TransientFetchError("connection_error", url, str(exc)) from None

    def _handle(
        self,
        resp: urllib3.BaseHTTPResponse,
        url: str,
        host: str,
        limits: FetchLimits,
        deadline: float,
        accept: Callable[[str, str], None] | None,
        buffer: bytearray | None,
    ) -> tuple[Response, int] | Redirect:
        status = resp.status
        headers = {k.lower(): v for k, v in resp.headers.items()}
        if status in REDIRECT_STATUSES and "location" in headers:
            _drain(resp)
            return Redirect(status, urljoin(url, headers["location"].strip()))
        if status == 304:
            _drain(resp)
            return Response(url, status, headers, b""), 0
        if not 200 <= status < 300:
            wait = retry_after(headers.get("retry-after"))
            defer = getattr(self._gate, "defer", None)
            if wait and status in (429, 503) and defer is not None:
                defer(host, min(wait, 86_400.0))  # every worker backs off
            raise http_status_error(status, url, wait)
        if accept is not None:
            accept(headers.get("content-type", ""), url)
        decoder = BoundedDecoder(headers.get("content-encoding", ""), limits.max_bytes, url)
        chunks = _until(_raw_chunks(resp), deadline, url, limits)
        if buffer is not None:
            return Response(url, status, headers, b""), read_capped_into(chunks, decoder, buffer)
        body = read_capped(chunks, decoder)
        return Response(url, status, headers, body), len(body)


def _drain(resp: urllib3.BaseHTTPResponse, limit: int = 65_536) -> None:
    """Read a short body to its end so the connection can be reused (keep-alive); a long
    one is abandoned and its connection closed."""
    size = 0
    for chunk in _raw_chunks(resp):
        size += len(chunk)
        if size > limit:
            resp.close()
            return


def _raw_chunks(resp: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """The body as it arrives, still encoded: each read returns what one recv gave, so a
    slow drip is seen byte by byte (``stream()`` would wait for whole 64 KB chunks)."""
    while chunk := resp.read1(CHUNK, decode_content=False):
        yield chunk


def _until(
    chunks: Iterator[bytes], deadline: float, url: str, limits: FetchLimits
) -> Iterator[bytes]:
    """Pass chunks through until the total deadline (a slow drip never ends otherwise)."""
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise TransientFetchError("deadline_exceeded", url, f"over {limits.deadline_s}s")
        yield chunk
