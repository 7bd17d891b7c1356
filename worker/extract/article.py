"""Extract body text and metadata from one HTML page with trafilatura.

trafilatura.extract shares one lxml parser and is not thread-safe: call this from
worker processes (the prefork CPU pool), never from threads.
"""

from __future__ import annotations

import functools
import logging
import re
import time

import justext.core
import trafilatura
from trafilatura.meta import reset_caches

from worker.dates import iso_from_text
from worker.dedup.canonical import same_site
from worker.errors import PermanentFetchError
from worker.fetch.guard import check_url
from worker.model import ExtractedPage, utc_iso

_HTML_LANG = re.compile(
    r"""<html[^>]*?\slang\s*=\s*["']?([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?)""", re.I
)
_OG_LOCALE = re.compile(
    r"""<meta[^>]+property\s*=\s*["']og:locale["'][^>]+content\s*=\s*["']([A-Za-z]{2,3})""", re.I
)
# Where pages state when they were last changed, most trusted first: the article's meta
# tag, schema.org data in JSON-LD, Open Graph, schema.org microdata. On the 181 corpus
# pages, 136 give a usable date this way, at ~0.1 ms a page (the plain string searches
# dominate; a case-insensitive regex over the page took twice as long).
_UPDATED_KEYS = ("article:modified_time", '"dateModified"', "og:updated_time", "dateModified")
_TAG_DATE = re.compile(r"""\b(?:content|datetime)\s*=\s*["']\s*([^"']+?)\s*["']""", re.I)
_JSON_DATE = re.compile(r'"\s*:\s*"([^"]+)"')
EARLIEST_DATE = "1995-01-01"  # htmldate's bound too: earlier "dates" are template defaults


def extract_page(html: str, url: str) -> ExtractedPage:
    """Run trafilatura (text + metadata) over ``html`` fetched from ``url``."""
    doc = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
    )
    language = page_language(html)
    updated = page_updated(html)
    if doc is None:
        return ExtractedPage(language=language, updated=updated)
    canonical = doc.url if doc.url and is_own_address(doc.url, url) else None
    return ExtractedPage(
        text=without_headline((doc.text or "").strip(), doc.title),
        title=doc.title or None,
        authors=split_list(doc.author, ";"),
        published=doc.date or None,
        updated=updated,
        sitename=doc.sitename or None,
        language=doc.language or language,
        description=doc.description or None,
        tags=_tags(doc.categories, doc.tags),
        image=doc.image or None,
        canonical_url=canonical,
    )


def is_own_address(candidate: str, url: str) -> bool:
    """Whether a page fetched from ``url`` may name ``candidate`` its canonical address:
    a URL we could fetch (http/https, a host, a port that exists) on the same site. The
    canonical URL becomes the article's id, so another site's, or one nobody can open,
    would not do."""
    try:
        check_url(candidate)
    except PermanentFetchError:
        return False
    return same_site(candidate, url)


def page_language(html: str) -> str | None:
    """Return the language the page declares (<html lang>, then og:locale), lower-case."""
    head = html[:16_384]
    match = _HTML_LANG.search(head) or _OG_LOCALE.search(head)
    return match.group(1).replace("_", "-").lower() if match else None


def page_updated(html: str) -> str | None:
    """When the page says it was last modified (ISO 8601 UTC), if it says so credibly."""
    for key in _UPDATED_KEYS:
        position = html.find(key)
        while position >= 0:
            value = _date_at(html, key, position)
            if value and (iso := plausible_date(iso_from_text(value))):
                return iso
            position = html.find(key, position + len(key))
    return None


def _date_at(html: str, key: str, position: int) -> str | None:
    if key.startswith('"'):  # a JSON key: its value follows
        match = _JSON_DATE.match(html, position + len(key) - 1)
    else:  # an attribute value: the date is the tag's content= or datetime=
        start, end = html.rfind("<", 0, position), html.find(">", position)
        match = _TAG_DATE.search(html, start, end) if start >= 0 and end >= 0 else None
    return match.group(1) if match else None


def plausible_date(iso: str | None) -> str | None:
    """``iso`` unless it is before EARLIEST_DATE or more than a day ahead of now."""
    if iso is None or iso < EARLIEST_DATE or iso > utc_iso(time.time() + 86_400):
        return None
    return iso


def without_headline(text: str, title: str | None) -> str:
    """Drop a first line that repeats the title: the headline belongs in ``title``."""
    first, _, rest = text.partition("\n")
    if title and first.strip().casefold() == title.strip().casefold():
        return rest.strip()
    return text


def split_list(value: str | None, separator: str) -> list[str]:
    """Split a joined metadata string into unique, stripped items, order kept."""
    if not value:
        return []
    return list(dict.fromkeys(item.strip() for item in value.split(separator) if item.strip()))


def _tags(categories: list[str] | None, tags: list[str] | None) -> list[str]:
    items: list[str] = []
    for value in [*(categories or []), *(tags or [])]:
        items.extend(split_list(value, ","))
    return list(dict.fromkeys(items))


def release_memory() -> None:
    """Drop trafilatura's, htmldate's and courlan's caches (they grow over long runs)."""
    reset_caches()


def _keep_stoplist_sets() -> None:
    """Give justext's stoplist sets a cache of their own, which ``reset_caches`` leaves
    alone. It held one entry: the set of trafilatura's ~150,000 stopwords of every
    language, the same at every call. Emptied with the others, it was rebuilt after each
    reset (every 500 pages), ~70 ms, and freed nothing: the 40 pages after a reset cost
    12-42 ms more than the 40 before it, now about the same. ``classify_paragraphs``
    looks the function up in its module at each call, so it finds this one."""
    current = justext.core.define_stoplist
    if not getattr(current, "kept_by_newswire", False):
        kept = functools.lru_cache(maxsize=8)(current.__wrapped__)
        kept.kept_by_newswire = True  # type: ignore[attr-defined]
        justext.core.define_stoplist = kept


_keep_stoplist_sets()


class _NoCacheToClear(logging.Filter):
    """htmldate's ``reset_caches`` logs an ERROR at each call when charset_normalizer's
    functions have no cache to clear (its compiled builds): nothing is wrong, yet an
    operator saw an error every RESET_CACHES_EVERY pages an extraction process took."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("impossible to clear cache for function")


logging.getLogger("htmldate.meta").addFilter(_NoCacheToClear())
