"""The article document of one page: the single code path of workers and `newswire extract`."""

from __future__ import annotations

import contextlib
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


_WARM_UP_PAGE = (
    "<html><head><title>Warm up</title></head><body><article><h1>Warm up</h1>"
    + "<p>This page loads the extraction code and its language model once.</p>" * 5
    + "</article></body></html>"
)


def warm_up() -> None:
    """Load what the first extractions would load lazily: trafilatura's modules, the
    language model, the public-suffix list (courlan reads it for the first page with
    outside links: ~25 ms, seen in a profile of a first page), justext's
    stoplists of every language and their set (built on trafilatura's first justext rescue)
    and the month names of every dateparser locale (htmldate reads them for the first
    date it cannot place: 0.3 s, seen in a profile of the workers): ~1.3 s of CPU.
    Called in a prefork parent, it saves every child, and every recycled child, that
    cost."""
    page_document(_WARM_UP_PAGE, "https://www.example.com/news/warm-up.html", min_chars=200)
    with contextlib.suppress(ImportError, AttributeError):  # internals of trafilatura
        from justext.core import define_stoplist
        from trafilatura.external import jt_stoplist_init

        define_stoplist(jt_stoplist_init())  # and the set justext makes of them: ~70 ms
    with contextlib.suppress(ImportError, AttributeError):  # of courlan, through tld
        from courlan.urlutils import get_tldinfo

        get_tldinfo("https://www.example.com/")  # the warm-up page did not need it
    with contextlib.suppress(ImportError, AttributeError):  # and of htmldate
        from htmldate.extractors import month_words

        month_words()
