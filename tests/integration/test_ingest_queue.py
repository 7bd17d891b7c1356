"""The fused article path's ingest queue: tasks take entries as their downloads run low,
and a task delivered again gives back what its dead predecessor had taken."""

from __future__ import annotations

import itertools
import time
import uuid

import pytest

from tests.servers.newsroom import Newsroom, Route
from tests.support import (
    article_html,
    articles_of,
    deployment,
    drain,
    feed_polled,
    rss,
    story,
    wait_until,
)
from worker import tasks
from worker.celery_app import queue_names
from worker.config import Settings
from worker.dedup.canonical import url_id
from worker.keys import Keys
from worker.ledger import Leases, Ledger
from worker.model import FeedEntry
from worker.replay import request_poll
from worker.runtime import Runtime
from worker.tasks import ArrivingPages, ingest_pages

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def _pages(newsroom: Newsroom, name: str, count: int, delay_s: float) -> list[str]:
    links = []
    for i in range(count):
        body = article_html(f"{name} {i}", story(f"{name}-{i}-{time.time()}"))
        links.append(newsroom.add(f"/{name}/{i}.html", Route(body=body, delay_s=delay_s)))
    return links


def _feed(newsroom: Newsroom, name: str, count: int, delay_s: float) -> tuple[str, list[str]]:
    """A feed of ``count`` pages, each answered after ``delay_s``: (feed URL, page URLs)."""
    links = _pages(newsroom, name, count, delay_s)
    items = [{"title": f"{name} {i}", "link": link} for i, link in enumerate(links)]
    feed = newsroom.add(f"/{name}/feed.xml", body=rss(items), content_type="application/rss+xml")
    return feed, links


def _starts(newsroom: Newsroom, name: str, count: int) -> list[float]:
    """When each request for the pages ``_pages`` made started, in order."""
    hits = (hit for i in range(count) for hit in newsroom.requests_to(f"/{name}/{i}.html"))
    return sorted(hit.at for hit in hits)


def _poll_and_drain(rt: Runtime, feed: str, timeout: float) -> None:
    record = rt.registry.add(feed)
    request_poll(rt, record.feed_id)
    feed_polled(rt, record.feed_id)
    drain(rt, timeout=timeout)


def _claimed(rt: Runtime, feed_url: str, links: list[str]) -> list[str]:
    """Claim the entries of ``links`` as a poll of ``feed_url`` would (never polled)."""
    feed = rt.registry.add(feed_url)
    entries = [FeedEntry(url_id(link), feed.feed_id, feed.url, link) for link in links]
    return rt.ledger.claim(feed.feed_id, entries)


def _leftovers(rt: Runtime) -> tuple[int, list[str]]:
    """Entries still queued, and the taken lists of tasks that have not ended."""
    taken = list(rt.client.scan_iter(match=rt.keys.ingest_taken("*")))
    return sum(rt.ledger.ingest_queued().values()), taken


def test_entries_queue_by_host_and_are_taken_one_host_at_a_time(rt: Runtime) -> None:
    """The host is the URL's host name (case, port and user info aside); an entry whose
    record is gone queues under ''. Takes go round the hosts in the order they came."""
    ledger = Ledger(rt.client, Keys(key_prefix=f"hosts-{uuid.uuid4().hex}"), Leases())
    urls = [
        "http://News.Example:8080/1",
        "https://reader@b.example/2",
        "http://news.example/3",
        "http://[::1]:8000/4",
        "https://b.example:443/5",
        "http://news.example/6",
    ]
    entries = [FeedEntry(f"e{i}", "feed", "http://feed.example/rss", u) for i, u in enumerate(urls)]
    ledger.queue_for_ingest([*ledger.claim("feed", entries), "gone"])
    assert ledger.ingest_queued() == {"news.example": 3, "b.example": 2, "[::1]": 1, "": 1}
    first = ledger.take_for_ingest("t1", 5)
    assert [entry_id for entry_id, _ in first] == ["e0", "e1", "e3", "gone", "e2"]
    assert ledger.return_taken("t1") == ["e0", "e1", "e3", "gone", "e2"]  # first in line again
    again = dict(ledger.take_for_ingest("t2", 7))
    assert list(again) == ["e0", "e1", "e3", "gone", "e2", "e4", "e5"]
    assert ledger.ingest_queued() == {} and ledger.take_for_ingest("t3", 1) == []
    # each take began the fetch stage: the second counts a second attempt
    assert again["e0"].verdict == "go" and again["e0"].detail == "2"
    assert again["e0"].entry is not None and again["e0"].entry.url == urls[0]
    assert again["e4"].verdict == "go" and again["e4"].detail == "1"
    assert again["gone"].verdict == "missing" and again["gone"].entry is None


