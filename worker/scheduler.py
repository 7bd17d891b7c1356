"""The scheduler loop: claim due feeds, enqueue their polls, sweep expired leases.

Any number of schedulers may run: claims are atomic in Redis, so a feed is enqueued by
one of them per interval, and an expired lease is re-enqueued by one of them.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import redis

from worker.celery_app import queue_names
from worker.config import FeedsFileError, read_feeds_file
from worker.feeds.schedule import claim_due
from worker.observability import beat
from worker.runtime import Runtime
from worker.tasks import enqueue_extractions, enqueue_fetches, poll_feeds, wake_ingest_tasks

log = logging.getLogger(__name__)


def load_feeds_file(rt: Runtime, path: Path | None) -> int:
    """Register the feeds listed in a YAML file (idempotent); return how many. An item
    that is not a usable feed is logged and skipped: it keeps out neither the others nor
    the polls. A file that cannot be read raises FeedsFileError."""
    if path is None or not path.exists():
        return 0
    specs, problems = read_feeds_file(path)
    count, refused = rt.registry.add_each((s.url, s.tags, s.interval_s) for s in specs)
    for problem in [*problems, *refused]:
        log.error("feeds file: skipped %s", problem)
    return count


def register_feeds_file(rt: Runtime, path: Path | None) -> None:
    """Load the feeds file at start. Whatever is wrong with it is logged and polling goes
    on; only Redis's errors are raised (it may come up after us: load again then)."""
    try:
        count = load_feeds_file(rt, path)
    except redis.RedisError:
        raise
    except FeedsFileError as exc:
        log.error("feeds file not loaded: %s", exc)
    except Exception:
        log.exception("feeds file %s not loaded", path)
    else:
        log.info("%d feeds registered from %s", count, path)


def tick(rt: Runtime) -> int:
    """Claim and enqueue due feeds once; return how many polls were enqueued."""
    claimed = claim_due(rt.client, rt.keys, rt.settings.scheduler_batch, rt.settings.poll_lease_s)
    size = rt.settings.poll_batch
    for start in range(0, len(claimed), size):
        batch = [list(claim) for claim in claimed[start : start + size]]
        poll_feeds.apply_async((batch,), queue=queue_names(rt.settings).poll)
    return len(claimed)


def sweep(rt: Runtime) -> int:
    """Re-enqueue entries whose lease expired, and wake a fused task for a stalled ingest
    queue; return how many entries were re-enqueued."""
    expired = rt.ledger.expired()
    fetched = {e for e in expired if rt.client.exists(rt.keys.page(e))}
    enqueue_extractions([e for e in expired if e in fetched], rt.settings)
    enqueue_fetches(rt, [e for e in expired if e not in fetched])
    if expired:
        log.info("sweeper re-enqueued %d entries with expired leases", len(expired))
    if rt.ledger.ingest_stalled(rt.settings.ingest_stall_s):
        # Without this, they would wait until their leases in the ingest queue ran out
        # (ingest_queued_lease_s, 6 h by default) for the sweeper to re-enqueue them.
        log.warning(
            "ingest queue stalled: entries wait and no task took any for %.0fs; woke one",
            rt.settings.ingest_stall_s,
        )
        wake_ingest_tasks(rt, 1)
        rt.client.hincrby(rt.keys.stats, "ingest_rewakes", 1)
    return len(expired)


def run_scheduler(rt: Runtime, stop: threading.Event, feeds_file: Path | None = None) -> None:
    """Register ``feeds_file``'s feeds, then loop until ``stop`` is set. Errors are logged
    and the loop goes on: Redis may come up after us, or go away for a while."""
    last_sweep = 0.0
    feeds_loaded = feeds_file is None
    while not stop.is_set():
        claimed = 0
        try:
            if not feeds_loaded:
                register_feeds_file(rt, feeds_file)
                feeds_loaded = True
            claimed = tick(rt)
            if time.monotonic() - last_sweep >= rt.settings.sweep_interval_s:
                sweep(rt)
                beat(rt.client, rt.keys, "scheduler")
                last_sweep = time.monotonic()
        except redis.RedisError as exc:
            log.warning("scheduler: redis unavailable (%s); retrying", exc)
            stop.wait(min(5.0, rt.settings.scheduler_tick_s * 5))
        except Exception:
            log.exception("scheduler tick failed; retrying")
            stop.wait(min(5.0, rt.settings.scheduler_tick_s * 5))
        if claimed < rt.settings.scheduler_batch:  # a full batch means more are due now
            stop.wait(rt.settings.scheduler_tick_s)
