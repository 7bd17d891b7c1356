"""Builders for test feeds and pages, and waiting for the pipeline to drain."""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from email.utils import formatdate
from html import escape
from typing import Any

from worker.celery_app import queue_names
from worker.config import Settings, child_environment
from worker.dedup.canonical import url_id
from worker.keys import Keys
from worker.ledger import HandedPage
from worker.model import FeedEntry, utc_iso
from worker.publish.consumer import decode
from worker.publish.schema import validate_message
from worker.runtime import Runtime
from worker.service import WorkerProcesses, WorkerSpec
from worker.workerproc import live_roles

WORDS = [
    "government",
    "minister",
    "council",
    "report",
    "economy",
    "market",
    "growth",
    "inflation",
    "policy",
    "election",
    "vote",
    "parliament",
    "court",
    "ruling",
    "climate",
    "energy",
    "prices",
    "workers",
    "union",
    "strike",
    "company",
    "shares",
    "investors",
    "bank",
    "rates",
    "city",
    "officials",
    "police",
    "investigation",
    "hospital",
    "health",
    "patients",
    "school",
    "students",
    "teachers",
    "budget",
    "tax",
    "plan",
    "agreement",
    "talks",
    "border",
    "trade",
    "exports",
    "farmers",
    "drought",
    "storm",
    "flood",
    "coast",
    "residents",
    "mayor",
    "governor",
    "senator",
    "campaign",
    "survey",
    "data",
    "analysts",
]


def story(seed: int | str, paragraphs: int = 5) -> list[str]:
    """Deterministic, unique news-like paragraphs (unique per seed, so never a duplicate)."""
    rng = random.Random(str(seed))
    out = []
    for p in range(paragraphs):
        sentences = []
        for _ in range(rng.randint(3, 5)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(9, 16))]
            sentences.append(" ".join(words).capitalize() + ".")
        out.append(f"{' '.join(sentences)} Reference {seed}-{p}.")
    return out


def article_html(
    title: str, paragraphs: list[str], lang: str = "en", extra_head: str = ""
) -> bytes:
    """A plain news-site page around ``paragraphs``."""
    body = "\n".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return f"""<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<title>{escape(title)}</title>{extra_head}</head><body>
<header><nav><a href="/">Home</a> <a href="/news">News</a> <a href="/sport">Sport</a></nav></header>
<main><article><h1>{escape(title)}</h1>{body}</article></main>
<footer><p>Copyright The Test Gazette</p></footer></body></html>""".encode()


def rss(items: list[dict[str, Any]], title: str = "Test feed", extra: str = "") -> bytes:
    """An RSS 2.0 document; each item dict may have title, link, guid, description, date."""
    parts = []
    for item in items:
        fields = [f"<title>{escape(item.get('title', ''))}</title>"]
        if item.get("link"):
            fields.append(f"<link>{escape(item['link'])}</link>")
        if item.get("guid"):
            fields.append(f'<guid isPermaLink="false">{escape(item["guid"])}</guid>')
        if item.get("description"):
            fields.append(f"<description>{escape(item['description'])}</description>")
        if item.get("date"):
            fields.append(f"<pubDate>{formatdate(item['date'], usegmt=True)}</pubDate>")
        parts.append(f"<item>{''.join(fields)}</item>")
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>http://example.com/</link>{extra}"
        f"<description>test</description>{''.join(parts)}</channel></rss>"
    ).encode()


def atom(entries: list[dict[str, Any]], title: str = "Test Atom feed") -> bytes:
    """An Atom 1.0 document; each entry dict has title, link, id, published, updated (ISO)."""
    parts = []
    for e in entries:
        parts.append(
            f'<entry><title>{escape(e["title"])}</title><link href="{escape(e["link"])}"/>'
            f"<id>{escape(e['id'])}</id><published>{e['published']}</published>"
            f"<updated>{e.get('updated', e['published'])}</updated>"
            f"<summary>{escape(e.get('summary', ''))}</summary></entry>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(title)}</title><id>urn:test</id><updated>2024-01-01T00:00:00Z</updated>"
        f"{''.join(parts)}</feed>"
    ).encode()


