"""The pipeline end to end: loopback feeds and pages -> real workers -> Redis streams."""

from __future__ import annotations

import json
import time

import pytest

from tests.servers.newsroom import Newsroom, Route
from tests.support import (
    article_html,
    articles_of,
    drain,
    feed_polled,
    messages,
    rss,
    story,
    wait_until,
)
from worker.dedup.canonical import url_id
from worker.ledger import Leases, Ledger
from worker.model import FeedEntry
from worker.pipeline import fetch_stage
from worker.replay import request_poll
from worker.runtime import Runtime
from worker.scheduler import sweep
from worker.tasks import extract_pages, fetch_pages, ingest_pages

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def serve_feed(room: Newsroom, name: str, count: int) -> tuple[str, list[str]]:
    """Serve a feed of ``count`` unique articles; return the feed URL and page URLs."""
    links = []
    for i in range(count):
        links.append(
            room.add(
                f"/{name}/{i}.html",
                body=article_html(f"{name} {i}", story(f"{name}-{i}-{time.time()}")),
            )
        )
    items = [
        {"title": f"{name} {i}", "link": link, "guid": f"{name}-{i}"}
        for i, link in enumerate(links)
    ]
    return room.add(f"/{name}/feed.xml", body=rss(items), content_type="application/rss+xml"), links


def ingest(rt: Runtime, feed_url: str, polls: int = 1) -> str:
    record = rt.registry.add(feed_url)
    request_poll(rt, record.feed_id)
    feed_polled(rt, record.feed_id, polls)
    drain(rt)
    return record.feed_id


def extraction_counters(rt: Runtime) -> tuple[int, int]:
    pages, cpu_ms = rt.client.hmget(rt.keys.stats, ["extractions", "extraction_cpu_ms"])
    return int(pages or 0), int(cpu_ms or 0)


def test_feed_of_several_items_ends_as_that_many_entries(rt: Runtime, newsroom: Newsroom) -> None:
    feed_url, links = serve_feed(newsroom, "several", 6)
    pages_before, cpu_before = extraction_counters(rt)
    ingest(rt, feed_url)
    published = articles_of(rt, feed_url)
    assert sorted(m["url"] for m in published) == sorted(links)
    assert len({m["id"] for m in published}) == 6
    assert all(m["extraction"] == "page" and len(m["text"]) > 200 for m in published)
    assert all(newsroom.count(f"/several/{i}.html") == 1 for i in range(6))
    # the workers count pages extracted and their CPU (`status`), after each batch
    assert wait_until(lambda: extraction_counters(rt)[0] >= pages_before + 6, 10)
    assert extraction_counters(rt)[1] > cpu_before


def test_pages_slower_than_the_fused_task_waits_are_handed_over(
    rt: Runtime, newsroom: Newsroom
) -> None:
    """A fused task extracts its pages as they arrive and waits FETCH_PATIENCE_S (1 s)
    for the next one; pages slower than that are handed over through Redis to the
    extract queue instead of holding the process. Each is fetched once, published once."""
    links = {}
    for i, delay_s in enumerate([0.0, 0.0, 0.0, 1.6, 1.6]):  # read timeout: 2 s
        body = article_html(f"patience {i}", story(f"patience-{i}-{time.time()}"))
        links[i] = newsroom.add(f"/patience/{i}.html", Route(body=body, delay_s=delay_s))
    feed = rt.registry.add(newsroom.url("/patience/feed.xml"))  # never polled
    entries = [FeedEntry(url_id(link), feed.feed_id, feed.url, link) for link in links.values()]
    ingest_pages.delay(rt.ledger.claim(feed.feed_id, entries))  # the cpu workers' fused task
    drain(rt)
    assert sorted(m["url"] for m in articles_of(rt, feed.url)) == sorted(links.values())
    extract_attempts = {
        i: rt.ledger.state(url_id(link)).get("attempts_extract") for i, link in links.items()
    }  # only a handed-over page goes through the extract stage's own start
    assert extract_attempts == {0: None, 1: None, 2: None, 3: "1", 4: "1"}
    assert all(newsroom.count(f"/patience/{i}.html") == 1 for i in links)


def test_task_delivered_twice_yields_one_entry(rt: Runtime, newsroom: Newsroom) -> None:
    feed_url, links = serve_feed(newsroom, "twice", 2)
    feed_id = ingest(rt, feed_url)
    entry_id = url_id(links[0])
    # Redeliver the work of both article paths after the fact, and race two copies of each.
    for _ in range(2):
        ingest_pages.delay([entry_id])
        fetch_pages.delay([entry_id])
        extract_pages.delay([entry_id])
    time.sleep(1.0)
    drain(rt)
    published = articles_of(rt, feed_url)
    assert sorted(m["url"] for m in published) == sorted(links)
    assert articles_of(rt, feed_url, rt.keys.duplicates) == []
    assert rt.ledger.state(entry_id)["state"] == "published"
    # A new poll of the same feed claims nothing: no page fetched again.
    request_poll(rt, feed_id)
    feed_polled(rt, feed_id, 2)
    drain(rt)
    assert newsroom.count("/twice/0.html") == 1
    assert len(articles_of(rt, feed_url)) == 2


