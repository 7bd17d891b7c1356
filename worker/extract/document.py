"""The article document of one page: the single code path of workers and `newswire extract`."""

from __future__ import annotations

from typing import Any

from worker.extract.article import extract_page
from worker.extract.merge import build_article
from worker.model import ExtractedPage, FeedEntry, utc_iso


def article_document(
    entry: FeedEntry, html: str, url: str, fetched_at: str, min_chars: int, min_publish: int
) -> dict[str, Any]:
    """Extract ``html`` (fetched from ``url``) and merge it with what the feed said."""
    page = extract_page(html, url) if html else ExtractedPage()
    return build_article(entry, page, url, fetched_at, min_chars, min_publish)


def page_document(html: str, url: str, min_chars: int, min_publish: int = 1) -> dict[str, Any]:
    """The document for a page known by itself, without a feed (``newswire extract``)."""
    entry = FeedEntry(entry_id="", feed_id="", feed_url="", url=url)
    return article_document(entry, html, url, utc_iso(), min_chars, min_publish)
