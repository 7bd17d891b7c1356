"""Fetch an article page: HTML only, decoded to text under the caps."""

from __future__ import annotations

from functools import partial

from worker.errors import PermanentFetchError
from worker.fetch.client import Fetcher, Response
from worker.fetch.decode import decode_html
from worker.fetch.limits import HTML_TYPES, FetchLimits
from worker.model import FetchedPage

_HTML_MARKERS = (b"<html", b"<!doctype html", b"<body", b"<head", b"<p", b"<div", b"<article")


def accept_html(content_type: str, url: str) -> None:
    """Refuse a response whose declared type is not HTML or XHTML (before its body is read)."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime and mime not in HTML_TYPES:
        raise PermanentFetchError("bad_content_type", url, f"Content-Type {mime}")


def fetch_page(fetcher: Fetcher, url: str, limits: FetchLimits) -> FetchedPage:
    """GET an article page and return its decoded HTML, or raise a FetchError."""
    return fetcher.get_decoded(url, limits, partial(_page, url), accept=accept_html)


def _page(url: str, body: memoryview, response: Response) -> FetchedPage:
    """The page in ``body`` (a view of the fetch thread's buffer) as text."""
    if _blank(body):
        raise PermanentFetchError("empty_body", url, "200 with an empty body")
    if body[:2] == b"\x1f\x8b":  # compressed twice, or a .gz served as text/html
        raise PermanentFetchError("decode_error", url, "gzip data without Content-Encoding")
    if not response.content_type and not _looks_like_html(body):
        raise PermanentFetchError("bad_content_type", url, "no Content-Type and not HTML")
    html = decode_html(body, response.content_type)
    return FetchedPage(response.url, response.status, response.content_type, html)


def _blank(body: memoryview) -> bool:
    """Whether the body is empty or only whitespace (its first KiB decides, mostly)."""
    return not bytes(body[:1024]).strip() and not bytes(body).strip()


def _looks_like_html(body: memoryview) -> bool:
    head = bytes(body[:2048]).lstrip().lower()
    return any(marker in head for marker in _HTML_MARKERS)