def test_feed_answering_304_is_not_reparsed(rt: Runtime, newsroom: Newsroom) -> None:
    feed_url, _links = serve_feed(newsroom, "etag", 2)
    body = newsroom.routes["/etag/feed.xml"].body

    def conditional(handler) -> None:  # type: ignore[no-untyped-def]
        if handler.headers.get("If-None-Match") == '"v1"':
            handler.send_response(304)
            handler.send_header("ETag", '"v1"')
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "application/rss+xml")
        handler.send_header("ETag", '"v1"')
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    newsroom.routes["/etag/feed.xml"] = Route(behaviour=conditional)
    feed_id = ingest(rt, feed_url)
    before = rt.registry.get(feed_id)
    assert before is not None and before.entries_seen == 2 and before.etag == '"v1"'
    request_poll(rt, feed_id)
    feed_polled(rt, feed_id, 2)
    after = rt.registry.get(feed_id)
    assert after is not None
    assert newsroom.requests_to("/etag/feed.xml")[-1].headers.get("if-none-match") == '"v1"'
    assert after.not_modified == before.not_modified + 1
    assert after.parsed == before.parsed  # no parse on 304
    assert after.entries_seen == before.entries_seen
    assert len(articles_of(rt, feed_url)) == 2


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (Route(status=500, body=b"oops"), "http_500"),
        (Route(body=b"<html><body>not a feed at all</body></html>"), "not_a_feed"),
        (Route(body=b"/etc/passwd", content_type="text/plain"), "not_a_feed"),
    ],
)
def test_broken_feed_is_recorded_and_others_go_on(
    rt: Runtime, newsroom: Newsroom, route: Route, reason: str
) -> None:
    broken_url = newsroom.add("/broken/feed.xml", route)
    good_url, links = serve_feed(newsroom, f"good-{reason}", 3)
    broken = rt.registry.add(broken_url)
    good = rt.registry.add(good_url)
    request_poll(rt, broken.feed_id)
    request_poll(rt, good.feed_id)
    feed_polled(rt, broken.feed_id)
    feed_polled(rt, good.feed_id)
    drain(rt)
    assert sorted(m["url"] for m in articles_of(rt, good_url)) == sorted(links)
    record = rt.registry.get(broken.feed_id)
    assert record is not None and record.status == "error"
    assert record.last_error.startswith(reason) and record.consecutive_failures == 1
    dead = [m for _sid, m in messages(rt, rt.keys.deadletter) if m["url"] == broken_url]
    assert [(m["kind"], m["reason"]) for m in dead] == [("feed", reason)]
    assert "root:" not in json.dumps(dead)  # a path-like body is never read as a file


def test_unreachable_feed_is_recorded(rt: Runtime, newsroom: Newsroom) -> None:
    from worker.redis import free_port

    url = f"http://127.0.0.1:{free_port()}/feed.xml"
    record = rt.registry.add(url)
    request_poll(rt, record.feed_id)
    feed_polled(rt, record.feed_id)
    after = rt.registry.get(record.feed_id)
    assert after is not None and after.status == "error"
    assert after.last_error.startswith("connection_error")
    assert after.next_poll is not None and after.next_poll > time.time()


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (Route(status=404, body=b"gone"), "http_404"),
        (Route(body=b"%PDF-1.4 ...", content_type="application/pdf"), "bad_content_type"),
        (Route(body=b"", content_type="text/html"), "empty_body"),
        (Route(body=b"<html><body><p>short</p></body></html>"), "no_content"),
    ],
)
def test_bad_pages_are_dead_lettered(
    rt: Runtime, newsroom: Newsroom, route: Route, reason: str
) -> None:
    tag = f"bad-{reason}"
    page_url = newsroom.add(f"/{tag}/page.html", route)
    good_url = newsroom.add(
        f"/{tag}/good.html", body=article_html("good", story(f"{tag}-{time.time()}"))
    )
    feed_url = newsroom.add(
        f"/{tag}/feed.xml",
        content_type="application/rss+xml",
        body=rss([{"title": "bad", "link": page_url}, {"title": "good", "link": good_url}]),
    )
    ingest(rt, feed_url)
    assert [m["url"] for m in articles_of(rt, feed_url)] == [good_url]
    dead = [m for _sid, m in messages(rt, rt.keys.deadletter) if m["url"] == page_url]
    assert [(m["kind"], m["reason"]) for m in dead] == [("entry", reason)]
    assert rt.ledger.state(url_id(page_url))["state"] == "failed"