def test_a_take_begins_the_fetch_stage_as_start_would(rt: Runtime) -> None:
    """What a take answers for each entry is what ``start`` would: an ended entry is
    done, one past its attempts exhausted; a taken entry's lease runs from the take."""
    leases, keys = Leases(max_attempts=2), Keys(key_prefix=f"start-{uuid.uuid4().hex}")
    ledger = Ledger(rt.client, keys, leases)
    entries = [FeedEntry(f"s{i}", "feed", "http://feed.example/rss", "http://a.example/")
               for i in range(3)]  # fmt: skip
    ledger.claim("feed", entries)
    rt.client.hset(keys.entry("s1"), "state", "published")
    rt.client.hset(keys.entry("s2"), "attempts_fetch", 2)
    ledger.queue_for_ingest(["s0", "s1", "s2"])
    before = time.time()
    taken = dict(ledger.take_for_ingest("t", 3))
    assert (taken["s0"].verdict, taken["s0"].detail) == ("go", "1")
    assert (taken["s1"].verdict, taken["s1"].detail) == ("done", "published")
    assert (taken["s2"].verdict, taken["s2"].detail) == ("exhausted", "2")
    lease_end = rt.client.zscore(keys.inflight, "s0") or 0.0
    assert before + leases.running_s <= lease_end <= time.time() + leases.running_s
    assert rt.client.hget(keys.entry("s0"), "state") == "fetch"


def test_a_copy_of_an_entry_waiting_to_be_tried_again_is_turned_away(rt: Runtime) -> None:
    """An entry whose fetch failed for now waits for its next try (its backoff, or the
    server's Retry-After). A stale copy of it (a task delivered again after its worker
    died, a taken entry given back) neither fetches it early nor spends an attempt; once
    the wait is over, the sweeper takes it, marks it queued, and it runs."""
    keys = Keys(key_prefix=f"wait-{uuid.uuid4().hex}")
    ledger = Ledger(rt.client, keys, Leases())
    ledger.claim("feed", [FeedEntry("w0", "feed", "http://feed.example/rss", "http://a.example/")])
    assert ledger.start("w0", "fetch").verdict == "go"
    ledger.retry_later("w0", attempt=1, at_least_s=60)  # a 503 with Retry-After: 60
    stale = ledger.start("w0", "fetch")
    assert (stale.verdict, stale.detail, stale.entry) == ("waiting", "retry_wait", None)
    ledger.queue_for_ingest(["w0"])
    assert [(i, s.verdict) for i, s in ledger.take_for_ingest("t", 1)] == [("w0", "waiting")]
    assert ledger.state("w0")["attempts_fetch"] == "1"
    assert ledger.expired() == []  # the wait is not over
    rt.client.zadd(keys.inflight, {"w0": time.time() - 1})  # ... now it is
    assert ledger.expired() == ["w0"]
    assert ledger.state("w0")["state"] == "queued"
    again = ledger.start("w0", "fetch")
    assert (again.verdict, again.detail) == ("go", "2")


