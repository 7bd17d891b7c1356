"""Hostile servers on loopback: each page ends as one explained dead letter within its
deadline, worker memory stays bounded, and the pipeline goes on."""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
import zlib
from pathlib import Path

import brotli
import psutil
import pytest

from tests.servers.newsroom import Newsroom, Route, connection_reset, endless_body, slow_drip
from tests.support import (
    article_html,
    articles_of,
    deployment,
    drain,
    feed_polled,
    messages,
    rss,
    story,
)
from worker import pipeline
from worker.config import Settings
from worker.dedup.canonical import url_id
from worker.ledger import HandedPage
from worker.model import FeedEntry
from worker.replay import request_poll
from worker.runtime import Runtime
from worker.service import WorkerProcesses

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def gzip_bomb(decoded_mb: int = 200) -> bytes:
    """gzip of ``decoded_mb`` MB of zeros (about 1000:1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\0" * (1 << 20)
    return b"".join(packer.compress(zeros) for _ in range(decoded_mb)) + packer.flush()


def brotli_bomb(decoded_mb: int = 200) -> bytes:
    """brotli of ``decoded_mb`` MB of zeros (a few hundred bytes)."""
    return brotli.compress(b"\0" * (decoded_mb << 20), quality=5)


def nested_tags(size: int) -> bytes:
    depth = size // 12
    return (
        b"<html><body>"
        + b"<div><span>" * depth
        + b"x"
        + b"</span></div>" * depth
        + b"</body></html>"
    )


def many_paragraphs(count: int) -> bytes:
    """About 100 bytes a paragraph; trafilatura takes seconds over 20,000 of them."""
    items = "".join(
        f"<p>Paragraph {i} says something about item {i}.</p><div><a href='/x{i}'>{i}</a></div>"
        for i in range(count)
    )
    return f"<html><body><article>{items}</article></body></html>".encode()


def invalid_utf8_page() -> bytes:
    body = article_html("Bad bytes", story(f"utf8-{time.time()}"))
    return body.replace(b"<p>", b"<p>\xff\xfe\xc3\x28 ", 3)


def redirect(location: str) -> Route:
    return Route(status=302, headers={"Location": location}, body=b"")


def peak_rss(pid: int) -> int:
    """A process's peak resident set (VmHWM): a bomb decoded and freed still shows."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1]) << 10


class PeakMemory:
    """How far each worker process's peak resident set rose while the block ran, sampled
    every 50 ms: the io worker, the cpu pool's parent and its children (which download
    the pages on the fused article path), including a child that Celery replaces for its
    size (``max_memory_per_child_kb``) before the end; a new process counts from the
    largest resident set any of them had before."""

    def __init__(self, workers: WorkerProcesses) -> None:
        self._roots = [psutil.Process(p.pid) for p in workers.processes.values()]
        running = self._processes()
        self._before = {proc.pid: peak_rss(proc.pid) for proc in running}
        self._baseline = max(proc.memory_info().rss for proc in running)
        self._peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _processes(self) -> list[psutil.Process]:
        return [proc for root in self._roots for proc in [root, *root.children(recursive=True)]]

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            for proc in self._processes():
                with contextlib.suppress(OSError, StopIteration):
                    self._peaks[proc.pid] = max(self._peaks.get(proc.pid, 0), peak_rss(proc.pid))

    def largest_rise(self) -> int:
        return max(
            peak - self._before.get(pid, self._baseline) for pid, peak in self._peaks.items()
        )

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


HOSTILE = {
    "gzip-bomb": ("body_too_large", lambda room: Route(
        body=gzip_bomb(), headers={"Content-Encoding": "gzip"})),
    "brotli-bomb": ("body_too_large", lambda room: Route(
        body=brotli_bomb(), headers={"Content-Encoding": "br"})),
    "endless": ("body_too_large", lambda room: Route(behaviour=endless_body)),
    "drip": ("deadline_exceeded", lambda room: Route(behaviour=slow_drip)),
    "loop": ("redirect_loop", lambda room: redirect("/hostile/loop2.html")),
    "pdf": ("bad_content_type", lambda room: Route(body=b"%PDF", content_type="application/pdf")),
    "image": ("bad_content_type", lambda room: Route(body=b"\x89PNG", content_type="image/png")),
    "huge": ("body_too_large", lambda room: Route(body=nested_tags(10 << 20))),
    "slow-extraction": ("extraction_timeout", lambda room: Route(body=many_paragraphs(20_000))),
    "empty": ("empty_body", lambda room: Route(body=b"")),
    "error": ("http_500", lambda room: Route(status=500, body=b"oops")),
    "reset": ("connection_reset", lambda room: Route(behaviour=connection_reset)),
    "double-gzip": ("decode_error", lambda room: Route(body=gzip.compress(b"<html>x</html>"))),
}  # fmt: skip


