from __future__ import annotations

import pytest

from worker.feeds.opml import parse_opml, to_opml
from worker.feeds.registry import FeedRecord

OPML = """<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head><body>
<outline text="World">
  <outline text="A" xmlUrl="https://a.example/rss" category="/politics"/></outline>
<outline text="B" xmlUrl="https://b.example/atom"/></body></opml>"""


def test_import_carries_categories_as_tags() -> None:
    feeds = parse_opml(OPML)
    assert [(f.url, f.tags) for f in feeds] == [
        ("https://a.example/rss", ["World", "politics"]),
        ("https://b.example/atom", []),
    ]


def test_round_trip() -> None:
    records = [
        FeedRecord(
            "1", "https://a.example/rss?x=1&y=2", title="A & co", tags=["World", "politics"]
        ),
        FeedRecord("2", "https://b.example/atom"),
    ]
    again = parse_opml(to_opml(records))
    assert [(f.url, f.title, f.tags) for f in again] == [
        ("https://a.example/rss?x=1&y=2", "A & co", ["World", "politics"]),
        ("https://b.example/atom", "https://b.example/atom", []),
    ]


def test_dtd_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_opml('<!DOCTYPE x [<!ENTITY a "b">]><opml><body/></opml>')
