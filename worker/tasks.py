"""Thin Celery tasks: decode ids, call one domain function, route what comes next."""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init

from worker import pipeline
from worker.celery_app import app, soft_time_limit
from worker.config import load_settings
from worker.extract.article import release_memory
from worker.feeds.poll import poll_feed as poll_feed_once
from worker.runtime import Runtime

log = logging.getLogger(__name__)
_runtime: list[Runtime | None] = [None]
_poll_pool: list[ThreadPoolExecutor | None] = [None]
_extractions = [0]
RESET_CACHES_EVERY = 500  # trafilatura, htmldate and courlan caches grow with every page


def runtime() -> Runtime:
    """This process's Runtime, built on first use (after fork, never shared across it)."""
    if _runtime[0] is None:
        settings = load_settings()
        if not settings.redis_url:
            raise RuntimeError("workers need NEWSWIRE_REDIS_URL (set by `newswire run/worker`)")
        _runtime[0] = Runtime.build(settings, settings.redis_url)
    return _runtime[0]


def use_runtime(rt: Runtime) -> None:
    """Make ``rt`` the Runtime of this process (the CLI builds one before enqueueing)."""
    _runtime[0] = rt


@worker_process_init.connect
def _reset_after_fork(**_: Any) -> None:
    _runtime[0] = None  # sockets inherited from the parent must not be shared
    _poll_pool[0] = None


def poll_pool() -> ThreadPoolExecutor:
    """Threads polling the feeds of a batch side by side (one slow feed holds one thread)."""
    if _poll_pool[0] is None:
        _poll_pool[0] = ThreadPoolExecutor(runtime().settings.poll_threads, "poll")
    return _poll_pool[0]


def enqueue_fetches(entry_ids: list[str]) -> None:
    for entry_id in entry_ids:
        fetch_page.delay(entry_id)


@app.task(name="newswire.poll_feed")
def poll_feed(feed_id: str, token: str) -> str:
    """Poll one claimed feed and enqueue the fetch of each new entry."""
    return poll_feed_once(runtime(), feed_id, token, enqueue_fetches).status


@app.task(name="newswire.poll_feeds")
def poll_feeds(claims: list[list[str]]) -> dict[str, int]:
    """Poll a batch of claimed feeds concurrently (one task per batch: less broker work)."""
    rt = runtime()
    futures = [poll_pool().submit(poll_feed_once, rt, f, t, enqueue_fetches) for f, t in claims]
    outcomes: Counter[str] = Counter()
    for (feed_id, _token), future in zip(claims, futures, strict=True):
        try:
            outcomes[future.result().status] += 1
        except Exception:
            # An unexpected error (a bug, Redis away): the feed's claim lease expires and
            # it is polled again; the rest of the batch is unaffected.
            log.exception("poll of feed %s crashed", feed_id)
            outcomes["crashed"] += 1
    return dict(outcomes)


@app.task(name="newswire.fetch_page")
def fetch_page(entry_id: str) -> str:
    """Fetch an entry's page; on success hand it to the CPU queue."""
    result = pipeline.fetch_stage(runtime(), entry_id)
    if result.next == "extract":
        extract_page.delay(entry_id)
    return result.next


@app.task(name="newswire.extract_page")
def extract_page(entry_id: str) -> str:
    """Extract, dedup and publish one fetched entry."""
    rt = runtime()
    _extractions[0] += 1
    if _extractions[0] % RESET_CACHES_EVERY == 0:
        release_memory()
    try:
        return pipeline.extract_stage(rt, entry_id).detail
    except SoftTimeLimitExceeded:
        entry = rt.ledger.entry(entry_id)
        if entry is not None:
            detail = f"extraction exceeded its {soft_time_limit(rt.settings):.0f}s time limit"
            pipeline.dead_letter(rt, entry, "extraction_timeout", detail, False, 1)
        return "failed"
