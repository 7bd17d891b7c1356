"""Article pages fetched over loopback HTTP into a fetch thread's reused buffer."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.servers.newsroom import Newsroom, Route
from worker.errors import FetchError, PermanentFetchError
from worker.fetch.client import IDLE_CONNECTIONS_PER_THREAD, KEEP_BUFFER_BYTES, Fetcher
from worker.fetch.limits import FetchLimits
from worker.fetch.page import fetch_page

LIMITS = FetchLimits(connect_timeout_s=2, read_timeout_s=5, deadline_s=10)


def page(label: str, size: int) -> str:
    """An HTML page of about ``size`` characters, with non-ASCII text."""
    paragraph = f"<p>{label}: Zürich, Kraków, 東京 — news of the day.</p>\n"
    return f"<html><body>{paragraph * (size // len(paragraph) + 1)}</body></html>"


def test_pages_of_any_size_and_encoding_come_out_whole_one_after_another(
    newsroom: Newsroom,
) -> None:
    """One thread, one buffer: a long page must not leave its tail in a shorter one, and a
    page refused halfway must not spoil the next."""
    huge, long, short = (
        page("huge", 2 * KEEP_BUFFER_BYTES),
        page("long", 600_000),
        page("short", 20_000),
    )
    latin = "<html><body><p>Ça coûte 5 €? Non: 5 francs, déjà payés.</p></body></html>"
    routes = {
        "/long": Route(body=long.encode()),
        "/short": Route(body=short.encode()),
        "/huge": Route(body=huge.encode()),
        "/gzip": Route(body=gzip.compress(long.encode()), headers={"Content-Encoding": "gzip"}),
        "/latin": Route(
            body=latin.encode("cp1252"), content_type="text/html; charset=windows-1252"
        ),
        "/blank": Route(body=b" \r\n\t " * 1000),
        "/moved": Route(status=301, headers={"Location": "/short"}),
    }
    for path, route in routes.items():
        newsroom.add(path, route)
    expected = {
        "/long": long, "/short": short, "/huge": huge, "/gzip": long, "/latin": latin,
        "/moved": short,
    }  # fmt: skip
    fetcher = Fetcher("t", allow_private=True)
    order = ["/long", "/short", "/huge", "/short", "/gzip", "/blank", "/latin", "/long", "/moved"]
    for path in order:
        if path == "/blank":
            with pytest.raises(PermanentFetchError) as info:
                fetch_page(fetcher, newsroom.url(path), LIMITS)
            assert info.value.reason == "empty_body"
            continue
        fetched = fetch_page(fetcher, newsroom.url(path), LIMITS)
        assert fetched.html == expected[path], path
    assert fetched.url == newsroom.url("/short")  # the redirect's target


def test_a_page_over_the_cap_is_refused_and_the_next_one_is_whole(newsroom: Newsroom) -> None:
    small = page("small", 5_000)
    newsroom.add("/big", Route(body=page("big", 300_000).encode()))
    newsroom.add("/small", Route(body=small.encode()))
    fetcher = Fetcher("t", allow_private=True)
    capped = FetchLimits(connect_timeout_s=2, read_timeout_s=5, deadline_s=10, max_bytes=100_000)
    with pytest.raises(PermanentFetchError) as info:
        fetch_page(fetcher, newsroom.url("/big"), capped)
    assert info.value.reason == "body_too_large"
    assert fetch_page(fetcher, newsroom.url("/small"), capped).html == small


def test_redirects_and_refusals_with_long_bodies_leave_the_next_fetch_whole(
    newsroom: Newsroom,
) -> None:
    """A redirect's body is read to its end only when short (its connection is reused);
    a long one, or an error page's, is cut short: the next fetch on the thread still
    gets its own page, whole."""
    short = page("short", 20_000)
    newsroom.add("/short", Route(body=short.encode()))
    newsroom.add(
        "/moved-long", Route(status=301, headers={"Location": "/short"}, body=b"x" * 300_000)
    )
    newsroom.add("/gone", Route(status=404, body=page("missing", 300_000).encode()))
    fetcher = Fetcher("t", allow_private=True)
    for _ in range(2):
        assert fetch_page(fetcher, newsroom.url("/moved-long"), LIMITS).html == short
        with pytest.raises(PermanentFetchError) as info:
            fetch_page(fetcher, newsroom.url("/gone"), LIMITS)
        assert info.value.reason == "http_404"
        assert fetch_page(fetcher, newsroom.url("/short"), LIMITS).html == short


BROKEN_REPLIES = {
    "garbage": b"garbage, not HTTP\r\n\r\nmore",
    "truncated": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
    "bad chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "nothing": b"",
}


@pytest.fixture
def broken_server() -> Iterator[str]:
    """A loopback server answering each connection with the next of BROKEN_REPLIES."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        for reply in BROKEN_REPLIES.values():
            conn, _ = listener.accept()
            with conn:
                conn.recv(65_536)
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/page.html"
    thread.join(10)
    listener.close()


def test_broken_replies_are_transient_connection_failures(broken_server: str) -> None:
    """A reply that is not HTTP, a body cut short, a bad chunk or no reply at all: the
    server or the network failed, so the entry is tried again (not "invalid_url")."""
    fetcher = Fetcher("t", allow_private=True)
    for name in BROKEN_REPLIES:
        with pytest.raises(FetchError) as info:
            fetch_page(fetcher, broken_server, LIMITS)
        assert (info.value.reason, info.value.transient) == ("connection_reset", True), name


def test_a_thread_keeps_one_connection_to_each_of_its_recent_hosts() -> None:
    """Keep-alive across hosts: a thread going round as many hosts as it keeps idle
    connections for opens one connection to each, not one a fetch."""
    rooms = [Newsroom(f"127.0.0.{20 + i}") for i in range(IDLE_CONNECTIONS_PER_THREAD)]
    try:
        for room in rooms:
            room.add("/a.html", Route(body=page("a", 50_000).encode()))
        fetcher = Fetcher("t", allow_private=True)
        for _round in range(3):
            for room in rooms:
                fetch_page(fetcher, room.url("/a.html"), LIMITS)
        for room in rooms:
            assert len({hit.peer for hit in room.requests_to("/a.html")}) == 1, room.host
    finally:
        for room in rooms:
            room.close()
