"""Feed bodies to items: RSS/Atom through feedparser (fed bytes, never a URL), JSON Feed.

``feedparser.parse`` treats a str or bytes argument that looks like a path or URL as one
(it will read ``file://``), so it only ever receives a BytesIO of the body we fetched.
Internal DTD subsets are stripped first: news feeds do not need them and they are the
vehicle of entity-expansion attacks that feedparser's loose parser does not stop.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import feedparser
import lxml.html
from lxml import etree

from worker.dates import iso_from_struct, iso_from_text
from worker.errors import UNEXPECTED_DATA_ERRORS, FeedError

_DOCTYPE = re.compile(rb"<!DOCTYPE[^>\[]*(\[[^\]]*\])?\s*>", re.I)
_ENTITY_DECL = re.compile(rb"<!ENTITY[^>]*>", re.I | re.S)
_ITEM_START = re.compile(rb"<((?:[A-Za-z_][\w.-]*:)?(?:item|entry))[\s>]")
_SITEMAP_ROOT = re.compile(rb"<(?:\w+:)?(?:urlset|sitemapindex)[\s>]")
_DAYS = {
    "monday": 0,
    "tuesday": 1,
    "wednesday": 2,
    "thursday": 3,
    "friday": 4,
    "saturday": 5,
    "sunday": 6,
}
# [^<>]*, not [^>]*: a tag left open would otherwise be scanned to the end from every "<br"
_BLOCK_TAGS = re.compile(r"(?i)<\s*(br|/p|/div|/li|/h[1-6]|/blockquote|/tr)\b[^<>]*>")
TTL_DIGITS = 7  # a <ttl> of more minutes (19 years) is not a poll interval


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
    language: str | None = None


@dataclass
class ParsedFeed:
    """A parsed feed: its own metadata and its items, in document order."""

    title: str = ""
    language: str | None = None
    items: list[FeedItem] = field(default_factory=list)
    kind: str = "rss"  # rss | atom | json | sitemap
    ttl_minutes: int | None = None
    update_period: str | None = None  # sy:updatePeriod
    update_frequency: str | None = None  # sy:updateFrequency
    skip_hours: frozenset[int] = field(default_factory=frozenset)
    skip_days: frozenset[int] = field(default_factory=frozenset)
    # sitemaps listed by a sitemap index, newest first where it dates them
    children: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SplitFeed:
    """An XML feed cut into the part before its items, the items, and the part after."""

    head: bytes
    items: list[bytes]
    tail: bytes

    def with_items(self, items: list[bytes]) -> bytes:
        """The same document holding only ``items``."""
        return self.head + b"".join(items) + self.tail


def split_items(body: bytes) -> SplitFeed | None:
    """Cut an RSS/Atom body at its <item>/<entry> elements, or None when unsure (then the
    caller parses the whole body): lets a poll hand feedparser only the items it has not
    seen, since parsing is most of a poll's cost and most items of a feed are old."""
    first = _ITEM_START.search(body)
    if first is None or body.lstrip().startswith(b"{"):
        return None
    items: list[bytes] = []
    position, start = first.start(), first
    while start is not None:
        name = start.group(1)
        end = body.find(b"</" + name + b">", start.end())
        if end < 0 or _ITEM_START.search(body, start.end(), end):
            return None  # unclosed, or an item inside an item: not a shape we cut
        end += len(name) + 3
        items.append(body[start.start() : end])
        start = _ITEM_START.search(body, end)
        gap = body[end : start.start()] if start else b""
        if start is not None and _without_comments(gap).strip():
            return None  # something else between items: keep the document whole
        position = end
    return SplitFeed(body[: first.start()], items, body[position:])


def _without_comments(data: bytes) -> bytes:
    """``data`` without its <!-- comments --> (an unclosed one stays), in linear time."""
    parts, position = [], 0
    while (start := data.find(b"<!--", position)) >= 0:
        end = data.find(b"-->", start + 4)
        if end < 0:
            break
        parts.append(data[position:start])
        position = end + 3
    parts.append(data[position:])
    return b"".join(parts)


def parse_feed(body: bytes, url: str, headers: dict[str, str]) -> ParsedFeed:
    """Parse a fetched feed body; raise FeedError('not_a_feed') if it is not one, or if
    the parsers fail on it (feedparser raises on a character reference to a surrogate,
    json on a document nested too deep, ...)."""
    try:
        return _parse(body, url, headers)
    except FeedError:
        raise
    except UNEXPECTED_DATA_ERRORS as exc:
        raise FeedError("not_a_feed", url, f"unparsable ({type(exc).__name__}: {exc})") from None


