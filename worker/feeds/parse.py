"""Feed bodies to items: RSS/Atom through feedparser (fed bytes, never a URL), JSON Feed.

``feedparser.parse`` treats a str or bytes argument that looks like a path or URL as one
(it will read ``file://``), so it only ever receives a BytesIO of the body we fetched.
Internal DTD subsets are stripped first: news feeds do not need them and they are the
vehicle of entity-expansion attacks that feedparser's loose parser does not stop.
"""

from __future__ import annotations

import calendar
import io
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import feedparser
import lxml.html
from feedparser.datetimes import _parse_date

from worker.errors import FeedError

_DOCTYPE = re.compile(rb"<!DOCTYPE[^>\[]*(\[.*?\])?\s*>", re.I | re.S)
_ENTITY_DECL = re.compile(rb"<!ENTITY[^>]*>", re.I | re.S)
_BLOCK_TAGS = re.compile(r"(?i)<\s*(br|/p|/div|/li|/h[1-6]|/blockquote|/tr)\b[^>]*>")


@dataclass
class FeedItem:
    """One item as the feed describes it (links absolute, text plain, dates ISO UTC)."""

    link: str = ""
    guid: str = ""
    title: str = ""
    summary: str = ""
    authors: list[str] = field(default_factory=list)
    published: str | None = None
    updated: str | None = None
    tags: list[str] = field(default_factory=list)
    image: str | None = None


@dataclass
class ParsedFeed:
    """A parsed feed: its own metadata and its items, in document order."""

    title: str = ""
    language: str | None = None
    items: list[FeedItem] = field(default_factory=list)
    ttl_minutes: int | None = None


def parse_feed(body: bytes, url: str, headers: dict[str, str]) -> ParsedFeed:
    """Parse a fetched feed body; raise FeedError('not_a_feed') if it is not one."""
    stripped = body.lstrip()
    if stripped.startswith(b"{") or "json" in headers.get("content-type", ""):
        return parse_json_feed(body, url)
    return parse_xml_feed(body, url, headers)


def parse_xml_feed(body: bytes, url: str, headers: dict[str, str]) -> ParsedFeed:
    """RSS 0.9x/1.0/2.0 and Atom via feedparser."""
    safe = _ENTITY_DECL.sub(b"", _DOCTYPE.sub(b"", body[:65_536], count=1)) + body[65_536:]
    response_headers = {
        k: v for k, v in headers.items() if k in ("content-type", "content-language")
    }
    response_headers["content-location"] = url  # base for relative links
    parsed = feedparser.parse(io.BytesIO(safe), response_headers=response_headers)
    if not parsed.get("version") and not parsed.entries:
        problem = parsed.get("bozo_exception")
        raise FeedError("not_a_feed", url, str(problem) if problem else "no feed found in body")
    feed = parsed.feed
    ttl = feed.get("ttl")
    return ParsedFeed(
        title=_plain(feed.get("title", "")),
        language=(feed.get("language") or None),
        items=[_xml_item(entry, url) for entry in parsed.entries],
        ttl_minutes=int(ttl) if str(ttl or "").isdigit() else None,
    )


def _xml_item(entry: Any, base: str) -> FeedItem:
    link = entry.get("link") or ""
    guid = entry.get("id") or ""
    if not link and guid.startswith(("http://", "https://")):
        link = guid
    contents = [c.get("value", "") for c in entry.get("content", []) if c.get("value")]
    summary = max([*contents, entry.get("summary", "")], key=len)
    return FeedItem(
        link=urljoin(base, link.strip()) if link else "",
        guid=guid,
        title=_plain(entry.get("title", "")),
        summary=html_to_text(summary),
        authors=_authors(entry),
        # dict.get: FeedParserDict maps a missing updated_parsed to published_parsed
        published=_iso(dict.get(entry, "published_parsed")),
        updated=_iso(dict.get(entry, "updated_parsed")),
        tags=[t.get("term", "").strip() for t in entry.get("tags", []) if t.get("term")],
        image=_image(entry),
    )


def parse_json_feed(body: bytes, url: str) -> ParsedFeed:
    """JSON Feed 1.0 and 1.1 (feedparser 6 does not read them)."""
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FeedError("not_a_feed", url, f"invalid JSON: {exc}") from None
    if not isinstance(data, dict) or "jsonfeed.org/version" not in str(data.get("version", "")):
        raise FeedError("not_a_feed", url, "JSON without a jsonfeed.org version")
    items = [_json_item(item, url) for item in data.get("items", []) if isinstance(item, dict)]
    return ParsedFeed(title=str(data.get("title", "")), language=data.get("language"), items=items)


def _json_item(item: dict[str, Any], base: str) -> FeedItem:
    link = str(item.get("url") or item.get("external_url") or "")
    authors = item.get("authors") or (
        [item["author"]] if isinstance(item.get("author"), dict) else []
    )
    text = item.get("content_text") or html_to_text(str(item.get("content_html") or ""))
    return FeedItem(
        link=urljoin(base, link) if link else "",
        guid=str(item.get("id", "")),
        title=str(item.get("title") or ""),
        summary=text or str(item.get("summary") or ""),
        authors=[str(a.get("name")) for a in authors if isinstance(a, dict) and a.get("name")],
        published=_iso_text(item.get("date_published")),
        updated=_iso_text(item.get("date_modified")),
        tags=[str(t) for t in item.get("tags", []) if t],
        image=item.get("image") or item.get("banner_image"),
    )


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment, paragraphs kept as line breaks."""
    if not html or "<" not in html:
        return html.strip()
    try:
        root = lxml.html.fromstring(_BLOCK_TAGS.sub("\n", html))
    except (lxml.etree.ParserError, ValueError):
        return ""
    lines = (" ".join(line.split()) for line in root.text_content().splitlines())
    return "\n".join(line for line in lines if line)


def _plain(value: str) -> str:
    return " ".join(html_to_text(value).split())


def _authors(entry: Any) -> list[str]:
    names = [a.get("name", "").strip() for a in entry.get("authors", []) if a.get("name")]
    if not names and entry.get("author"):
        names = [entry["author"].strip()]
    return list(dict.fromkeys(n for n in names if n))


def _image(entry: Any) -> str | None:
    for media in (*entry.get("media_thumbnail", []), *entry.get("media_content", [])):
        if media.get("url"):
            return str(media["url"])
    for link in entry.get("links", []):
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/"):
            return str(link.get("href"))
    return None


def _iso(parsed: time.struct_time | None) -> str | None:
    if not parsed:
        return None
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(calendar.timegm(parsed)))
    except (OverflowError, ValueError):
        return None


def _iso_text(value: Any) -> str | None:
    if not value:
        return None
    parsed = _parse_date(str(value))  # the date parser feedparser uses for XML feeds
    return _iso(parsed)
