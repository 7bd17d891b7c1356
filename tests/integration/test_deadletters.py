"""Dead-lettered entries given another go (`deadletter retry`), through the running pipeline."""

from __future__ import annotations

import json
import time

import pytest

from tests.servers.newsroom import Newsroom, Route
from tests.support import article_html, articles_of, drain, feed_polled, rss, story
from worker.deadletters import retry_dead_letters
from worker.model import FeedEntry
from worker.pipeline import dead_letter
from worker.replay import request_poll
from worker.runtime import Runtime

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("workers")
def test_retry_fetches_what_an_outage_failed_for_the_reasons_named(
    rt: Runtime, newsroom: Newsroom
) -> None:
    tag = f"dl{time.time_ns()}"
    down, refused = f"/{tag}/down.html", f"/{tag}/refused.html"
    newsroom.add(down, Route(status=404, body=b"gone for now"))
    newsroom.add(refused, Route(status=403, body=b"no"))
    feed = newsroom.add(
        f"/{tag}/feed.xml",
        content_type="application/rss+xml",
        body=rss([{"title": t, "link": newsroom.url(p)} for t, p in [("d", down), ("r", refused)]]),
    )
    feed_id = rt.registry.add(feed).feed_id
    since = int(time.time() * 1000)
    request_poll(rt, feed_id)
    feed_polled(rt, feed_id)
    drain(rt)
    assert articles_of(rt, feed) == [] and newsroom.count(down) == 1  # a 404 is not retried

    # Still broken, another way: retried for its 404, it fails with a 403.
    newsroom.add(down, Route(status=403, body=b"no"))
    dry = retry_dead_letters(rt, frozenset({"http_404"}), since, dry_run=True)
    assert (dry.dead_letters, dry.requeued) == (1, 1)
    assert retry_dead_letters(rt, frozenset({"http_404"}), since).requeued == 1
    drain(rt)  # sweeps as the scheduler does
    assert newsroom.count(down) == 2 and newsroom.count(refused) == 1  # the 403 left alone
    again = retry_dead_letters(rt, frozenset({"http_404"}), since)
    assert (again.dead_letters, again.requeued, again.not_failed) == (1, 0, 1)  # now a 403

    # The site is back: both 403s are retried; one page is there now, the other is not.
    newsroom.add(down, body=article_html("Back up", story(tag)))
    report = retry_dead_letters(rt, frozenset({"http_403"}), since)
    assert report.requeued == 2
    drain(rt)
    assert [a["url"] for a in articles_of(rt, feed)] == [newsroom.url(down)]
    assert newsroom.count(refused) == 2
    assert retry_dead_letters(rt, None, since).requeued == 1  # the refused page, failed again
    drain(rt)
    assert newsroom.count(down) == 3 and len(articles_of(rt, feed)) == 1  # published once


def test_retry_counts_only_entries_dead_letters(own_rt: Runtime) -> None:
    entry = FeedEntry(f"e{time.time_ns()}", "f1", "https://a.example/feed", "https://a.example/1")
    assert own_rt.ledger.claim("f1", [entry]) == [entry.entry_id]
    dead_letter(own_rt, entry, "http_500", "boom", True, 3)
    own_rt.publisher.feed_failure(
        {"schema": "newswire.deadletter/1", "kind": "feed", "reason": "http_500",
         "detail": "", "url": entry.feed_url, "failed_at": "2026-12-06T00:00:00Z"}
    )  # fmt: skip
    poison = {"id": "0" * 32, "reason": "max_deliveries", "source": "news:articles/g/1-0"}
    own_rt.client.xadd(own_rt.keys.deadletter, {**poison, "data": json.dumps({"title": "t"})})
    report = retry_dead_letters(own_rt, None, dry_run=True)
    assert (report.dead_letters, report.requeued, report.not_failed) == (1, 1, 0)
    assert own_rt.ledger.state(entry.entry_id)["state"] == "failed"  # a dry run changed nothing
