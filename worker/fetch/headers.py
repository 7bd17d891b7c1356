"""HTTP caching and back-off headers, read into seconds."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime


def _http_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _seconds(value: str) -> bool:
    """Whether ``value`` is delta-seconds: ASCII digits only ("²".isdigit() is true, and
    float() refuses it)."""
    return value.isascii() and value.isdigit()


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if _seconds(value):
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    return max(when - (now if now is not None else time.time()), 0.0)


def freshness(headers: dict[str, str], now: float | None = None) -> float | None:
    """Seconds the response stays fresh: Cache-Control max-age, else Expires - Date."""
    for directive in headers.get("cache-control", "").lower().split(","):
        name, _, value = directive.strip().partition("=")
        if name in ("no-cache", "no-store"):
            return None
        if name in ("max-age", "s-maxage") and _seconds(value.strip().strip('"')):
            return float(value.strip().strip('"'))
    expires = _http_date(headers.get("expires", ""))
    if expires is None:
        return None
    date = _http_date(headers.get("date", "")) or (now if now is not None else time.time())
    return max(expires - date, 0.0)