def test_hostile_pages_end_as_explained_dead_letters(
    rt: Runtime, newsroom: Newsroom, workers: WorkerProcesses
) -> None:
    links = {name: newsroom.add(f"/hostile/{name}.html", make(newsroom))
             for name, (_reason, make) in HOSTILE.items()}  # fmt: skip
    newsroom.add("/hostile/loop2.html", redirect("/hostile/loop.html"))
    links["utf8"] = newsroom.add("/hostile/utf8.html", Route(body=invalid_utf8_page()))
    links["good"] = newsroom.add(
        "/hostile/good.html", body=article_html("Fine", story(f"g{time.time()}"))
    )
    feed = newsroom.add("/hostile/feed.xml", content_type="application/rss+xml",
                        body=rss([{"title": n, "link": u} for n, u in links.items()]))  # fmt: skip
    started = time.monotonic()
    with PeakMemory(workers) as peak:
        feed_id = rt.registry.add(feed).feed_id
        request_poll(rt, feed_id)
        feed_polled(rt, feed_id)
        drain(rt, timeout=90)
    elapsed = time.monotonic() - started
    # No process ever held a bomb's 200 MB decoded, or the endless body.
    assert peak.largest_rise() < 150 * 2**20, peak.largest_rise() >> 20
    dead = {m["url"]: m for _s, m in messages(rt, rt.keys.deadletter) if m.get("feed_url") == feed}
    for name, (reason, _make) in HOSTILE.items():
        assert dead[links[name]]["reason"] == reason, name
        assert dead[links[name]]["kind"] == "entry"
    assert dead[links["reset"]]["attempts"] == rt.settings.max_attempts  # transient: retried
    assert newsroom.count("/hostile/error.html") == rt.settings.max_attempts
    published = {m["url"]: m for m in articles_of(rt, feed)}
    assert set(published) == {links["utf8"], links["good"]}  # the worker went on
    assert "\ufffd" in published[links["utf8"]]["text"] or published[links["utf8"]]["text"]
    # Every deadline held: three attempts of the 3 s drip are the slowest path.
    assert elapsed < 3 * rt.settings.fetch_deadline_s + 30
    for name in HOSTILE:
        assert rt.ledger.state(url_id(links[name]))["state"] == "failed"


def test_private_targets_end_as_blocked_dead_letters(
    settings: Settings, newsroom: Newsroom
) -> None:
    """With private hosts refused (the default), a link or a redirect to a private address
    ends as a ``blocked_address`` dead letter, without a connection to it."""
    secret = Newsroom()  # a "private" service the feed wants us to reach
    secret.add("/admin.html", body=article_html("Secret", story("secret")))
    target = secret.url("/admin.html")
    links = {
        "redirect": newsroom.add("/private/redirect.html", redirect(target)),
        "direct": target,
        "lan": "http://10.0.0.1/router.html",
        "good": newsroom.add("/private/good.html", body=article_html("Fine", story("pv-good"))),
    }
    feed = newsroom.add("/private/feed.xml", content_type="application/rss+xml",
                        body=rss([{"title": n, "link": u} for n, u in links.items()]))  # fmt: skip
    try:
        with deployment(settings, settings.redis_url or "", allow_private_hosts=False) as (rt, _):
            rt.allow_origin(newsroom.host, newsroom.port)  # the feed's own server only
            feed_id = rt.registry.add(feed).feed_id
            request_poll(rt, feed_id)
            feed_polled(rt, feed_id)
            drain(rt, timeout=60)
            dead = {m["url"]: m for _s, m in messages(rt, rt.keys.deadletter)}
            for name in ("redirect", "direct", "lan"):
                assert dead[links[name]]["reason"] == "blocked_address", name
            assert [m["url"] for m in articles_of(rt, feed)] == [links["good"]]
        assert secret.count("/admin.html") == 0  # never connected
    finally:
        secret.close()


@pytest.mark.parametrize("retry_after", [float("inf"), 10.0**300, 250 * 365 * 86_400.0])
def test_a_servers_retry_after_counts_up_to_a_day(own_rt: Runtime, retry_after: float) -> None:
    """A page's 503 said Retry-After: 400 nines (inf) or a date in 9999: the entry was
    parked for ever, neither retried nor dead-lettered."""
    entry_id = f"retry-{time.time_ns()}"
    delay = own_rt.ledger.retry_later(entry_id, 1, at_least_s=retry_after)
    due = own_rt.client.zscore(own_rt.keys.inflight, entry_id)
    assert delay == 86_400.0
    assert due is not None and due <= time.time() + 86_400


def test_a_page_that_breaks_extraction_is_dead_lettered_alone(own_rt: Runtime) -> None:
    """An exception no check foresaw (here a feed summary that is no text) fails its own
    entry with its reason; raised, it ended the task's whole batch and came back at each
    retry until "gave_up_after_attempts"."""
    url = f"https://news.example/broken-{time.time_ns()}.html"
    entry = FeedEntry(entry_id=url_id(url), feed_id="f", feed_url="https://news.example/feed",
                      url=url, summary=5)  # type: ignore[arg-type]  # fmt: skip
    page = HandedPage(url, "2026-12-06T00:00:00Z", "<html><body><p>Too short.</p></body></html>")
    result = pipeline.extract_fetched(own_rt, pipeline.Fetched(entry, page, 1))
    assert (result.next, result.detail) == ("failed", "extraction_error")
    (_sid, dead), *_ = messages(own_rt, own_rt.keys.deadletter)
    assert (dead["reason"], dead["url"]) == ("extraction_error", url)
    assert dead["detail"].startswith("TypeError")
