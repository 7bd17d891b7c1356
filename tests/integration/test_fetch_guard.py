"""The address guard and redirect policy against a real loopback server."""

from __future__ import annotations

import pytest

from tests.servers.newsroom import Newsroom, Route
from worker.errors import FetchError
from worker.fetch.client import Fetcher
from worker.fetch.limits import FetchLimits

LIMITS = FetchLimits(connect_timeout_s=1, read_timeout_s=2, deadline_s=3, max_redirects=5)
PRIVATE_TARGETS = [
    "http://127.0.0.1:{port}/", "http://[::1]:{port}/", "http://[::ffff:127.0.0.1]:{port}/",
    "http://2130706433:{port}/", "http://0177.0.0.1:{port}/", "http://localhost:{port}/",
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://192.168.0.1/",
    "http://[fe80::1]/", "http://0.0.0.0:{port}/",
]  # fmt: skip


@pytest.fixture
def guarded(newsroom: Newsroom) -> Fetcher:
    """A fetcher that refuses private addresses, except the test server's own origin."""
    origin = (newsroom.host, newsroom.port)
    return Fetcher("t", allow_private=False, origin_allowed=lambda h, p: (h, p) == origin)


@pytest.mark.parametrize("target", PRIVATE_TARGETS)
def test_private_addresses_are_blocked_directly_and_after_redirects(
    guarded: Fetcher, newsroom: Newsroom, target: str
) -> None:
    secret = Newsroom()  # a "private" service the attacker wants us to reach
    secret.add("/", Route(body=b"secret"))
    url = target.format(port=secret.port)
    redirector = newsroom.add("/r", Route(status=302, headers={"Location": url}))
    try:
        for start in (url, redirector):
            with pytest.raises(FetchError) as info:
                guarded.get(start, LIMITS)
            assert info.value.reason in ("blocked_address", "invalid_url", "dns_error"), start
        assert secret.count("/") == 0  # never connected
    finally:
        secret.close()


@pytest.mark.parametrize(
    "location",
    ["file:///etc/passwd", "ftp://example.com/x", "gopher://example.com/", "javascript:alert(1)"],
)
def test_redirects_to_other_schemes_are_refused(
    guarded: Fetcher, newsroom: Newsroom, location: str
) -> None:
    url = newsroom.add("/s", Route(status=301, headers={"Location": location}))
    with pytest.raises(FetchError) as info:
        guarded.get(url, LIMITS)
    assert info.value.reason in ("unsupported_scheme", "invalid_url")  # never fetched


def test_long_redirect_chains_stop_at_the_limit(guarded: Fetcher, newsroom: Newsroom) -> None:
    for i in range(20):
        newsroom.add(f"/hop/{i}", Route(status=307, headers={"Location": f"/hop/{i + 1}"}))
    with pytest.raises(FetchError) as info:
        guarded.get(newsroom.url("/hop/0"), LIMITS)
    assert info.value.reason == "too_many_redirects"
    assert newsroom.count("/hop/6") == 0


def test_the_allowed_origin_itself_works(guarded: Fetcher, newsroom: Newsroom) -> None:
    url = newsroom.add("/ok", Route(body=b"<html>ok</html>"))
    assert guarded.get(url, LIMITS).body == b"<html>ok</html>"
