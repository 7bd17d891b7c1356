"""Faults while work is in flight: the pipeline repairs them, nothing lost or doubled."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from tests.servers.newsroom import Newsroom
from tests.support import article_html, articles_of, drain, feed_polled, rss, story, wait_until
from worker.dedup.canonical import url_id
from worker.replay import request_poll
from worker.runtime import Runtime
from worker.service import WorkerProcesses

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def test_killed_extraction_child_is_redelivered_and_published_once(
    rt: Runtime, newsroom: Newsroom, workers: WorkerProcesses
) -> None:
    big = newsroom.add(
        "/kill/big.html", body=article_html("Long read", story(f"k{time.time()}", 4000))
    )
    feed = newsroom.add("/kill/feed.xml", body=rss([{"title": "big", "link": big}]),
                        content_type="application/rss+xml")  # fmt: skip
    record = rt.registry.add(feed)
    request_poll(rt, record.feed_id)
    feed_polled(rt, record.feed_id)
    entry_id = url_id(big)
    assert wait_until(lambda: rt.ledger.state(entry_id).get("state") == "extract", 30)
    cpu_main = psutil.Process(workers.processes["cpu"].pid)
    for child in cpu_main.children():  # kill -9 every pool child, the busy one among them
        os.kill(child.pid, signal.SIGKILL)
    drain(rt, timeout=90)
    [article] = articles_of(rt, feed)
    assert article["url"] == big and len(article["text"]) > 100_000
    state = rt.ledger.state(entry_id)
    assert state["state"] == "published" and int(state["attempts_extract"]) >= 2
    assert newsroom.count("/kill/big.html") == 1  # the page was not fetched again
    assert cpu_main.is_running() and len(cpu_main.children()) == 2  # the pool recovered
