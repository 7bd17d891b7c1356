"""The HTTP client: libcurl (pycurl) with our redirect loop, address guard, deadline and
size caps.

libcurl rather than urllib3 (and httpx before it): a page fetch with its decoding costs
0.31 ms of CPU against 0.55 for a ~170 KB page alone, 0.64-0.83 against 0.93-1.20 in
threads beside an extraction loop (bench/RESULTS.md, tenth session): the HTTP work runs
in C without the GIL.
Everything that matters stays ours: redirects (each hop checked), the resolved address
check at connect time (libcurl's open-socket callback), the total deadline, and the cap
on decoded bytes (libcurl is not asked to decompress; ``BoundedDecoder`` inflates).
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import certifi
import pycurl

from worker.errors import (
    FetchError,
    PermanentFetchError,
    TransientFetchError,
    http_status_error,
)
from worker.fetch.decode import ACCEPT_ENCODING, BoundedDecoder
from worker.fetch.guard import allowed_addresses, check_url
from worker.fetch.headers import retry_after
from worker.fetch.limits import FetchLimits

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# libcurl's receive buffer (a slow drip is still seen byte by byte). Whatever its size,
# libcurl hands the write callback at most CURL_MAX_WRITE_SIZE (16 KiB) a call: 11-12
# calls for a ~180 KB page with 64 KiB or 512 KiB (40 corpus pages from a loopback server).
CHUNK = 65_536
# Idle connections a thread's handle keeps open, one each to the last hosts it fetched
# from: the bench's 8 loopback hosts all stay warm, and a process with 24 fetching threads
# holds at most 192 sockets for them (under the usual soft limit of 1,024 open files).
IDLE_CONNECTIONS_PER_THREAD = 8
# A thread's body buffer (``get_decoded``) is kept for its next fetch up to this size:
# pages are ~170 KB; the buffer of a bigger one (up to the cap) is let go after use.
KEEP_BUFFER_BYTES = 1 << 20
# The body of a redirect or a 304 is read to its end up to this size so that the
# connection can be reused; a longer one is cut short and its connection closed.
DRAIN_BYTES = 65_536
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
    """Vet every address libcurl is about to connect to, after it resolved the host.

    The check happens at connect time on the address actually used, so DNS rebinding
    between a check and the connect is impossible (miniflux's dialer Control).
    """

    allow_private: bool
    origin_allowed: OriginPolicy | None = None

    def allows(self, address: str, host: str, port: int) -> bool:
        if allowed_addresses([address], self.allow_private):
            return True
        # an operator allowed this one private origin (replay)
        return self.origin_allowed is not None and self.origin_allowed(host, port)


@contextlib.contextmanager
def _no_gate(host: str) -> Iterator[None]:
    yield


class Fetcher:
    """Fetch one URL at a time under FetchLimits; thread-safe (a curl handle per thread)."""

    def __init__(
        self,
        user_agent: str,
        allow_private: bool = False,
        gate: HostGate | None = None,
        origin_allowed: OriginPolicy | None = None,
    ) -> None:
        self._gate = gate or _no_gate
        self._headers = {"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING}
        self._guard = AddressGuard(allow_private, origin_allowed)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._transfers: list[_Transfer] = []

    def close(self) -> None:
        """Close every thread's handle and its connections, and give back the host slots
        the gate holds (no fetch may be running)."""
        with self._lock:
            transfers, self._transfers = self._transfers, []
        for transfer in transfers:
            transfer.close()
        close_gate = getattr(self._gate, "close", None)
        if close_gate is not None:
            close_gate()

    def reserve_slots(self, urls: Iterable[str]) -> int:
        """Take the host slots of fetches about to start ahead, in one round trip, where
        the gate can (``HostGate.reserve``); return how many it took."""
        reserve = getattr(self._gate, "reserve", None)
        if reserve is None:
            return 0
        return int(reserve([urlsplit(url).hostname or "" for url in urls]))

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
        one more copy: 7% of a page fetch's CPU with the urllib3 client before libcurl
        (0.86 against 0.79 ms, paired blocks over bench/throughput.py's pages)."""
        transfer = self._transfer()
        buffer = transfer.buffer
        try:
            response, size = self._follow(url, limits, {}, accept, buffer)
            with memoryview(buffer) as whole, whole[:size] as body:
                return decode(body, response)
        finally:
            if len(buffer) > KEEP_BUFFER_BYTES:
                transfer.buffer = bytearray()

    def _transfer(self) -> _Transfer:
        """This thread's handle, made at its first fetch."""
        transfer: _Transfer | None = getattr(self._local, "transfer", None)
        if transfer is None:
            transfer = _Transfer(self._guard)
            self._local.transfer = transfer
            with self._lock:
                self._transfers.append(transfer)
        return transfer

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
        request = [f"{k}: {v}" for k, v in {**self._headers, **headers}.items()]
        for _hop in range(limits.max_redirects + 1):
            check_url(current)
            if current in visited:
                raise PermanentFetchError("redirect_loop", url, f"loops back to {current}")
            visited.add(current)
            outcome = self._one(current, limits, deadline, request, accept, buffer)
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
        request: list[str],
        accept: Callable[[str, str], None] | None,
        buffer: bytearray | None,
    ) -> tuple[Response, int] | Redirect:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransientFetchError("deadline_exceeded", url, f"over {limits.deadline_s}s")
        host = urlsplit(url).hostname or ""
        transfer = self._transfer()
        with self._gate(host):
            transfer.run(url, request, limits, deadline, accept, buffer)
        return self._outcome(transfer, url, host, buffer)

    def _outcome(
        self, transfer: _Transfer, url: str, host: str, buffer: bytearray | None
    ) -> tuple[Response, int] | Redirect:
        status, headers = transfer.status, transfer.headers
        if _is_redirect(status, headers):
            return Redirect(status, urljoin(url, headers["location"].strip()))
        if status == 304:
            return Response(url, status, headers, b""), 0
        if not 200 <= status < 300:
            wait = retry_after(headers.get("retry-after"))
            defer = getattr(self._gate, "defer", None)
            if wait and status in (429, 503) and defer is not None:
                defer(host, min(wait, 86_400.0))  # every worker backs off
            raise http_status_error(status, url, wait)
        if buffer is not None:
            return Response(url, status, headers, b""), transfer.size
        body = b"".join(transfer.pieces)
        transfer.pieces = []
        return Response(url, status, headers, body), len(body)


