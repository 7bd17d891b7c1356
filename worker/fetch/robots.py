"""robots.txt for article fetches: fetched once per origin, cached in Redis for a day.

RFC 9309 semantics: 4xx means no restrictions; 5xx or an unreachable server means we
may not crawl yet (a transient error, so the entry is retried later, not dropped). An
origin our address guard refuses is a permanent error with the guard's reason.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

import redis

from worker.errors import FetchError, HostBusy, PermanentFetchError, TransientFetchError
from worker.fetch.client import Fetcher
from worker.fetch.limits import FetchLimits
from worker.keys import Keys

ROBOTS_LIMITS = FetchLimits(
    connect_timeout_s=5, read_timeout_s=10, deadline_s=15, max_bytes=512 * 1024, max_redirects=5
)
AGENT = "newswire"
LOCAL_TTL_S = 300.0
LOCAL_ENTRIES = 10_000
REFUSED = frozenset({"blocked_address", "unsupported_scheme", "invalid_url"})  # by our guard
_PACING = re.compile(r"\s*(crawl-delay|request-rate)\s*:", re.I)


@lru_cache(maxsize=4096)
def _parser(text: str, _digest: str) -> RobotFileParser:
    parser = RobotFileParser()
    # The standard parser raises on a Crawl-delay or Request-rate it cannot read ("²"):
    # we read neither (host_delay_s paces a host), so they are left out.
    parser.parse(line for line in text.splitlines() if not _PACING.match(line))
    return parser


def robots_allow(text: str, url: str, agent: str = AGENT) -> bool:
    """Whether ``text`` (a robots.txt) lets ``agent`` fetch ``url``."""
    if not text.strip():
        return True
    return _parser(text, hashlib.sha1(text.encode()).hexdigest()).can_fetch(agent, url)


@dataclass
class _Lookup:
    """One thread's lookup of an origin's robots.txt, which the others wait for."""

    done: threading.Event = field(default_factory=threading.Event)
    text: str | None = None
    error: FetchError | None = None


class Robots:
    """Check article URLs against their site's robots.txt."""

    def __init__(self, client: redis.Redis, keys: Keys, fetcher: Fetcher, ttl_s: int = 86_400):
        self._client = client
        self._keys = keys
        self._fetcher = fetcher
        self._ttl_s = ttl_s
        self._local: dict[str, tuple[float, str]] = {}  # origin -> (until, text): spares Redis
        self._lookups: dict[str, _Lookup] = {}  # origin -> the lookup under way
        self._lookups_lock = threading.Lock()

    def check(self, url: str) -> None:
        """Raise PermanentFetchError('robots_disallowed') if robots.txt forbids ``url``."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if not robots_allow(self._text(origin), url):
            raise PermanentFetchError("robots_disallowed", url, f"{origin}/robots.txt")

    def _text(self, origin: str) -> str:
        local = self._local.get(origin)
        if local is not None and local[0] > time.monotonic():
            return local[1]
        with self._lookups_lock:
            lookup = self._lookups.get(origin)
            leader = lookup is None
            if lookup is None:
                lookup = self._lookups[origin] = _Lookup()
        if not leader:
            return self._wait_for(lookup, origin)
        try:
            text = lookup.text = self._shared_text(origin)
        except FetchError as exc:
            lookup.error = exc
            raise
        finally:
            with self._lookups_lock:
                del self._lookups[origin]
            lookup.done.set()
        if len(self._local) > LOCAL_ENTRIES:
            self._local.clear()
        self._local[origin] = (time.monotonic() + LOCAL_TTL_S, text)
        return text

    def _wait_for(self, lookup: _Lookup, origin: str) -> str:
        """The text another thread is looking up, or its fetch error. A burst of a new
        site's entries occupies many fetch threads at once, and each fetched robots.txt
        itself (8 threads, 8 requests: tests/integration/test_polling.py), each request
        taking one of the site's politeness slots, so with ``host_delay_s`` the pages
        waited behind them. The wait is bounded by the lookup's: a host slot
        (``max_wait_s``), then ROBOTS_LIMITS. A lookup that ended otherwise (Redis away,
        a bug) is no answer for this page: it looks for itself."""
        lookup.done.wait()
        if lookup.error is not None:
            raise lookup.error
        return lookup.text if lookup.text is not None else self._shared_text(origin)

    def _shared_text(self, origin: str) -> str:
        key = self._keys.robots(origin)
        cached = self._client.get(key)
        if cached is not None:
            return str(cached)
        try:
            response = self._fetcher.get(f"{origin}/robots.txt", ROBOTS_LIMITS)
            text = response.body.decode("utf-8", errors="replace")
        except HostBusy:
            raise  # the host's budget is spent: the page waits too, without losing a try
        except FetchError as exc:
            if exc.reason in REFUSED:
                # The guard refused the origin (or where its robots.txt sends us): the page
                # would be refused the same way. Say so, rather than retry "unreachable".
                raise PermanentFetchError(exc.reason, origin, exc.detail) from None
            status = exc.reason.removeprefix("http_")
            if not (status.isdigit() and 400 <= int(status) < 500):
                raise TransientFetchError("robots_unreachable", origin, exc.reason) from None
            text = ""  # RFC 9309: a 4xx robots.txt means no restrictions
        self._client.set(key, text, ex=self._ttl_s)
        return text
