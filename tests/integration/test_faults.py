"""Faults while work is in flight: the pipeline repairs them, nothing lost or doubled."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
import redis

from tests.servers.newsroom import Newsroom, Route
from tests.support import (
    article_html,
    articles_of,
    deployment,
    drain,
    feed_polled,
    messages,
    rss,
    story,
    supervised,
    wait_until,
)
from worker.config import Settings
from worker.dedup.canonical import url_id
from worker.redis import EmbeddedServer
from worker.replay import request_poll
from worker.runtime import Runtime
from worker.service import WorkerProcesses, WorkerSpec

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def test_killed_extraction_child_is_fetched_again_and_published_once(
    rt: Runtime, newsroom: Newsroom, workers: WorkerProcesses
) -> None:
    """The fused path (the session's workers): the child that fetched the page dies with
    it; its task comes back (acks_late) and gives back the entries it had taken, and the
    page is fetched and extracted again."""
    big, feed, entry_id = _big_page(rt, newsroom, "fusedkill")
    assert wait_until(lambda: newsroom.count("/fusedkill/big.html") == 1, 30)
    _kill_pool_children(workers)
    drain(rt, timeout=90)
    _assert_published_once(rt, feed, big, entry_id)
    assert int(rt.ledger.state(entry_id)["attempts_fetch"]) >= 2
    assert newsroom.count("/fusedkill/big.html") >= 2  # the page died with the child


def test_killed_extraction_child_on_split_path_is_redelivered_and_published_once(
    settings: Settings, newsroom: Newsroom
) -> None:
    """The split path: the page waits in Redis, so the redelivered extraction finds it
    there and the page is not fetched again."""
    with deployment(settings, settings.redis_url or "", article_path="split") as (rt, procs):
        big, feed, entry_id = _big_page(rt, newsroom, "splitkill")
        assert wait_until(lambda: rt.ledger.state(entry_id).get("state") == "extract", 30)
        _kill_pool_children(procs)
        drain(rt, timeout=90)
        _assert_published_once(rt, feed, big, entry_id)
        assert int(rt.ledger.state(entry_id)["attempts_extract"]) >= 2
        assert newsroom.count("/splitkill/big.html") == 1  # the page was not fetched again


def _big_page(rt: Runtime, newsroom: Newsroom, name: str) -> tuple[str, str, str]:
    """Serve and poll a feed of one long page: (page URL, feed URL, entry id)."""
    # ~0.5 MB of text: its extraction lasts long enough for the kill to land in it, and
    # stays well inside the tests' 2 s per-page limit on a slow, busy machine (4,000
    # paragraphs took 1.6-1.8 s alone there, and over 2 s among the other workers)
    body = article_html("Long read", story(f"{name}{time.time()}", 1200))
    big = newsroom.add(f"/{name}/big.html", body=body)
    feed = newsroom.add(f"/{name}/feed.xml", body=rss([{"title": "big", "link": big}]),
                        content_type="application/rss+xml")  # fmt: skip
    record = rt.registry.add(feed)
    request_poll(rt, record.feed_id)
    feed_polled(rt, record.feed_id)
    return big, feed, url_id(big)


def _kill_pool_children(procs: WorkerProcesses) -> None:
    """kill -9 every pool child of the cpu worker, the busy one among them; the pool
    starts new ones."""
    cpu_main = psutil.Process(procs.processes["cpu"].pid)
    size = len(cpu_main.children())
    for child in cpu_main.children():
        os.kill(child.pid, signal.SIGKILL)
    assert wait_until(lambda: len(cpu_main.children()) == size, 30)  # the pool recovered


def _assert_published_once(rt: Runtime, feed: str, big: str, entry_id: str) -> None:
    [article] = articles_of(rt, feed)
    assert article["url"] == big and len(article["text"]) > 100_000
    assert rt.ledger.state(entry_id)["state"] == "published"


def slow_feed(newsroom: Newsroom, name: str, count: int, delay_s: float) -> tuple[str, list[str]]:
    """A feed of ``count`` article pages, each answered after ``delay_s``."""
    links = []
    for i in range(count):
        body = article_html(f"{name} {i}", story(f"{name}-{i}-{time.time()}"))
        links.append(newsroom.add(f"/{name}/{i}.html", Route(body=body, delay_s=delay_s)))
    items = [{"title": f"{name} {i}", "link": link} for i, link in enumerate(links)]
    feed = newsroom.add(f"/{name}/feed.xml", body=rss(items), content_type="application/rss+xml")
    return feed, links


def states(rt: Runtime, links: list[str]) -> Counter[str]:
    return Counter(rt.ledger.state(url_id(link)).get("state", "?") for link in links)


def assert_published_once(rt: Runtime, feed: str, links: list[str]) -> None:
    published = articles_of(rt, feed)
    assert sorted(m["url"] for m in published) == sorted(links)  # every one, each once
    assert messages(rt, rt.keys.deadletter) == []
    assert states(rt, links) == Counter({"published": len(links)})


def test_killed_io_worker_loses_nothing_and_doubles_nothing(
    settings: Settings, newsroom: Newsroom
) -> None:
    """The split path, where io workers download the pages."""
    feed, links = slow_feed(newsroom, "iokill", 12, delay_s=1.0)  # read timeout: 2 s
    with deployment(settings, settings.redis_url or "", article_path="split") as (rt, procs):
        request_poll(rt, rt.registry.add(feed).feed_id)
        assert wait_until(lambda: states(rt, links)["fetch"] >= 4, 30)  # downloads in flight
        io = procs.processes["io"]
        os.kill(io.pid, signal.SIGKILL)  # kill -9 of the worker's main process
        io.wait(10)
        replacement = WorkerProcesses(rt.settings, [WorkerSpec("io", "threads", 8, name="io2")])
        replacement.start()
        try:
            drain(rt, timeout=90)  # leases expire; the sweeper re-enqueues the lost fetches
        finally:
            replacement.stop(15)
        assert_published_once(rt, feed, links)
        assert all(newsroom.count(f"/iokill/{i}.html") <= 2 for i in range(12))


def test_redis_restart_mid_run_loses_nothing_and_doubles_nothing(
    settings: Settings, newsroom: Newsroom, tmp_path: Path
) -> None:
    server = EmbeddedServer.start(tmp_path)
    feed, links = slow_feed(newsroom, "restart", 12, delay_s=0.5)
    try:
        # Everything, polls and sweeps included, runs in the deployment's own processes
        # (this process's Celery app talks to the session's broker).
        # A worker whose consumer does not resume after the restart (celery#8030) exits
        # after consumer_stall_s and is started again.
        stall = {"consumer_stall_s": 10.0}
        with (
            deployment(settings, server.url, scheduler=True, **stall) as (rt, procs),
            supervised(procs),
        ):
            rt.registry.add(feed)  # due at once: the scheduler polls it
            assert wait_until(lambda: states(rt, links)["published"] >= 2, 60)
            server.stop()  # SIGTERM: the AOF is flushed, as in a planned restart
            time.sleep(2)  # workers see the connection drop, with work in flight
            server = EmbeddedServer.start(tmp_path, port=server.port)
            assert wait_until(lambda: _answers(rt), 30)
            assert wait_until(lambda: _all_ended(rt, links), 120), states(rt, links)
            assert_published_once(rt, feed, links)
    finally:
        server.stop()


def _all_ended(rt: Runtime, links: list[str]) -> bool:
    try:
        ended = sum(states(rt, links)[s] for s in ("published", "failed", "duplicate"))
        return ended == len(links) and rt.client.zcard(rt.keys.inflight) == 0
    except redis.RedisError:
        return False


def _answers(rt: Runtime) -> bool:
    try:
        return bool(rt.client.ping())
    except redis.RedisError:
        return False