def test_a_backlog_older_than_the_queued_lease_is_not_enqueued_twice(rt: Runtime) -> None:
    """Entries waiting in the ingest queue longer than the queued lease (a backlog of
    hours) are in a list of our own, not in a broker that could lose them: the sweeper
    leaves them there instead of queueing a second copy of each behind the first. An
    entry given back keeps its wait for another try; an entry claimed and never queued
    (its poller died between the two) is still the sweeper's after the queued lease."""
    keys = Keys(key_prefix=f"backlog-{uuid.uuid4().hex}")
    ledger = Ledger(rt.client, keys, Leases(queued_s=0.2, ingest_queued_s=3600))
    entries = [FeedEntry(f"b{i}", "feed", "http://feed.example/rss", f"http://a.example/{i}")
               for i in range(4)]  # fmt: skip
    ledger.claim("feed", entries)
    ledger.queue_for_ingest(["b0", "b1"])  # b2 and b3: claimed, never queued
    assert ledger.start("b3", "fetch").verdict == "go"
    ledger.retry_later("b3", attempt=1, at_least_s=60)
    rt.client.rpush(keys.ingest_taken("lost"), "b3")  # taken by a delivery that died
    ledger.return_taken("lost")
    time.sleep(0.3)
    assert ledger.expired() == ["b2"]
    assert sum(ledger.ingest_queued().values()) == 3  # b0, b1, b3: once each
    assert (rt.client.zscore(keys.inflight, "b3") or 0) < time.time() + 120  # its due time
    assert [i for i, _start in ledger.take_for_ingest("t", 3)] == ["b3", "b0", "b1"]


def test_fused_tasks_take_entries_a_few_at_a_time_and_publish_each_once(
    settings: Settings, newsroom: Newsroom
) -> None:
    """Twelve slow pages, four ahead at most: every page fetched once and published once,
    never more than ``fetch_ahead`` downloads at a time, nothing left queued or taken."""
    feed, links = _feed(newsroom, "ahead", 12, delay_s=0.3)
    fused = {"article_path": "fused", "fetch_ahead": 4}
    with deployment(settings, settings.redis_url or "", **fused) as (rt, _procs):
        _poll_and_drain(rt, feed, timeout=60)
        assert sorted(m["url"] for m in articles_of(rt, feed)) == sorted(links)
        assert all(newsroom.count(f"/ahead/{i}.html") == 1 for i in range(12))
        assert 2 <= newsroom.max_in_flight <= 4  # downloads overlap, bounded by fetch_ahead
        assert _leftovers(rt) == (0, [])


def test_a_backlog_wakes_few_tasks_and_each_task_passes_it_on(
    settings: Settings, newsroom: Newsroom
) -> None:
    """Forty entries queued at once wake one task (one extraction process, four pages
    ahead), not ten that would mostly find nothing to take. The task wakes the next
    while entries wait, and one whose pull time ends with entries left wakes a
    successor: every page is fetched and published once, nothing left queued."""
    links = _pages(newsroom, "chain", 40, delay_s=0.05)
    feed_url = newsroom.url("/chain/feed.xml")  # never polled: the entries are claimed here
    fused = {"article_path": "fused", "fetch_ahead": 4, "ingest_pull_s": 0.5, "cpu_concurrency": 1}
    with deployment(settings, settings.redis_url or "", **fused) as (rt, _procs):
        extract_queue = queue_names(rt.settings).extract
        tasks.queue_ingest(rt, _claimed(rt, feed_url, links))
        assert rt.client.llen(extract_queue) <= 1
        drain(rt, timeout=60)
        assert sorted(m["url"] for m in articles_of(rt, feed_url)) == sorted(links)
        assert all(newsroom.count(f"/chain/{i}.html") == 1 for i in range(40))
        assert _leftovers(rt) == (0, [])


def test_polls_while_a_woken_task_waits_to_start_wake_no_more(
    settings: Settings, newsroom: Newsroom
) -> None:
    """Ten polls queue entries while the only extraction process is busy and a task woken
    for them waits: they wake no more tasks (that one takes everything queued when it
    starts). Before, each poll added one: the bench's 20 feeds left 40 in the queue."""
    links = _pages(newsroom, "burst", 48, delay_s=0.2)
    fused = {"article_path": "fused", "fetch_ahead": 4, "cpu_concurrency": 1}
    with deployment(settings, settings.redis_url or "", **fused) as (rt, _procs):
        claimed = _claimed(rt, newsroom.url("/burst/feed.xml"), links)
        extract_queue = queue_names(rt.settings).extract
        tasks.queue_ingest(rt, claimed[:8])
        assert wait_until(lambda: not rt.client.exists(rt.keys.ingest_woken), 30)  # started
        for start in range(8, 48, 4):
            tasks.queue_ingest(rt, claimed[start : start + 4])
        assert rt.client.llen(extract_queue) <= 1
        drain(rt, timeout=60)
        feed_url = newsroom.url("/burst/feed.xml")
        assert sorted(m["url"] for m in articles_of(rt, feed_url)) == sorted(links)
        assert all(newsroom.count(f"/burst/{i}.html") == 1 for i in range(48))
        assert _leftovers(rt) == (0, [])