def test_page_without_text_falls_back_to_feed_summary(rt: Runtime, newsroom: Newsroom) -> None:
    summary = " ".join(story(f"summary-{time.time()}", 2))
    page_url = newsroom.add(
        "/paywall/a.html", body=b"<html><body><div>Subscribe to read</div></body></html>"
    )
    feed_url = newsroom.add(
        "/paywall/feed.xml",
        content_type="application/rss+xml",
        body=rss([{"title": "Paywalled", "link": page_url, "description": summary}]),
    )
    ingest(rt, feed_url)
    [article] = articles_of(rt, feed_url)
    assert article["extraction"] == "feed"
    assert article["text"] == summary
    assert article["title"] == "Paywalled"


def test_exact_duplicate_under_another_url_goes_to_duplicates(
    rt: Runtime, newsroom: Newsroom
) -> None:
    paragraphs = story(f"syndicated-{time.time()}")
    first = newsroom.add("/wire/a.html", body=article_html("Wire story", paragraphs))
    second = newsroom.add("/partner/b.html", body=article_html("Wire story (partner)", paragraphs))
    feed_a = newsroom.add(
        "/wire/feed.xml",
        content_type="application/rss+xml",
        body=rss([{"title": "a", "link": first}]),
    )
    feed_b = newsroom.add(
        "/partner/feed.xml",
        content_type="application/rss+xml",
        body=rss([{"title": "b", "link": second}]),
    )
    ingest(rt, feed_a)
    ingest(rt, feed_b)
    [original] = articles_of(rt, feed_a)
    assert articles_of(rt, feed_b) == []
    [duplicate] = articles_of(rt, feed_b, rt.keys.duplicates)
    assert duplicate["duplicate_of"] == original["id"]
    assert duplicate["similarity"] == 1.0


def test_lost_task_is_reenqueued_by_the_sweeper(rt: Runtime, newsroom: Newsroom) -> None:
    page = newsroom.add("/lost/a.html", body=article_html("Lost", story(f"lost-{time.time()}")))
    feed_url = newsroom.add("/lost/feed.xml", body=b"", content_type="application/rss+xml")
    # The poller claimed the entry, then its fetch task vanished (kombu#305): nothing enqueued.
    short = Ledger(
        rt.client, rt.keys, Leases(queued_s=0.2, running_s=15, ttl_s=3600, max_attempts=3)
    )
    entry = FeedEntry(
        entry_id=url_id(page), feed_id="lost", feed_url=feed_url, url=page, title="Lost"
    )
    assert short.claim("lost", [entry]) == [entry.entry_id]
    assert short.claim("lost", [entry]) == []  # a claim is taken once
    time.sleep(0.3)
    assert sweep(rt) >= 1
    drain(rt)
    assert [m["url"] for m in articles_of(rt, feed_url)] == [page]
    assert newsroom.count("/lost/a.html") == 1


def test_transient_page_error_is_retried(rt: Runtime, newsroom: Newsroom) -> None:
    paragraphs = story(f"flaky-{time.time()}")
    calls = {"n": 0}

    def flaky(handler) -> None:  # type: ignore[no-untyped-def]
        calls["n"] += 1
        status, body = (
            (503, b"busy") if calls["n"] == 1 else (200, article_html("Flaky", paragraphs))
        )
        handler.send_response(status)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    page = newsroom.add("/flaky/a.html", Route(behaviour=flaky))
    feed_url = newsroom.add(
        "/flaky/feed.xml",
        content_type="application/rss+xml",
        body=rss([{"title": "f", "link": page}]),
    )
    record = rt.registry.add(feed_url)
    request_poll(rt, record.feed_id)
    feed_polled(rt, record.feed_id)
    entry_id = url_id(page)
    assert wait_until(lambda: rt.ledger.state(entry_id).get("state") == "retry_wait", 10)
    rt.client.zadd(rt.keys.inflight, {entry_id: time.time() + 60})  # as Retry-After: 60 would
    stale = fetch_stage(rt, entry_id, hand_over=False)  # a stale copy of its task, run here
    assert (stale.next, stale.detail) == ("done", "retry_wait")
    assert calls["n"] == 1  # the server is not asked again before the backoff is over
    rt.client.zadd(rt.keys.inflight, {entry_id: 0})  # skip the backoff wait
    sweep(rt)
    drain(rt)
    assert [m["url"] for m in articles_of(rt, feed_url)] == [page]
    assert rt.ledger.state(entry_id)["attempts_fetch"] == "2"