def _parse(body: bytes, url: str, headers: dict[str, str]) -> ParsedFeed:
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{") or "json" in headers.get("content-type", ""):
        return parse_json_feed(body, url)
    if _SITEMAP_ROOT.search(stripped[:4096]):
        return parse_sitemap(body, url)
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
    ttl = str(feed.get("ttl") or "").strip()
    head = body[: body.find(b"<item") if b"<item" in body else 65_536]
    return ParsedFeed(
        title=_plain(feed.get("title", "")),
        language=(feed.get("language") or None),
        items=[_xml_item(entry, url) for entry in parsed.entries],
        kind="atom" if str(parsed.get("version", "")).startswith("atom") else "rss",
        ttl_minutes=_minutes(ttl),
        update_period=feed.get("sy_updateperiod"),
        update_frequency=feed.get("sy_updatefrequency"),
        skip_hours=_skip_hours(head),
        skip_days=_skip_days(head),
    )


def _minutes(ttl: str) -> int | None:
    return int(ttl) if ttl.isascii() and ttl.isdigit() and len(ttl) <= TTL_DIGITS else None


def _skip_hours(head: bytes) -> frozenset[int]:
    # feedparser keeps only the last <hour> of <skipHours>, so read them ourselves
    hours = re.findall(rb"<hour>\s*(\d{1,2})\s*</hour>", _element(head, b"skiphours"))
    return frozenset(int(h) % 24 for h in hours)


def _skip_days(head: bytes) -> frozenset[int]:
    days = re.findall(rb"<day>\s*(\w+)\s*</day>", _element(head, b"skipdays"))
    return frozenset(_DAYS[d.decode().lower()] for d in days if d.decode().lower() in _DAYS)


def _element(head: bytes, name: bytes) -> bytes:
    """The content of the first <name>...</name> in ``head`` (name in lower case)."""
    lower = head.lower()
    start = lower.find(b"<" + name + b">")
    end = lower.find(b"</" + name + b">", start) if start >= 0 else -1
    return head[start + len(name) + 2 : end] if end >= 0 else b""


def parse_sitemap(body: bytes, url: str) -> ParsedFeed:
    """A sitemap (news or plain) as a feed; a sitemap index lists child sitemaps."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, recover=True, huge_tree=False
    )
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise FeedError("not_a_feed", url, f"broken sitemap: {exc}") from None
    if root is None:
        raise FeedError("not_a_feed", url, "empty sitemap")
    if _local(root) == "sitemapindex":
        nodes = [node for node in root if _local(node) == "sitemap"]
        return ParsedFeed(kind="sitemap", children=_newest_first(nodes, url))
    items = [_sitemap_item(node, url) for node in root if _local(node) == "url"]
    return ParsedFeed(kind="sitemap", items=[i for i in items if i.link])


def _newest_first(nodes: list[Any], base: str) -> list[str]:
    """The sitemaps an index lists, those it dates (<lastmod>) newest first, then the
    undated ones in document order: the order in which they are worth polling."""
    dated: list[tuple[str, str]] = []
    undated: list[str] = []
    for node in nodes:
        child = _absolute(base, _text(node, "loc"))
        if not child:
            continue
        modified = iso_from_text(_text(node, "lastmod"))
        if modified:
            dated.append((modified, child))
        else:
            undated.append(child)
    dated.sort(key=lambda pair: pair[0], reverse=True)
    return [child for _, child in dated] + undated


def _sitemap_item(node: Any, base: str) -> FeedItem:
    news = next((n for n in node.iter() if _local(n) == "news"), None)
    title = _text(news, "title") if news is not None else ""
    date = (_text(news, "publication_date") if news is not None else "") or _text(node, "lastmod")
    keywords = _text(news, "keywords") if news is not None else ""
    language = _text(news, "language") if news is not None else ""
    return FeedItem(
        link=_absolute(base, _text(node, "loc")),
        title=title,
        published=iso_from_text(date),
        tags=[k.strip() for k in keywords.split(",") if k.strip()],
        language=language or None,
    )


def _local(node: Any) -> str:
    """Local name of an element ("" for comments and processing instructions)."""
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def _text(node: Any, name: str) -> str:
    for child in node.iter():
        if _local(child) == name and child.text:
            return str(child.text).strip()
    return ""


def _xml_item(entry: Any, base: str) -> FeedItem:
    link = entry.get("link") or ""
    guid = entry.get("id") or ""
    if not link and guid.startswith(("http://", "https://")):
        link = guid
    contents = [c.get("value", "") for c in entry.get("content", []) if c.get("value")]
    summary = max([*contents, entry.get("summary", "")], key=len)
    return FeedItem(
        link=_absolute(base, link.strip()),
        guid=guid,
        title=_plain(entry.get("title", "")),
        summary=html_to_text(summary),
        authors=_authors(entry),
        # dict.get: FeedParserDict maps a missing updated_parsed to published_parsed
        published=iso_from_struct(dict.get(entry, "published_parsed")),
        updated=iso_from_struct(dict.get(entry, "updated_parsed")),
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
    data = _without_lone_surrogates(data)
    items = [_json_item(item, url) for item in _list(data.get("items")) if isinstance(item, dict)]
    return ParsedFeed(
        title=_str(data.get("title")), language=_str(data.get("language")) or None, items=items,
        kind="json",
    )  # fmt: skip


def _json_item(item: dict[str, Any], base: str) -> FeedItem:
    """One JSON Feed item; a field of the wrong type counts as absent."""
    link = _str(item.get("url")) or _str(item.get("external_url"))
    authors = _list(item.get("authors")) or (
        [item["author"]] if isinstance(item.get("author"), dict) else []
    )
    text = _str(item.get("content_text")) or html_to_text(_str(item.get("content_html")))
    return FeedItem(
        link=_absolute(base, link),
        guid=str(item.get("id", "")),
        title=_str(item.get("title")),
        summary=text or _str(item.get("summary")),
        authors=[str(a.get("name")) for a in authors if isinstance(a, dict) and a.get("name")],
        published=iso_from_text(item.get("date_published")),
        updated=iso_from_text(item.get("date_modified")),
        tags=[str(t) for t in _list(item.get("tags")) if t],
        image=_str(item.get("image")) or _str(item.get("banner_image")) or None,
    )


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _without_lone_surrogates(data: Any) -> Any:
    """``data`` with each lone surrogate (JSON's "\\ud800", valid JSON, but no UTF-8 can
    carry it to Redis) replaced by U+FFFD."""
    text = json.dumps(data, ensure_ascii=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.loads(text.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
    return data


def _absolute(base: str, link: str) -> str:
    """``link`` resolved against ``base``; "" for none, or for one that is not a URL
    (``http://[x``): that item is then skipped as having no usable link."""
    try:
        return urljoin(base, link) if link else ""
    except ValueError:
        return ""


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
            return str(link["href"]) if link.get("href") else None
    return None
