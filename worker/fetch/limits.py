"""Fetch limits as one immutable value object.

FetchLimits()                                   # defaults: 5 s connect, 10 s read, 30 s total
FetchLimits(deadline_s=3.0, max_bytes=1 << 20)  # a tight budget for tests
FetchLimits.from_settings(settings, max_bytes=settings.max_feed_bytes)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


@dataclass(frozen=True)
class FetchLimits:
    """Timeouts and caps that bound one fetch, redirects included."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    deadline_s: float = 30.0  # total, from the first connect to the last body byte
    max_bytes: int = 5 * 1024 * 1024  # decoded (after decompression)
    max_redirects: int = 5

    def __post_init__(self) -> None:
        if min(self.connect_timeout_s, self.read_timeout_s, self.deadline_s) <= 0:
            raise ValueError("fetch timeouts must be positive")
        if self.max_bytes <= 0 or self.max_redirects < 0:
            raise ValueError("max_bytes must be positive and max_redirects not negative")

    @classmethod
    def from_settings(cls, settings: Any, **changes: Any) -> FetchLimits:
        base = cls(
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            deadline_s=settings.fetch_deadline_s,
            max_bytes=settings.max_page_bytes,
            max_redirects=settings.max_redirects,
        )
        return replace(base, **changes)
