"""Build the article document from the page and the feed: precedence and fallback.

Precedence, field by field: the page wins where it has a value, the feed fills gaps
(language: the page's declaration, the feed's, then detection from the text).
Two exceptions: ``published`` keeps the feed's timestamp when the page gives only the
same day (pages rarely carry a time), and tags are the union of both. ``updated`` is
the page's last-modified time (meta tags, JSON-LD), else the feed's, and is dropped
when it comes before ``published``.
Text: the page's body if it has at least ``min_chars`` characters, else whichever of
page and feed text is longer; ``extraction`` says which one ("page" or "feed"). Text
shorter than ``min_publish`` characters is no article at all (a stub, a consent wall).
"""

from __future__ import annotations

from typing import Any

from worker.dedup.canonical import canonical_url, url_id
from worker.dedup.fingerprint import fingerprints
from worker.errors import ExtractionError
from worker.extract.language import detect_language
from worker.model import ExtractedPage, FeedEntry
from worker.publish.schema import ARTICLE_SCHEMA


def choose_text(page_text: str, feed_text: str, min_chars: int) -> tuple[str, str]:
    """Return (text, extraction path)."""
    if len(page_text) >= min_chars or len(page_text) >= len(feed_text):
        return page_text, "page"
    return feed_text, "feed"


def merge_published(page_date: str | None, feed_date: str | None) -> str | None:
    """Prefer the feed's timestamp when the page agrees on the day; else the page's date."""
    if page_date and feed_date and feed_date.startswith(page_date[:10]):
        return feed_date
    if page_date:
        return page_date if "T" in page_date else f"{page_date[:10]}T00:00:00Z"
    return feed_date


def merge_updated(
    page_date: str | None, feed_date: str | None, published: str | None
) -> str | None:
    """The page's last-modified time, else the feed's; never one before ``published``
    (a template's stale date, or a feed that stamps the first version)."""
    for candidate in (page_date, feed_date):
        if candidate and (published is None or candidate >= published):
            return candidate
    return None


def build_article(
    entry: FeedEntry,
    page: ExtractedPage,
    fetched_url: str,
    fetched_at: str,
    min_chars: int,
    min_publish: int = 50,
) -> dict[str, Any]:
    """Return the article document (revision and duplicate fields are set at publish)."""
    text, path = choose_text(page.text, entry.summary, min_chars)
    if len(text.strip()) < min_publish:
        raise ExtractionError(
            "no_content", entry.url, f"{len(text.strip())} characters of text from page and feed"
        )
    canonical = canonical_url(page.canonical_url or fetched_url or entry.url)
    published = merge_published(page.published, entry.published)
    digest, signature = fingerprints(text)
    return {
        "schema": ARTICLE_SCHEMA,
        "id": url_id(canonical),
        "revision": 1,
        "url": entry.url or fetched_url,
        "canonical_url": canonical,
        "feed_url": entry.feed_url or None,
        "guid": entry.guid or None,
        "title": page.title or entry.title or None,
        "authors": page.authors or entry.authors,
        "published": published,
        "updated": merge_updated(page.updated, entry.updated, published),
        "fetched_at": fetched_at,
        "language": page.language or entry.language or detect_language(text),
        "sitename": page.sitename,
        "description": page.description or None,
        "tags": list(dict.fromkeys([*page.tags, *entry.tags])),
        "image": page.image or entry.image,
        "text": text,
        "extraction": path,
        "content_hash": digest,
        "minhash": signature,
    }
