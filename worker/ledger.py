"""The entry ledger: claims as leases, attempts, retries, and the sweeper's view.

Neither Celery's Redis transport nor Redis Streams gives exactly-once, so the truth
about each entry lives here (reliability.md): a claim is taken before any fetch, renewed
when a stage starts, made final only by the publish script, and re-enqueued by the
sweeper when its lease runs out (a lost task, a killed worker).
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from worker.keys import Keys
from worker.lua import run_script
from worker.model import FeedEntry

TERMINAL_STATES = frozenset({"published", "duplicate", "unchanged", "failed"})
RETRY_AFTER_MOST_S = 86_400.0


@dataclass(frozen=True)
class Leases:
    """Lease lengths: waiting in a queue, running a stage, and the claim's lifetime."""

    queued_s: float = 1800.0
    running_s: float = 300.0
    ttl_s: int = 30 * 86_400
    max_attempts: int = 3
    retry_base_s: float = 10.0  # first retry delay after a transient failure; doubles
    ingest_queued_s: float = 21_600.0  # waiting in the ingest queue (fused path)


@dataclass(frozen=True)
class HandedPage:
    """A fetched page waiting for extraction."""

    url: str
    fetched_at: str
    html: str


@dataclass(frozen=True)
class StageStart:
    """Answer to 'may this stage run?' (go, done: already ended, waiting: to be tried
    again later, exhausted, missing), with the entry and, for extraction, the page handed
    over by the fetch stage."""

    verdict: str
    detail: str = ""
    entry: FeedEntry | None = None
    page: HandedPage | None = None


