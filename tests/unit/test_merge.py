from __future__ import annotations

import pytest

from worker.errors import ExtractionError
from worker.extract.article import page_language, without_headline
from worker.extract.merge import build_article, choose_text, merge_published
from worker.model import ExtractedPage, FeedEntry
from worker.publish.schema import validate_message

ENTRY = FeedEntry(
    entry_id="e",
    feed_id="f",
    feed_url="https://s.example/rss",
    url="https://s.example/a",
    guid="g",
    title="Feed title",
    summary="Feed summary text " * 5,
    authors=["Feed Author"],
    published="2024-05-01T10:00:00Z",
    tags=["feedtag"],
    language="fr",
)


def test_page_fields_win_and_feed_fills_gaps() -> None:
    page = ExtractedPage(text="Body " * 100, title="Page title", tags=["pagetag"], language=None)
    doc = build_article(ENTRY, page, "https://s.example/a", "2024-05-01T11:00:00Z", 200)
    validate_message(doc)
    assert (doc["title"], doc["authors"], doc["language"]) == ("Page title", ["Feed Author"], "fr")
    assert doc["tags"] == ["pagetag", "feedtag"]
    assert doc["extraction"] == "page"


def test_short_page_falls_back_to_feed() -> None:
    assert choose_text("tiny", "a much longer feed summary", 200) == (
        "a much longer feed summary",
        "feed",
    )
    assert choose_text("x" * 300, "y" * 500, 200) == ("x" * 300, "page")


def test_no_text_anywhere_is_an_error() -> None:
    empty = FeedEntry(entry_id="e", feed_id="f", feed_url="u", url="https://s.example/a")
    with pytest.raises(ExtractionError):
        build_article(
            empty, ExtractedPage(text="short"), "https://s.example/a", "2024-05-01T11:00:00Z", 200
        )


def test_published_precedence() -> None:
    assert merge_published("2024-05-01", "2024-05-01T10:00:00Z") == "2024-05-01T10:00:00Z"
    assert merge_published("2024-04-30", "2024-05-01T10:00:00Z") == "2024-04-30T00:00:00Z"
    assert merge_published(None, "2024-05-01T10:00:00Z") == "2024-05-01T10:00:00Z"


def test_undeclared_language_is_detected() -> None:
    entry = FeedEntry(entry_id="e", feed_id="f", feed_url="u", url="https://s.example/a")
    text = "Der Bundestag hat am Donnerstag ein neues Gesetz beschlossen, das Mieten begrenzt. " * 4
    doc = build_article(
        entry, ExtractedPage(text=text), "https://s.example/a", "2024-05-01T11:00:00Z", 50
    )
    assert doc["language"] == "de"


def test_language_and_headline() -> None:
    assert page_language('<html class="x" lang="en-GB">') == "en-gb"
    assert page_language('<meta property="og:locale" content="de_DE">') == "de"
    assert without_headline("Title\nBody", "title") == "Body"
    assert without_headline("Body\nMore", "Title") == "Body\nMore"
