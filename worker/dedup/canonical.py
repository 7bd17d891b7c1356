"""Canonical URLs: one spelling per article, so ids and claims agree across feeds.

courlan does the general normalization (case, default ports, percent-encoding, sorted
query, common tracking parameters); we add what it leaves: fragments, trailing slashes,
a few more tracking parameters, and AMP and mobile variants of a page (AMP paths and
parameters, amp./m./mobile. hosts, Google's AMP cache) mapped to the page itself.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from courlan import normalize_url
from courlan.urlutils import is_external

VARIANT_HOST = re.compile(r"^(?:(?:amp|m|mobile)\.)+(?=[^.]+\.[^.]+)")  # amp.m.x.com too
AMP_CACHE = re.compile(r"^/[cvi]/(?:s/)?(?P<host>[^/]+)(?P<path>/.*)?$")
AMP_PATH = re.compile(r"(?:/amp)+(?=/|$)|\.amp(?=\.html?$)")
# courlan drops utm_*, fbclid, gclid and similar; these are the common ones it keeps
EXTRA_TRACKERS = frozenset({
    "amp", "outputtype", "_ga", "_gl", "igshid", "mc_cid", "mc_eid", "ocid", "cmpid",
    "smid", "smtyp", "sh", "spm", "sr_share", "guccounter", "guce_referrer",
    "guce_referrer_sig", "__twitter_impression", "s_cid", "ito", "wt.mc_id", "ns_mchannel",
    "ns_source", "ns_campaign", "ns_linkname", "ns_fee", "rss", "taid", "cid", "at_medium",
    "at_campaign",
})  # fmt: skip


def _unwrap_amp_cache(url: str) -> str:
    """https://example-com.cdn.ampproject.org/c/s/example.com/a -> https://example.com/a"""
    parts = urlsplit(url)
    if not (parts.hostname or "").endswith(".cdn.ampproject.org"):
        return url
    match = AMP_CACHE.match(parts.path)
    if match is None:
        return url
    query = f"?{parts.query}" if parts.query else ""
    return f"https://{match['host']}{match['path'] or '/'}{query}"


def canonical_url(url: str) -> str:
    """Return the canonical form of ``url``: lower-case host without AMP/mobile prefixes,
    no default port, no fragment, no tracking parameters, sorted query, AMP paths removed,
    no trailing slash (except the root)."""
    try:
        normalized = normalize_url(_unwrap_amp_cache(url.strip()))
    except ValueError:
        return url.strip()
    parts = urlsplit(normalized)
    host = VARIANT_HOST.sub("", parts.netloc)
    path = AMP_PATH.sub("", parts.path).rstrip("/") or "/"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k.lower() not in EXTRA_TRACKERS]  # fmt: skip
    return urlunsplit((parts.scheme, host, path, urlencode(sorted(query), safe="/:"), ""))


def url_id(url: str) -> str:
    """The stable id of an article URL: 128 bits of SHA-256 of its canonical form, where
    the scheme and a leading "www." do not count (the same page either way)."""
    parts = urlsplit(canonical_url(url))
    host = parts.netloc.removeprefix("www.")
    key = urlunsplit(("", host, unquote(parts.path), parts.query, ""))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def same_site(url: str, reference: str) -> bool:
    """Whether ``url`` belongs to the same site as ``reference`` (so a page may name it
    canonical without hijacking another site's id)."""
    try:
        return not is_external(url, reference, ignore_suffix=False)
    except (ValueError, TypeError):
        return False
