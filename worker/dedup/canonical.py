"""Canonical URLs: one spelling per article, so ids and claims agree across feeds."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit

from courlan import normalize_url
from courlan.urlutils import is_external


def canonical_url(url: str) -> str:
    """Return the canonical form of ``url``: lower-case host, no default port, no
    fragment, tracking parameters removed, query sorted, no trailing slash noise."""
    try:
        normalized = normalize_url(url.strip())
    except ValueError:
        return url.strip()
    parts = urlsplit(normalized)
    path = parts.path
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    if not path:
        path = "/"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def url_id(url: str) -> str:
    """Return the stable id of an article URL (hex, 128 bits of SHA-256 of its canonical form)."""
    return hashlib.sha256(canonical_url(url).encode()).hexdigest()[:32]


def same_site(url: str, reference: str) -> bool:
    """Whether ``url`` belongs to the same site as ``reference`` (so a page may name it
    canonical without hijacking another site's id)."""
    try:
        return not is_external(url, reference, ignore_suffix=False)
    except (ValueError, TypeError):
        return False
