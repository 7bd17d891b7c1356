"""OPML import and export; categories become feed tags (and so article tags)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

from worker.feeds.registry import FeedRecord


@dataclass
class OpmlFeed:
    url: str
    title: str = ""
    tags: list[str] = field(default_factory=list)


def parse_opml(text: str) -> list[OpmlFeed]:
    """Feeds of an OPML document; enclosing outlines and ``category`` give tags."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ValueError("OPML with a DTD is refused")
    root = ET.fromstring(text)
    body = root.find("body")
    found: list[OpmlFeed] = []
    if body is not None:
        _walk(body, [], found)
    return found


def _walk(node: ET.Element, path: list[str], found: list[OpmlFeed]) -> None:
    for outline in node.findall("outline"):
        url = outline.get("xmlUrl") or outline.get("xmlurl")
        label = outline.get("title") or outline.get("text") or ""
        if url:
            categories = [c.strip().strip("/") for c in (outline.get("category") or "").split(",")]
            tags = list(dict.fromkeys([*path, *(c for c in categories if c)]))
            found.append(OpmlFeed(url.strip(), label, tags))
        else:
            _walk(outline, [*path, label] if label else path, found)


def to_opml(feeds: list[FeedRecord], title: str = "newswire feeds") -> str:
    """An OPML 2.0 document listing ``feeds`` with their tags as categories."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        f"<head><title>{title}</title></head>",
        "<body>",
    ]
    for feed in feeds:
        attrs = f'type="rss" text={quoteattr(feed.title or feed.url)} xmlUrl={quoteattr(feed.url)}'
        if feed.tags:
            attrs += f" category={quoteattr(','.join(feed.tags))}"
        lines.append(f"  <outline {attrs}/>")
    lines += ["</body>", "</opml>"]
    return "\n".join(lines) + "\n"
