"""Prometheus metrics: served over HTTP, counting what the running pipeline did."""

from __future__ import annotations

import dataclasses
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers.newsroom import Newsroom, Route
from tests.support import article_html, drain, feed_polled, rss, story
from worker.metrics import serve_metrics
from worker.model import FeedEntry
from worker.replay import request_poll
from worker.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape_served(rt: Runtime) -> Samples:
    """Serve ``rt``'s metrics on a free loopback port and scrape them once over HTTP."""
    served = dataclasses.replace(rt, settings=rt.settings.model_copy(update={"metrics_port": 0}))
    server = serve_metrics(served)
    assert server is not None
    try:
        return scrape(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
        server.server_close()


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_articles_and_failures_by_reason(rt: Runtime, newsroom: Newsroom) -> None:
    before = scrape_served(rt)
    good = newsroom.add("/metrics/good.html", body=article_html("Good", story(time.time())))
    gone = newsroom.add("/metrics/gone.html", Route(status=404, body=b"no"))
    feed = newsroom.add(
        "/metrics/feed.xml",
        content_type="application/rss+xml",
        body=rss([{"title": "good", "link": good}, {"title": "gone", "link": gone}]),
    )
    feed_id = rt.registry.add(feed).feed_id
    request_poll(rt, feed_id)
    feed_polled(rt, feed_id)
    drain(rt)
    after = scrape_served(rt)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "newswire_redis_up") == 1
    assert grew("newswire_entries_total", outcome="published") == 1
    assert grew("newswire_entries_total", outcome="failed") == 1
    assert grew("newswire_entry_failures_total", reason="http_404") == 1
    assert grew("newswire_polls_total", outcome="parsed") == 1
    assert grew("newswire_extractions_total") == 1
    assert grew("newswire_extraction_cpu_seconds_total") > 0
    # the published entry's wait from its claim, in the histogram; the failed one is not
    assert grew("newswire_entry_latency_seconds_count") == 1
    assert grew("newswire_entry_latency_seconds_bucket", le="+Inf") == 1
    assert grew("newswire_entry_latency_seconds_bucket", le="60") == 1
    assert 0 < grew("newswire_entry_latency_seconds_sum") < 60
    assert value(after, "newswire_stream_entries", stream=rt.keys.articles) == rt.client.xlen(
        rt.keys.articles
    )
    assert value(after, "newswire_stream_entries", stream=rt.keys.deadletter) == rt.client.xlen(
        rt.keys.deadletter
    )
    assert value(after, "newswire_feeds", status="ok") >= 1
    assert value(after, "newswire_live_processes", role="worker-cpu") >= 1
    assert value(after, "process_resident_memory_bytes") > 0  # the serving process's own


def test_metrics_say_when_redis_is_away(rt: Runtime) -> None:
    away = dataclasses.replace(
        rt, client=type(rt.client)(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    )
    samples = scrape_served(away)
    assert value(samples, "newswire_redis_up") == 0
    assert not any(name.startswith("newswire_entries") for name, _labels in samples)


def test_metrics_show_the_hosts_with_the_most_entries_waiting(rt: Runtime) -> None:
    # A deployment of its own on the same server (other keys): the session's workers never
    # take these entries.
    settings = rt.settings.model_copy(update={"key_prefix": f"{rt.settings.key_prefix}-q"})
    queued = Runtime.build(settings, settings.redis_url or "")
    try:
        ids = []
        for host, count in (("slow.example", 3), ("other.example", 1)):
            for i in range(count):
                entry = FeedEntry(f"{host}-{i}", "f", "http://f/", f"https://{host}/a{i}")
                queued.client.hset(queued.keys.entry(entry.entry_id), "entry", entry.to_json())
                ids.append(entry.entry_id)
        queued.ledger.queue_for_ingest(ids)
        samples = scrape_served(queued)
    finally:
        queued.close()
    assert value(samples, "newswire_queue_length", queue="ingest") == 4
    assert value(samples, "newswire_ingest_hosts") == 2
    assert value(samples, "newswire_ingest_queued", host="slow.example") == 3
    assert value(samples, "newswire_ingest_queued", host="other.example") == 1
