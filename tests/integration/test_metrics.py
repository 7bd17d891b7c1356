"""Prometheus metrics: served over HTTP, counting what the running pipeline did."""

from __future__ import annotations

import dataclasses
import time
import urllib.request
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers.newsroom import Newsroom, Route
from tests.support import article_html, drain, feed_polled, rss, story
from worker.metrics import serve_metrics
from worker.replay import request_poll
from worker.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def metrics_url(rt: Runtime) -> Iterator[str]:
    served = dataclasses.replace(rt, settings=rt.settings.model_copy(update={"metrics_port": 0}))
    server = serve_metrics(served)
    assert isinstance(server, WSGIServer)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_articles_and_failures_by_reason(
    rt: Runtime, newsroom: Newsroom, metrics_url: str
) -> None:
    before = scrape(metrics_url)
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
    after = scrape(metrics_url)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "newswire_redis_up") == 1
    assert grew("newswire_entries_total", outcome="published") == 1
    assert grew("newswire_entries_total", outcome="failed") == 1
    assert grew("newswire_entry_failures_total", reason="http_404") == 1
    assert grew("newswire_polls_total", outcome="parsed") == 1
    assert grew("newswire_extractions_total") == 1
    assert grew("newswire_extraction_cpu_seconds_total") > 0
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
        rt,
        settings=rt.settings.model_copy(update={"metrics_port": 0}),
        client=type(rt.client)(host="127.0.0.1", port=1, socket_connect_timeout=0.5),
    )
    server = serve_metrics(away)
    assert server is not None
    try:
        samples = scrape(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
        server.server_close()
    assert value(samples, "newswire_redis_up") == 0
    assert not any(name.startswith("newswire_entries") for name, _labels in samples)