class Ledger:
    """Entry claims and leases for one deployment."""

    def __init__(self, client: redis.Redis, keys: Keys, leases: Leases) -> None:
        self._client = client
        self._keys = keys
        self._leases = leases

    def claim(self, feed_id: str, entries: list[FeedEntry]) -> list[str]:
        """Claim entries nobody has claimed yet; return their ids (these get fetched)."""
        if not entries:
            return []
        args: list[str | float | int] = [
            time.time(),
            self._leases.queued_s,
            self._keys.key_prefix,
            self._leases.ttl_s,
            feed_id,
        ]
        for entry in entries:
            args += [entry.entry_id, entry.to_json()]
        return list(run_script(self._client, "claim_entries", [self._keys.inflight], args))

    def start(self, entry_id: str, stage: str, with_page: bool = False) -> StageStart:
        """Begin a stage: count the attempt and renew the lease, unless the entry ended;
        return the entry (and the handed-over page) in the same round trip."""
        page_key = self._keys.page(entry_id) if with_page else ""
        reply = run_script(
            self._client,
            "start_stage",
            [self._keys.entry(entry_id), self._keys.inflight, page_key],
            [entry_id, time.time(), self._leases.running_s, self._leases.max_attempts, stage],
        )
        return _stage_start(reply)

    def hand_over(self, entry_id: str, page: HandedPage) -> None:
        """Keep a fetched page for the extract stage (as long as a queued lease)."""
        run_script(
            self._client,
            "hand_over",
            [self._keys.page(entry_id), self._keys.handed],
            [entry_id, time.time(), int(self._leases.queued_s), page.url, page.fetched_at,
             page.html],
        )  # fmt: skip

    def queue_for_ingest(self, entry_ids: list[str]) -> None:
        """Queue entries for the fused article path, each behind its host's others
        (``take_for_ingest`` takes them round robin over the hosts)."""
        if entry_ids:
            keys = [self._keys.ingest_hosts, self._keys.ingest_activity, self._keys.inflight]
            args = [*self._ingest_queue_args(), *entry_ids]
            run_script(self._client, "queue_for_ingest", keys, args)

    def _ingest_queue_args(self) -> list[str | float]:
        keys = self._keys
        return [keys.ingest_host_prefix, keys.entry_prefix, time.time(),
                self._leases.ingest_queued_s]  # fmt: skip

    def take_for_ingest(self, task_id: str, count: int) -> list[tuple[str, StageStart]]:
        """Take up to ``count`` queued entries for the fused task ``task_id``, one from
        each host in turn, and begin the fetch stage of each (as ``start`` does)."""
        keys = [self._keys.ingest_hosts, self._keys.ingest_taken(task_id), self._keys.inflight,
                self._keys.ingest_activity]  # fmt: skip
        leases = self._leases
        args = [
            self._keys.ingest_host_prefix, count, int(leases.queued_s),
            self._keys.entry_prefix, time.time(), leases.running_s, leases.max_attempts,
        ]  # fmt: skip
        reply = run_script(self._client, "take_for_ingest", keys, args)
        return [(reply[i], _stage_start(reply[i + 1 : i + 4])) for i in range(0, len(reply), 4)]

    def return_taken(self, task_id: str) -> list[str]:
        """Put back at the head of their hosts' queues what an earlier delivery of
        ``task_id`` took."""
        keys = [self._keys.ingest_hosts, self._keys.ingest_activity, self._keys.inflight,
                self._keys.ingest_taken(task_id)]  # fmt: skip
        return list(run_script(self._client, "queue_for_ingest", keys, self._ingest_queue_args()))

    def wake_due(self, hold_s: float) -> bool:
        """Whether newly queued entries should wake fused tasks: not while tasks woken
        before have not started (each takes whatever is queued when it starts). True
        once until a fused task starts (``task_started``), or ``hold_s`` passes: the
        wake-up of a task that was lost holds no one back for longer."""
        woken = self._client.set(self._keys.ingest_woken, 1, nx=True, px=int(hold_s * 1000))
        return bool(woken)

    def task_started(self) -> None:
        """A fused task began taking from the ingest queue: new entries may wake more."""
        self._client.delete(self._keys.ingest_woken)

    def forget_taken(self, task_id: str) -> None:
        """The fused task ended: each entry it took is done, deferred or handed over."""
        self._client.delete(self._keys.ingest_taken(task_id))

    def ingest_queued(self) -> dict[str, int]:
        """Entries waiting for a fused task, by host (in the ring's order)."""
        hosts = self._client.lrange(self._keys.ingest_hosts, 0, -1)
        with self._client.pipeline(transaction=False) as pipe:
            for host in hosts:
                pipe.llen(self._keys.ingest_host_queue(host))
            return dict(zip(hosts, map(int, pipe.execute()), strict=True))

    def ingest_waiting(self) -> bool:
        """Whether any entry waits for a fused task (one host or more in the ring)."""
        return bool(self._client.llen(self._keys.ingest_hosts))

    def ingest_stalled(self, stall_s: float) -> bool:
        """Whether entries wait for a fused task and none was queued or taken for
        ``stall_s``: their wake-up task is lost. True once in ``stall_s`` at most, for
        one of the deployment's sweepers, so that a task woken for them and waiting
        behind others is not followed by one at every sweep."""
        pipe = self._client.pipeline(transaction=False)
        pipe.llen(self._keys.ingest_hosts)
        pipe.get(self._keys.ingest_activity)
        waiting, activity = pipe.execute()
        if not waiting or time.time() - float(activity or 0) < stall_s:
            return False
        rewoken = self._client.set(self._keys.ingest_rewoken, 1, nx=True, px=int(stall_s * 1000))
        return bool(rewoken)

    def pages_waiting(self) -> int:
        """Fetched pages waiting for extraction, deployment-wide (a hand-over older than
        the queued lease has expired with its page and no longer counts)."""
        pipe = self._client.pipeline(transaction=False)
        pipe.zremrangebyscore(self._keys.handed, "-inf", time.time() - self._leases.queued_s)
        pipe.zcard(self._keys.handed)
        return int(pipe.execute()[1])

    def count_extractions(self, pages: int, cpu_s: float) -> None:
        """Add to the deployment's counters the pages extracted (whatever came of them)
        and the CPU their extraction and publishing took: ``status`` shows both, and
        their quotient is what a page costs here, trafilatura included."""
        pipe = self._client.pipeline(transaction=False)
        pipe.hincrby(self._keys.stats, "extractions", pages)
        pipe.hincrby(self._keys.stats, "extraction_cpu_ms", round(cpu_s * 1000))
        pipe.execute()

    def postpone(self, entry_ids: list[str], seconds: float) -> None:
        """Give queued entries back to the sweeper for later, attempts untouched (XX: an
        entry that has ended left the inflight set and is not put back)."""
        pipe = self._client.pipeline(transaction=False)
        for entry_id in entry_ids:
            later = time.time() + seconds * random.uniform(1.0, 1.5)
            pipe.zadd(self._keys.inflight, {entry_id: later}, xx=True)
        pipe.execute()

    def requeue_failed(
        self, entry_ids: list[str], reasons: frozenset[str] | None = None, dry_run: bool = False
    ) -> list[str]:
        """Put dead-lettered entries back to work (attempts cleared) for the sweeper to
        enqueue: those still failed, for one of ``reasons`` (any when None); return them
        (``dry_run``: only say which they would be)."""
        if not entry_ids or reasons == frozenset():
            return []
        keys = self._keys
        args = [time.time(), keys.entry_prefix, keys.seen_prefix, self._leases.ttl_s,
                ",".join(sorted(reasons or ())), "1" if dry_run else "", *entry_ids]  # fmt: skip
        return list(run_script(self._client, "requeue_failed", [keys.inflight], args))

    def entry(self, entry_id: str) -> FeedEntry | None:
        """Return what the poller stored about an entry."""
        raw = self._client.hget(self._keys.entry(entry_id), "entry")
        return FeedEntry.from_json(raw) if raw else None

    def state(self, entry_id: str) -> dict[str, str]:
        """Return the ledger record of an entry (state, attempts, reason, article_id...)."""
        record = self._client.hgetall(self._keys.entry(entry_id))
        record.pop("entry", None)
        return dict(record)

    def retry_later(self, entry_id: str, attempt: int, at_least_s: float | None = None) -> float:
        """Schedule a transient failure for another try; the sweeper re-enqueues it then.
        A server's Retry-After counts up to a day: a longer one (or a date in 9999) would
        park the entry for ever."""
        base = self._leases.retry_base_s
        delay = min(base * 2 ** max(attempt - 1, 0), 600.0) * random.uniform(0.75, 1.25)
        return self._wait(entry_id, max(delay, min(at_least_s or 0.0, RETRY_AFTER_MOST_S)))

    def defer(self, entry_id: str, stage: str, seconds: float) -> float:
        """Put an entry back for later without counting the attempt (host budget spent)."""
        self._client.hincrby(self._keys.entry(entry_id), f"attempts_{stage}", -1)
        return self._wait(entry_id, seconds * random.uniform(1.0, 1.5))

    def _wait(self, entry_id: str, seconds: float) -> float:
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(self._keys.entry(entry_id), "state", "retry_wait")
        pipe.zadd(self._keys.inflight, {entry_id: time.time() + seconds})
        pipe.execute()
        return seconds

    def expired(self, limit: int = 1000) -> list[str]:
        """Take entries whose lease expired, each given a fresh queued lease, and those
        whose wait before another try is over, 'queued' again (sweeper)."""
        return list(
            run_script(
                self._client,
                "sweep_leases",
                [self._keys.inflight],
                [time.time(), limit, self._leases.queued_s, self._keys.entry_prefix],
            )
        )

    def inflight_count(self) -> int:
        return int(self._client.zcard(self._keys.inflight))


def new_token() -> str:
    """A unique token for one claim call."""
    return uuid.uuid4().hex


def _stage_start(reply: list[Any]) -> StageStart:
    """Decode start_entry.lua's answer: verdict, detail, entry JSON (or nil), and after
    them, from start_stage.lua with a page key, the handed page's url, time and html."""
    entry = FeedEntry.from_json(reply[2]) if len(reply) > 2 and reply[2] else None
    page = HandedPage(*reply[3:6]) if len(reply) > 5 and reply[5] is not None else None
    return StageStart(reply[0], reply[1], entry, page)
