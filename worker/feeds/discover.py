"""Feed autodiscovery: from a site's address to the feeds it offers.

The address itself may be a feed. Otherwise the page's <link rel="alternate"> feeds are
taken (trafilatura's feed finder reads them), then a few common paths are probed.
Every request goes through our own Fetcher, so its limits and address guard apply.
"""

from __future__ import annotations

import logging
from urllib.parse import urljoin, urlsplit

from trafilatura.feeds import FeedParameters, determine_feed

from worker.errors import FeedError, FetchError
from worker.feeds.parse import parse_feed
from worker.fetch.client import Fetcher
from worker.fetch.decode import decode_html
from worker.fetch.limits import FetchLimits

COMMON_PATHS = ("/feed", "/rss", "/rss.xml", "/feed.xml", "/atom.xml", "/index.xml",
                "/feeds/posts/default", "/feed.json", "/news-sitemap.xml")  # fmt: skip
# Each candidate costs a fetch, one after the other; a directory page linking thousands of
# feeds would keep `feeds add` busy for hours (add such feeds by OPML instead).
MOST_CHECKED = 50

log = logging.getLogger(__name__)


def is_feed(fetcher: Fetcher, url: str, limits: FetchLimits) -> bool:
    """Whether ``url`` answers with something we can parse as a feed."""
    try:
        response = fetcher.get(url, limits)
        parse_feed(response.body, response.url, response.headers)
    except (FetchError, FeedError):
        return False
    return True


def discover(fetcher: Fetcher, url: str, limits: FetchLimits, probe: bool = True) -> list[str]:
    """Feeds found at ``url``: itself if it is one, else its advertised feeds, else
    common paths that answer with a feed. Empty if none."""
    response = fetcher.get(url, limits)
    try:
        parse_feed(response.body, response.url, response.headers)
        return [response.url]
    except FeedError:
        pass
    html = decode_html(response.body, response.content_type)
    host = urlsplit(response.url).hostname or ""
    advertised = determine_feed(html, FeedParameters(response.url, host, response.url))
    if len(advertised) > MOST_CHECKED:
        log.warning(
            "%s links %d possible feeds; only the first %d are checked",
            response.url, len(advertised), MOST_CHECKED,
        )  # fmt: skip
    found = [link for link in advertised[:MOST_CHECKED] if is_feed(fetcher, link, limits)]
    if found or not probe:
        return found
    candidates = (urljoin(response.url, path) for path in COMMON_PATHS)
    return [link for link in candidates if is_feed(fetcher, link, limits)][:1]
