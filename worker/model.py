"""Plain records shared by the domains: what a feed says about an entry, what a page gave."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FeedEntry:
    """One item of a feed, as the poller saw it; the unit of work of the ingest pipeline."""

    entry_id: str
    feed_id: str
    feed_url: str
    url: str  # the item's link, absolute ("" when the item has none)
    guid: str = ""
    title: str = ""
    summary: str = ""  # the feed's own text for the item (content, else summary), plain text
    authors: list[str] = field(default_factory=list)
    published: str | None = None  # ISO 8601 UTC
    updated: str | None = None
    tags: list[str] = field(default_factory=list)
    image: str | None = None
    language: str | None = None

    def to_json(self) -> str:
        # vars(), not asdict(): its deep copy was a tenth of a poll's CPU (2,000 entries)
        return json.dumps(vars(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> FeedEntry:
        data: dict[str, Any] = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class ExtractedPage:
    """What trafilatura (and our head scan) found in one HTML page."""

    text: str = ""
    title: str | None = None
    authors: list[str] = field(default_factory=list)
    published: str | None = None
    updated: str | None = None
    sitename: str | None = None
    language: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    image: str | None = None
    canonical_url: str | None = None


@dataclass
class FetchedPage:
    """A page body we accepted, decoded to text under our size caps."""

    url: str  # after redirects
    status: int
    content_type: str
    html: str


def utc_iso(timestamp: float | None = None) -> str:
    """ISO 8601 UTC with a Z, seconds precision (the stream contract's time format)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