def test_a_lost_wake_up_holds_new_entries_back_only_until_its_hold_ends(
    settings: Settings, newsroom: Newsroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wake-up sent and lost (kombu can drop one) keeps later polls from waking tasks
    only for WAKE_HOLD_S: the next poll after it wakes one, which takes both polls'
    entries."""
    monkeypatch.setattr(tasks, "WAKE_HOLD_S", 1.0)
    links = _pages(newsroom, "held", 8, delay_s=0.0)
    fused = {"article_path": "fused", "fetch_ahead": 4, "cpu_concurrency": 1}
    with deployment(settings, settings.redis_url or "", **fused) as (rt, _procs):
        claimed = _claimed(rt, newsroom.url("/held/feed.xml"), links)
        extract_queue = queue_names(rt.settings).extract
        assert rt.ledger.wake_due(tasks.WAKE_HOLD_S)  # the wake-up that is then lost
        tasks.queue_ingest(rt, claimed[:4])
        assert rt.client.llen(extract_queue) == 0
        time.sleep(1.2 * tasks.WAKE_HOLD_S)
        tasks.queue_ingest(rt, claimed[4:])
        drain(rt, timeout=30)
        feed_url = newsroom.url("/held/feed.xml")
        assert sorted(m["url"] for m in articles_of(rt, feed_url)) == sorted(links)
        assert _leftovers(rt) == (0, [])


def test_task_delivered_again_gives_back_what_its_lost_delivery_took(
    settings: Settings, newsroom: Newsroom
) -> None:
    """A fused task's process died after taking entries from the queue (kill -9: Celery
    delivers the task again, with the same id). The new delivery puts them back on the
    queue and takes them again: each is fetched and published once."""
    links = _pages(newsroom, "lost", 3, delay_s=0.0)
    feed_url = newsroom.url("/lost/feed.xml")  # never polled: the entries are claimed here
    with deployment(settings, settings.redis_url or "", article_path="fused") as (rt, _procs):
        rt.ledger.queue_for_ingest(_claimed(rt, feed_url, links))
        assert len(rt.ledger.take_for_ingest("lost-delivery", 10)) == 3  # ... and died
        assert _leftovers(rt) == (0, [rt.keys.ingest_taken("lost-delivery")])
        extract_queue = queue_names(rt.settings).extract
        ingest_pages.apply_async(([],), task_id="lost-delivery", queue=extract_queue)
        drain(rt, timeout=20)  # at once, not when their leases run out (30 s here)
        assert sorted(m["url"] for m in articles_of(rt, feed_url)) == sorted(links)
        assert all(newsroom.count(f"/lost/{i}.html") == 1 for i in range(3))
        assert _leftovers(rt) == (0, [])


def test_entries_whose_wake_up_task_was_lost_are_taken_once_the_sweeper_sees_the_stall(
    settings: Settings, newsroom: Newsroom
) -> None:
    """Entries are queued but their wake-up task never comes (kombu can drop one; Redis
    can go away between the queueing and the send). The sweeper sees entries waiting
    and nothing queued or taken for ``ingest_stall_s``, and wakes one task: each page is
    fetched and published once, long before the entries' queued leases (30 s here) ran
    out and brought them back as second copies."""
    links = _pages(newsroom, "stalled", 3, delay_s=0.0)
    feed_url = newsroom.url("/stalled/feed.xml")  # never polled: the entries are claimed here
    fused = {"article_path": "fused", "ingest_stall_s": 1.0}
    with deployment(settings, settings.redis_url or "", **fused) as (rt, _procs):
        rt.ledger.queue_for_ingest(_claimed(rt, feed_url, links))  # no wake-up
        assert not rt.ledger.ingest_stalled(rt.settings.ingest_stall_s)  # not yet
        started = time.monotonic()
        drain(rt, timeout=20)  # sweeping as the scheduler does
        assert time.monotonic() - started < rt.settings.queued_lease_s
        assert sorted(m["url"] for m in articles_of(rt, feed_url)) == sorted(links)
        assert all(newsroom.count(f"/stalled/{i}.html") == 1 for i in range(3))
        assert _leftovers(rt) == (0, [])
        assert rt.client.hget(rt.keys.stats, "ingest_rewakes") == "1"  # status and metrics


def test_a_task_takes_no_entries_while_its_process_has_no_fetch_thread_free(
    rt: Runtime,
) -> None:
    """Downloads a task let go of (a polite host's) may hold every fetch thread of the
    process: the next task leaves the queue alone (its entries would wait unstarted
    behind them, leases running) and says so, to be woken again later."""
    entry_ids = [f"nothing-{i}-{time.time()}" for i in range(3)]  # 'missing' in the ledger
    rt.ledger.queue_for_ingest(entry_ids)
    running = tasks._running_fetches[0]
    running.add(rt.settings.fetch_threads)
    try:
        starved = ArrivingPages(rt, "starved-task", pull_s=5.0)
        assert list(starved.arrivals(patience_s=0.5)) == []
        assert starved.starved and sum(rt.ledger.ingest_queued().values()) == 3
    finally:
        running.add(-rt.settings.fetch_threads)
    fed = ArrivingPages(rt, "fed-task", pull_s=5.0)
    assert sorted(entry for entry, _ in fed.arrivals(patience_s=5.0)) == sorted(entry_ids)
    assert not fed.starved and not rt.ledger.ingest_queued()
    rt.ledger.forget_taken("fed-task")


def test_a_polite_host_is_paced_and_every_page_published_once(
    settings: Settings, newsroom: Newsroom
) -> None:
    """One host, one request at a time, 0.5 s between starts: the fused tasks let go of
    the pages that keep them waiting, threads give up on slots after 1 s and the entries
    come back later; every page is fetched once, published once, and the pace holds."""
    feed, links = _feed(newsroom, "polite", 8, delay_s=0.0)
    polite = {"host_concurrency": 1, "host_delay_s": 0.5, "host_wait_s": 1.0}
    with deployment(settings, settings.redis_url or "", **polite) as (rt, _procs):
        _poll_and_drain(rt, feed, timeout=90)
        assert sorted(m["url"] for m in articles_of(rt, feed)) == sorted(links)
        assert all(newsroom.count(f"/polite/{i}.html") == 1 for i in range(8))
        starts = _starts(newsroom, "polite", 8)
        assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.45
        assert _leftovers(rt) == (0, [])


def test_one_hosts_backlog_does_not_hold_up_another_hosts_entries(
    settings: Settings, newsroom: Newsroom
) -> None:
    """One feed lists twelve pages of a polite host first, then four of another host
    (127.0.0.2). Tasks take entries one host at a time, round robin: the other host's
    four are fetched while the first host's backlog is still being paced, not after it
    (in the feed's order they would wait behind eight or more of its requests). Every
    page is fetched once and published once, and each host's pace holds."""
    other = Newsroom("127.0.0.2")
    try:
        slow = _pages(newsroom, "backlog", 12, delay_s=0.0)
        quick = _pages(other, "other", 4, delay_s=0.0)
        items = [{"title": f"item {i}", "link": link} for i, link in enumerate(slow + quick)]
        feed = newsroom.add("/mixed/feed.xml", body=rss(items), content_type="application/rss+xml")
        polite = {"host_concurrency": 1, "host_delay_s": 0.4, "host_wait_s": 1.0}
        with deployment(settings, settings.redis_url or "", fetch_ahead=4, **polite) as (rt, _):
            _poll_and_drain(rt, feed, timeout=90)
            assert sorted(m["url"] for m in articles_of(rt, feed)) == sorted(slow + quick)
            assert _leftovers(rt) == (0, [])
        backlog, others = _starts(newsroom, "backlog", 12), _starts(other, "other", 4)
        assert len(backlog) == 12 and len(others) == 4  # each fetched once
        assert others[-1] < backlog[5]  # all four before the backlog's sixth request
        for starts in (backlog, others):
            assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.35
    finally:
        other.close()