def messages(rt: Runtime, stream: str) -> list[tuple[str, dict[str, Any]]]:
    """Every message of a stream, each validated against its schema."""
    out = []
    for sid, fields in rt.client.xrange(stream, "-", "+"):
        message = decode(fields)
        validate_message(message)
        out.append((sid, message))
    return out


def articles_of(rt: Runtime, feed_url: str, stream: str | None = None) -> list[dict[str, Any]]:
    """Validated messages of one feed on a stream (articles by default)."""
    name = stream or rt.keys.articles
    return [m for _sid, m in messages(rt, name) if m.get("feed_url") == feed_url]


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def drain(rt: Runtime, timeout: float = 40.0) -> None:
    """Wait until no entry is in flight and the queues are empty (Jepsen: drain first),
    sweeping as the scheduler would, so retries and lost tasks are re-enqueued."""
    from worker.scheduler import sweep

    keys: Keys = rt.keys
    queues = queue_names(rt.settings)

    def idle() -> bool:
        sweep(rt)
        return rt.client.zcard(keys.inflight) == 0 and all(rt.client.llen(q) == 0 for q in queues)

    assert wait_until(idle, timeout), (
        f"pipeline did not drain: {rt.client.zrange(keys.inflight, 0, -1, withscores=True)}"
    )


def feed_polled(rt: Runtime, feed_id: str, polls: int = 1, timeout: float = 30.0) -> None:
    def done() -> bool:
        raw = rt.client.hget(rt.keys.feed(feed_id), "polls")
        return raw is not None and json.loads(raw) >= polls

    assert wait_until(done, timeout), f"feed {feed_id} not polled {polls} times"


@contextlib.contextmanager
def deployment(
    settings: Settings, redis_url: str, scheduler: bool = False, **overrides: Any
) -> Iterator[tuple[Runtime, WorkerProcesses]]:
    """A deployment of its own (own keys and queues, io and cpu workers, and a scheduler
    process if asked), with settings of its own: its workers can be killed, or its Redis
    restarted, without touching the session's. Tasks enqueued by this process for it
    reach it only on the session's Redis (the Celery app's broker); elsewhere, let its
    scheduler poll."""
    tag = uuid.uuid4().hex[:6]
    update = {"redis_url": redis_url, "key_prefix": f"f{tag}", "stream_prefix": f"f{tag}:news"}
    own = settings.model_copy(update={**update, **overrides})
    runtime = Runtime.build(own, redis_url)
    procs = WorkerProcesses(own, [WorkerSpec("io", "threads", 8), WorkerSpec("cpu", "prefork", 1)])
    procs.start()
    command = [sys.executable, "-m", "worker", "scheduler"]
    sched = subprocess.Popen(command, env=child_environment(own)) if scheduler else None
    try:
        assert wait_until(lambda: {"worker-io", "worker-cpu"} <= live_roles(runtime), 60)
        yield runtime, procs
    finally:
        if sched is not None:
            sched.terminate()
            sched.wait(15)
        procs.stop(15)
        runtime.close()


@contextlib.contextmanager
def supervised(procs: WorkerProcesses) -> Iterator[None]:
    """Restart workers that exit, as `newswire run` does."""
    stop = threading.Event()

    def _loop() -> None:
        while not stop.wait(0.5):
            procs.watch()

    watcher = threading.Thread(target=_loop, name="supervisor", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(5)


def fetched_entries(rt: Runtime, count: int) -> list[str]:
    """Claim ``count`` entries and hand a fetched article page over for each; the text of
    entry ``i``'s page carries ``bp-<i>``."""
    feed = rt.registry.add(f"http://127.0.0.1:9/bp-{uuid.uuid4().hex[:6]}.xml")
    urls = [f"http://127.0.0.1:9/bp/{uuid.uuid4().hex}.html" for _ in range(count)]
    entries = [FeedEntry(url_id(u), feed.feed_id, feed.url, u) for u in urls]
    ids = rt.ledger.claim(feed.feed_id, entries)
    for entry_id, url in zip(ids, urls, strict=True):
        html = article_html("Backpressure", story(f"bp-{entry_id}")).decode()
        rt.ledger.hand_over(entry_id, HandedPage(url, utc_iso(), html))
    return ids