class _Transfer:
    """One thread's curl handle, and what its current response brought.

    The callbacks never raise into libcurl: a refusal (a type we do not take, a body
    past the cap, a blocked address) is kept in ``error`` and the transfer stopped.
    """

    def __init__(self, guard: AddressGuard) -> None:
        self.buffer = bytearray()
        self._guard = guard
        self.curl = curl = pycurl.Curl()
        curl.setopt(pycurl.NOSIGNAL, 1)  # threads: no SIGALRM for DNS timeouts
        curl.setopt(pycurl.FOLLOWLOCATION, 0)  # redirects are ours, each hop checked
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.PROXY, "")  # no proxy from the environment
        curl.setopt(pycurl.CAINFO, certifi.where())
        curl.setopt(pycurl.BUFFERSIZE, CHUNK)
        curl.setopt(pycurl.MAXCONNECTS, IDLE_CONNECTIONS_PER_THREAD)
        curl.setopt(pycurl.HEADERFUNCTION, self._header)
        curl.setopt(pycurl.WRITEFUNCTION, self._write)
        curl.setopt(pycurl.OPENSOCKETFUNCTION, self._open_socket)
        self._begin("", None, None, 0, None, None)

    def close(self) -> None:
        self.curl.close()

    def _begin(
        self,
        url: str,
        limits: FetchLimits | None,
        accept: Callable[[str, str], None] | None,
        port: int,
        host: str | None,
        buffer: bytearray | None,
    ) -> None:
        self.url, self.host, self.port = url, host or "", port
        self.max_bytes = limits.max_bytes if limits is not None else 0
        self.accept = accept
        self.into = buffer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.error: BaseException | None = None
        self.blocked: list[str] = []
        self.decoder: BoundedDecoder | None = None
        self.draining = False
        self.drained_enough = False
        self.size = 0
        self.pieces: list[bytes] = []

    def run(
        self,
        url: str,
        request: list[str],
        limits: FetchLimits,
        deadline: float,
        accept: Callable[[str, str], None] | None,
        buffer: bytearray | None,
    ) -> None:
        """GET ``url`` once (no redirect followed); raise a FetchError for a failure."""
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        self._begin(url, limits, accept, port, parts.hostname, buffer)
        remaining = deadline - time.monotonic()
        curl = self.curl
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.HTTPHEADER, request)
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, _ms(min(limits.connect_timeout_s, remaining)))
        curl.setopt(pycurl.TIMEOUT_MS, _ms(remaining))
        # no byte for read_timeout_s (libcurl's low-speed check counts whole seconds)
        curl.setopt(pycurl.LOW_SPEED_LIMIT, 1)
        curl.setopt(pycurl.LOW_SPEED_TIME, max(1, math.ceil(limits.read_timeout_s)))
        try:
            curl.perform()
        except pycurl.error as exc:
            if self.error is not None:
                raise self.error from None
            if not self.drained_enough:
                raise self._failure(exc, deadline, limits) from None
        if self.error is not None:
            raise self.error

    def _failure(self, exc: pycurl.error, deadline: float, limits: FetchLimits) -> FetchError:
        code, message = exc.args[0], str(exc.args[1]) if len(exc.args) > 1 else ""
        url, host = self.url, self.host
        if code == pycurl.E_OPERATION_TIMEDOUT:
            if time.monotonic() >= deadline - 0.05:
                return TransientFetchError("deadline_exceeded", url, f"over {limits.deadline_s}s")
            return TransientFetchError("timeout", url, message)
        if code == pycurl.E_COULDNT_CONNECT and self.blocked:
            detail = f"{host} resolves to {self.blocked}"
            return PermanentFetchError("blocked_address", host, detail)
        if code in _RESET:
            return TransientFetchError("connection_reset", url, message)
        if code == pycurl.E_COULDNT_RESOLVE_HOST:
            return TransientFetchError("dns_error", host, message)
        if code == pycurl.E_URL_MALFORMAT:
            return PermanentFetchError("invalid_url", url, message)
        return TransientFetchError("connection_error", url, message)

    # --- libcurl's callbacks --------------------------------------------------------

    def _open_socket(self, _purpose: int, address: Any) -> Any:
        ip = str(address.addr[0])
        try:
            allowed = self._guard.allows(ip, self.host, self.port)
        except Exception as exc:  # noqa: BLE001 - raised by run(): the policy asks Redis
            self.error = exc
            return pycurl.SOCKET_BAD
        if not allowed:
            self.blocked.append(ip)
            return pycurl.SOCKET_BAD
        return socket.socket(address.family, address.socktype, address.protocol)

    def _header(self, line: bytes) -> int | None:
        try:
            text = line.decode("latin-1").strip()
            if text.startswith("HTTP/"):  # a response begins (a 1xx came before it)
                code = text.split(maxsplit=2)[1:2]
                self.status = int(code[0]) if code and code[0].isdigit() else 0
                self.headers = {}
            elif text:
                name, _, value = text.partition(":")
                self.headers[name.strip().lower()] = value.strip()
            elif self.status >= 200:
                self._headers_done()
        except _Stop:
            return -1
        except Exception as exc:  # noqa: BLE001 - carried out of libcurl, raised by run()
            self.error = exc
            return -1
        return None

    def _headers_done(self) -> None:
        status = self.status
        if status == 304 or _is_redirect(status, self.headers):
            self.draining = True
            return
        if not 200 <= status < 300:
            self.draining = self.drained_enough = True  # refused; the status says why
            raise _Stop
        if self.accept is not None:
            self.accept(self.headers.get("content-type", ""), self.url)
        encoding = self.headers.get("content-encoding", "")
        self.decoder = BoundedDecoder(encoding, self.max_bytes, self.url)

    def _write(self, chunk: bytes) -> int | None:
        if self.draining:
            self.size += len(chunk)
            if self.size > DRAIN_BYTES:
                self.drained_enough = True
                return 0  # stop: its connection is closed, not reused
            return None
        try:
            if self.decoder is None:  # no status line we could read
                raise TransientFetchError("connection_reset", self.url, "no valid status line")
            piece = self.decoder.feed(chunk)
        except Exception as exc:  # noqa: BLE001 - carried out of libcurl, raised by run()
            self.error = exc
            return 0
        if self.into is not None:
            self.into[self.size : self.size + len(piece)] = piece
        else:
            self.pieces.append(piece)
        self.size += len(piece)
        return None


class _Stop(Exception):
    """Stop the transfer from a callback, with nothing wrong to report."""


# What a broken exchange ends with: the old client's "connection reset" and "protocol
# error" (a garbage or HTTP/0.9 reply: libcurl calls it an unsupported protocol, and our
# own check already refused any scheme but http and https).
_RESET = frozenset(
    {
        pycurl.E_RECV_ERROR,
        pycurl.E_SEND_ERROR,
        pycurl.E_GOT_NOTHING,
        pycurl.E_PARTIAL_FILE,
        pycurl.E_FTP_WEIRD_SERVER_REPLY,  # libcurl now calls it CURLE_WEIRD_SERVER_REPLY
        pycurl.E_UNSUPPORTED_PROTOCOL,
    }
)


def _is_redirect(status: int, headers: dict[str, str]) -> bool:
    return status in REDIRECT_STATUSES and "location" in headers


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
