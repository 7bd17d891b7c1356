from __future__ import annotations

import json
import time

import pytest

from tests.support import rss
from worker.errors import FeedError
from worker.feeds.parse import html_to_text, parse_feed


def test_rss_items_with_relative_links_and_dates() -> None:
    body = rss(
        [
            {"title": "A &amp; B", "link": "/a.html", "guid": "g1", "date": 1_700_000_000},
            {
                "title": "B",
                "link": "https://other.example/b",
                "description": "<p>One</p><p>Two</p>",
            },
        ]
    )
    feed = parse_feed(
        body, "https://site.example/feeds/rss.xml", {"content-type": "application/rss+xml"}
    )
    assert [i.link for i in feed.items] == [
        "https://site.example/a.html",
        "https://other.example/b",
    ]
    assert feed.items[0].published == time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_700_000_000)
    )
    assert feed.items[1].summary == "One\nTwo"


def test_json_feed() -> None:
    body = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "J",
            "items": [
                {
                    "id": "1",
                    "url": "https://j.example/1",
                    "title": "One",
                    "content_html": "<p>Hi</p>",
                    "date_published": "2024-05-01T10:00:00+02:00",
                    "authors": [{"name": "Ann"}],
                    "tags": ["x"],
                }
            ],
        }
    ).encode()
    feed = parse_feed(
        body, "https://j.example/feed.json", {"content-type": "application/feed+json"}
    )
    [item] = feed.items
    assert (item.link, item.title, item.summary, item.authors, item.tags) == (
        "https://j.example/1",
        "One",
        "Hi",
        ["Ann"],
        ["x"],
    )
    assert item.published == "2024-05-01T08:00:00Z"


@pytest.mark.parametrize(
    "body", [b"/etc/passwd", b"file:///etc/passwd", b"<html><body>hi</body></html>", b""]
)
def test_not_a_feed(body: bytes) -> None:
    with pytest.raises(FeedError) as info:
        parse_feed(body, "https://x.example/feed", {"content-type": "text/plain"})
    assert info.value.reason == "not_a_feed"


def test_external_entities_are_never_resolved() -> None:
    body = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>t</title><item><title>&xxe;</title><link>https://x.example/1</link></item></channel></rss>"""
    feed = parse_feed(body, "https://x.example/feed", {})
    assert "root:" not in json.dumps([i.__dict__ for i in feed.items])


def test_entity_expansion_is_bounded() -> None:
    big = "A" * 20_000
    refs = "&big;" * 20_000
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY big "{big}">]>'
        f'<rss version="2.0"><channel><title>{refs}</title><item><title>x</title>'
        "<link>https://x.example/1</link></item></channel></rss>"
    ).encode()
    start = time.monotonic()
    parse_feed(body, "https://x.example/feed", {})
    assert time.monotonic() - start < 5


def test_html_to_text() -> None:
    assert html_to_text("<p>a <b>b</b></p><p>c</p>") == "a b\nc"
    assert html_to_text("plain") == "plain"
