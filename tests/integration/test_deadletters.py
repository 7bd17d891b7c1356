"""Dead-lettered entries given another go (`deadletter retry`), through the running pipeline."""

from __future__ import annotations

import time

import pytest

from tests.servers.newsroom import Newsroom, Route
from tests.support import article_html, articles_of, drain, feed_polled, rss, story
from worker.deadletters import retry_dead_letters
from worker.replay import request_poll
from worker.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def test_retry_fetches_what_an_outage_failed_once_and_only_what_was_asked(
    rt: Runtime, newsroom: Newsroom
) -> None:
    tag = f"dl{time.time_ns()}"
    down = newsroom.add(f"/{tag}/down.html", Route(status=404, body=b"gone for now"))
    refused = newsroom.add(f"/{tag}/refused.html", Route(status=403, body=b"no"))
    feed = newsroom.add(
        f"/{tag}/feed.xml",
        content_type="application/rss+xml",
        body=rss([{"title": "down", "link": down}, {"title": "refused", "link": refused}]),
    )
    feed_id = rt.registry.add(feed).feed_id
    started_ms = int(time.time() * 1000)
    request_poll(rt, feed_id)
    feed_polled(rt, feed_id)
    drain(rt)
    assert articles_of(rt, feed) == []
    assert newsroom.count(f"/{tag}/down.html") == 1  # a 404 is not retried by itself

    # The site is back; the operator retries the 404s only.
    newsroom.add(f"/{tag}/down.html", body=article_html("Back up", story(tag)))
    dry = retry_dead_letters(rt, frozenset({"http_404"}), started_ms, dry_run=True)
    assert (dry.dead_letters, dry.requeued) == (1, 1)
    report = retry_dead_letters(rt, frozenset({"http_404"}), started_ms)
    assert (report.dead_letters, report.requeued, report.not_failed) == (1, 1, 0)
    drain(rt)  # sweeps as the scheduler does
    assert [a["url"] for a in articles_of(rt, feed)] == [down]
    assert newsroom.count(f"/{tag}/refused.html") == 1  # another reason: left alone

    again = retry_dead_letters(rt, frozenset({"http_404"}), started_ms)
    assert (again.requeued, again.not_failed) == (0, 1)  # published since: nothing to do
    drain(rt)
    assert newsroom.count(f"/{tag}/down.html") == 2 and len(articles_of(rt, feed)) == 1
