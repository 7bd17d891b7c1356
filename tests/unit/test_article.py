"""The page's own metadata as extracted: which canonical URL a page may claim."""

from __future__ import annotations

import logging

import pytest

from worker.extract.article import release_memory
from worker.extract.document import page_document

PAGE_URL = "https://news.example.com/2026/12/story.html"
BODY = "<p>" + "The council met on Tuesday and agreed the new budget for the year. " * 8 + "</p>"


def page_with_canonical(href: str) -> str:
    return (
        f'<html lang="en"><head><title>Budget agreed</title><link rel="canonical" href="{href}">'
        f"</head><body><article><h1>Budget agreed</h1>{BODY}</article></body></html>"
    )


def test_a_canonical_link_on_the_same_site_names_the_article() -> None:
    document = page_document(page_with_canonical("https://news.example.com/story"), PAGE_URL, 50)
    assert document["canonical_url"] == "https://news.example.com/story"


@pytest.mark.parametrize(
    "href",
    [
        "https://news.example.com:99999/story",  # no such port: nobody could fetch it
        "https://news.example.com:0/story",
        "ftp://news.example.com/story",
        "https://other.example.org/story",  # another site may not take the article's id
    ],
)
def test_a_canonical_link_nobody_could_fetch_is_ignored(href: str) -> None:
    document = page_document(page_with_canonical(href), PAGE_URL, 50)
    assert document["canonical_url"] == PAGE_URL


def test_dropping_the_caches_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    """Workers drop trafilatura's caches every 500 pages: no error line each time."""
    page_document(
        "<html><body><p>" + "A long enough paragraph of text. " * 20 + "</p></body></html>",
        "https://example.com/a",
        min_chars=50,
    )
    with caplog.at_level(logging.DEBUG):
        release_memory()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
