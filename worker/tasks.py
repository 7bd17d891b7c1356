"""Thin Celery tasks: decode ids, call one domain function, route what comes next."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init, worker_process_shutdown, worker_shutdown

from worker import pipeline
from worker.celery_app import app, queue_names, warm_sender
from worker.config import Settings, load_settings
from worker.extract.article import release_memory
from worker.feeds.poll import poll_feed as poll_feed_once
from worker.ledger import StageStart
from worker.runtime import Runtime

log = logging.getLogger(__name__)
_runtime: list[Runtime | None] = [None]
_poll_pool: list[ThreadPoolExecutor | None] = [None]
_fetch_pool: list[ThreadPoolExecutor | None] = [None]
_publish_pool: list[ThreadPoolExecutor | None] = [None]
_extractions = [0]
RESET_CACHES_EVERY = 500  # trafilatura, htmldate and courlan caches grow with every page
EXTRACT_FLUSH_S = 0.25  # fetched pages wait at most this long for their group to fill
# A fused task waits this long for its next page, then leaves the pages still downloading
# to be handed over through Redis (a slow or polite host must not hold a CPU process).
FETCH_PATIENCE_S = 1.0
# A fused task that finds its process's fetch threads all taken (by downloads it let go)
# ends and asks for a new task this much later, so the process can extract meanwhile.
WAKE_AGAIN_S = 1.0
# Polls that queue entries while the fused tasks woken for earlier ones wait to start
# wake none (those take everything queued): 20 feeds polled at once left 40 wake-ups
# in the extract queue through a whole backlog. Past this, a wake-up is presumed lost.
WAKE_HOLD_S = 10.0
# Publishes a fused task may have under way in its process's publish thread, past which
# it waits for them (they take ~1 ms of a ~25 ms extraction: only a stalled Redis fills it).
MAX_PUBLISHING = 8
# A fetch batch waits this long for room in the hand-off, then steps back for about
# ROOM_POSTPONE_S (the sweeper re-enqueues it). Both well under the visibility timeout.
ROOM_WAIT_S = 60.0
ROOM_POSTPONE_S = 30.0
ROOM_CHECK_S = 0.25


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


class RunningFetches:
    """Downloads submitted to this process's fetch threads and not yet ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def add(self, count: int) -> None:
        with self._lock:
            self._count += count

    @property
    def count(self) -> int:
        return self._count


_running_fetches = [RunningFetches()]


@worker_process_init.connect
def _reset_after_fork(**_: Any) -> None:
    _runtime[0] = None  # sockets inherited from the parent must not be shared
    _poll_pool[0] = None
    _fetch_pool[0] = None
    _publish_pool[0] = None
    _running_fetches[0] = RunningFetches()
    _start_ready()


@worker_process_shutdown.connect
@worker_shutdown.connect
def _close_runtime(**_: Any) -> None:
    """Give back the host slots this process holds for a moment (``HostGate``) now, not
    at their expiry in Redis, which would keep other workers off their hosts meanwhile."""
    rt = _runtime[0]
    if rt is None:
        return
    try:
        rt.close()
    except (redis.RedisError, OSError) as exc:
        log.warning("runtime not closed cleanly at shutdown: %s", exc)


def _start_ready() -> None:
    """Build the Runtime and the task sender of a new prefork child now, not in its
    first task: a child's first fused task (recycled children's too) took its first
    entries 42 ms after it began, 2-4 ms now, while the next poll's pages waited
    (bench/throughput.py, timestamps in the workers). If Redis does not answer now,
    the first task builds them."""
    try:
        runtime()
    except (redis.RedisError, OSError) as exc:
        log.warning("runtime not ready at process start (built at the first task): %s", exc)
    warm_sender()


def poll_pool() -> ThreadPoolExecutor:
    """Threads polling the feeds of a batch side by side (one slow feed holds one thread)."""
    if _poll_pool[0] is None:
        _poll_pool[0] = ThreadPoolExecutor(runtime().settings.poll_threads, "poll")
    return _poll_pool[0]


def fetch_pool() -> ThreadPoolExecutor:
    """Threads fetching the pages of fetch batches side by side."""
    if _fetch_pool[0] is None:
        _fetch_pool[0] = ThreadPoolExecutor(runtime().settings.fetch_threads, "fetch")
    return _fetch_pool[0]


def publish_pool() -> ThreadPoolExecutor:
    """The thread publishing a fused task's articles while the next page is extracted."""
    if _publish_pool[0] is None:
        _publish_pool[0] = ThreadPoolExecutor(1, "publish")
    return _publish_pool[0]


def chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def enqueue_fetches(rt: Runtime, entry_ids: list[str]) -> None:
    """Queue the article work of entries that have no page yet: on the fused path for
    the extraction processes, which fetch and extract; on the split path to the io
    workers, which fetch and hand the pages over (several entries per task: a task costs
    ~2 ms of broker work)."""
    if rt.settings.article_path == "fused":
        queue_ingest(rt, entry_ids)
        return
    queue = queue_names(rt.settings).fetch
    for batch in chunks(entry_ids, rt.settings.fetch_batch):
        fetch_pages.apply_async((batch,), queue=queue)


def queue_ingest(rt: Runtime, entry_ids: list[str]) -> None:
    """Put entries on the ingest queue (Redis) and wake one fused task per ``fetch_ahead``
    of them, at most one per extraction process of a worker (``cpu_concurrency``): a
    task takes entries as its downloads run low, so that its next pages are on their way
    while it extracts, and goes on until the queue is empty or its ``ingest_pull_s`` is
    spent. More tasks for a backlog come from the tasks themselves (``ingest_pages``):
    a backlog of 2,000 entries no longer leaves 125 tasks that find nothing to do. No
    task is woken while those woken before have not started (``WAKE_HOLD_S``)."""
    rt.ledger.queue_for_ingest(entry_ids)
    if not entry_ids or not rt.ledger.wake_due(WAKE_HOLD_S):
        return
    most = rt.settings.fetch_ahead * rt.settings.cpu_concurrency
    wake_ingest_tasks(rt, min(len(entry_ids), most))


def wake_ingest_tasks(rt: Runtime, entries: int, countdown: float | None = None) -> None:
    """Send the fused tasks for ``entries`` queued entries (none for none)."""
    settings = rt.settings
    limits = settings.ingest_task_limits()
    queue = queue_names(settings).extract
    for _ in range(-(-entries // settings.fetch_ahead)):
        ingest_pages.apply_async(([],), queue=queue, countdown=countdown, **limits)


def enqueue_extractions(entry_ids: list[str], settings: Settings | None = None) -> None:
    """Queue extractions, several pages per task, with time limits sized to the batch."""
    settings = settings or runtime().settings
    queue = queue_names(settings).extract
    for batch in chunks(entry_ids, settings.extract_batch):
        limits = settings.extraction_task_limits(len(batch))
        extract_pages.apply_async((batch,), queue=queue, **limits)


@app.task(name="newswire.poll_feed")
def poll_feed(feed_id: str, token: str) -> str:
    """Poll one claimed feed and enqueue the fetch of each new entry."""
    rt = runtime()
    return poll_feed_once(rt, feed_id, token, partial(enqueue_fetches, rt)).status


@app.task(name="newswire.poll_feeds")
def poll_feeds(claims: list[list[str]]) -> dict[str, int]:
    """Poll a batch of claimed feeds concurrently (one task per batch: less broker work)."""
    rt = runtime()
    enqueue = partial(enqueue_fetches, rt)
    futures = [poll_pool().submit(poll_feed_once, rt, f, t, enqueue) for f, t in claims]
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


@app.task(name="newswire.fetch_pages")
def fetch_pages(entry_ids: list[str]) -> dict[str, int]:
    """Fetch a batch of entries' pages concurrently; hand each fetched page to the CPU
    queue in groups as they arrive (a slow server holds back only its own page)."""
    rt = runtime()
    if not wait_for_handoff_room(rt, len(entry_ids)):
        rt.ledger.postpone(entry_ids, ROOM_POSTPONE_S)
        return {"postponed": len(entry_ids)}
    pending: dict[Future[pipeline.StageResult], str] = {}
    try:
        for entry_id in entry_ids:
            pending[fetch_pool().submit(_fetch_admitted, rt, entry_id)] = entry_id
    finally:  # a pool shut down under us: what was not submitted is not under way
        _handoff_level.release(rt, len(entry_ids) - len(pending))
    fetched: list[str] = []
    outcomes: Counter[str] = Counter()
    while pending:
        done, _ = wait(pending, timeout=EXTRACT_FLUSH_S, return_when=FIRST_COMPLETED)
        for future in done:
            entry_id = pending.pop(future)
            outcome = _fetch_outcome(entry_id, future)
            outcomes[outcome] += 1
            if outcome == "extract":
                fetched.append(entry_id)
        if fetched and (len(fetched) >= rt.settings.extract_batch or not done or not pending):
            enqueue_extractions(fetched)
            fetched = []
    return dict(outcomes)


class HandoffLevel:
    """How many fetched pages wait for extraction, as this process counts them: what Redis
    said at its last answer (one question per ROOM_CHECK_S per process, not per thread: in
    a backlog every Celery thread of an io worker waits for room, on a Redis that every io
    worker of the deployment shares), plus the fetches this process has admitted since:
    those under way and those ended after that answer. Counting them keeps the threads of
    one worker from all passing the check at once: past the limit, one worker adds at
    most one batch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # by handed ZSET key: Redis's last answer (when, count), fetches under way, and
        # fetches ended since that answer (their pages may not be in it)
        self._seen: dict[str, tuple[float, int]] = {}
        self._admitted: Counter[str] = Counter()
        self._ended: Counter[str] = Counter()

    def admit(self, rt: Runtime, count: int) -> bool:
        """Admit ``count`` fetches if the pages waiting, with the fetches this process
        started since Redis's last answer, are fewer than ``max_waiting_pages``."""
        key = rt.keys.handed
        with self._lock:  # held across the query: the other threads want the same answer
            seen = self._seen.get(key)
            if seen is None or time.monotonic() - seen[0] >= ROOM_CHECK_S:
                seen = (time.monotonic(), rt.ledger.pages_waiting())
                self._seen[key] = seen
                self._ended[key] = 0
            if seen[1] + self._admitted[key] + self._ended[key] >= rt.settings.max_waiting_pages:
                return False
            self._admitted[key] += count
            return True

    def release(self, rt: Runtime, count: int = 1) -> None:
        """Admitted fetches ended (their pages handed over, or not)."""
        key = rt.keys.handed
        with self._lock:
            self._admitted[key] = max(self._admitted[key] - count, 0)
            self._ended[key] += count


_handoff_level = HandoffLevel()


def wait_for_handoff_room(rt: Runtime, count: int) -> bool:
    """Backpressure: admit ``count`` fetches once fewer than ``max_waiting_pages`` fetched
    pages wait for extraction (now or within ROOM_WAIT_S); each admitted fetch must end in
    ``_fetch_admitted``. Without it, fetching runs ahead of the CPUs and every page of a
    backlog sits in Redis at once."""
    deadline = time.monotonic() + ROOM_WAIT_S
    while not _handoff_level.admit(rt, count):
        if time.monotonic() > deadline:
            return False
        time.sleep(ROOM_CHECK_S)
    return True


def _fetch_admitted(rt: Runtime, entry_id: str) -> pipeline.StageResult:
    try:
        return pipeline.fetch_stage(rt, entry_id)
    finally:
        _handoff_level.release(rt)


def _fetch_outcome(entry_id: str, future: Future[pipeline.StageResult]) -> str:
    try:
        return future.result().next
    except Exception:
        # A bug or Redis away: the entry's lease expires and the sweeper re-enqueues it.
        log.exception("fetch of entry %s crashed", entry_id)
        return "crashed"


@dataclass
class Extractions:
    """The extractions of one task: their outcomes and CPU (added to the deployment's
    counters once, at the end), and trafilatura's caches dropped every
    RESET_CACHES_EVERY pages this process extracts."""

    outcomes: Counter[str] = field(default_factory=Counter)
    pages: int = 0
    cpu_s: float = 0.0
    publishing: list[Future[pipeline.StageResult]] = field(default_factory=list)

    def run(self, extract: Callable[[], pipeline.StageResult]) -> None:
        self._count_page()
        self._record(extract())

    def run_overlapped(self, rt: Runtime, fetched: pipeline.Fetched) -> None:
        """Extract a page here and publish it in the process's publish thread, so that its
        round trip (the script's reply took ~1 ms of wall time a page, 4% of an extraction
        process's main thread) overlaps the next page's extraction."""
        self._count_page()
        prepared = pipeline.prepare_fetched(rt, fetched)
        if not isinstance(prepared, pipeline.Prepared):
            self._record(prepared)
            return
        self.publishing.append(publish_pool().submit(pipeline.publish_prepared, rt, prepared))
        self.settle(wait_all=len(self.publishing) >= MAX_PUBLISHING)

    def settle(self, wait_all: bool = True) -> None:
        """Count the publishes that ended (with ``wait_all``, wait for every one first);
        a publish that raised (Redis away) raises here, once the others are counted."""
        if wait_all:
            wait(self.publishing)
        # one look at each future: one that ends between two looks would be in neither list
        ended: list[Future[pipeline.StageResult]] = []
        under_way: list[Future[pipeline.StageResult]] = []
        for future in self.publishing:
            (ended if future.done() else under_way).append(future)
        self.publishing = under_way
        errors: list[BaseException] = []
        for future in ended:
            if (error := future.exception()) is not None:
                errors.append(error)
            else:
                self._record(future.result())
        if errors:
            raise errors[0]

    def _count_page(self) -> None:
        _extractions[0] += 1
        if _extractions[0] % RESET_CACHES_EVERY == 0:
            release_memory()

    def _record(self, result: pipeline.StageResult) -> None:
        self.outcomes[result.detail] += 1
        if result.cpu_s:
            self.pages, self.cpu_s = self.pages + 1, self.cpu_s + result.cpu_s

    def cut_short(self, rt: Runtime, entry_id: str) -> None:
        """The task ran out of time (the per-page limit did not fire: a long C call) while
        extracting ``entry_id``: that page ends here."""
        detail = "the extraction task exceeded its time limit"
        pipeline.fail_entry(rt, entry_id, "extraction_timeout", detail)
        self.outcomes["failed"] += 1

    def finish(self, rt: Runtime) -> dict[str, int]:
        if self.pages:
            rt.ledger.count_extractions(self.pages, self.cpu_s)
        return dict(self.outcomes)


@app.task(name="newswire.extract_pages")
def extract_pages(entry_ids: list[str]) -> dict[str, int]:
    """Extract, dedup and publish fetched entries, one after the other."""
    rt = runtime()
    done = Extractions()
    for position, entry_id in enumerate(entry_ids):
        try:
            done.run(partial(pipeline.extract_stage, rt, entry_id))
        except SoftTimeLimitExceeded:
            done.cut_short(rt, entry_id)
            enqueue_extractions(entry_ids[position + 1 :])  # the rest go back to the queue
            break
    return done.finish(rt)


def top_up_at(fetch_ahead: int) -> int:
    """Pages on their way or waiting at which a fused task takes more: three quarters of
    ``fetch_ahead`` (18 of 24), so that many stay ahead. Topping up at half (8 of 16,
    ~220 ms of extraction here) left the cores idle 6.4% of a run with pages delayed
    200 ms, at three quarters 3.8% (bench/throughput.py, three runs each side by side);
    the takes, a quarter at a time, cost little more."""
    return fetch_ahead - max(fetch_ahead // 4, 1)


class ArrivingPages:
    """The pages of one fused task, handed from the fetch threads to the task as they
    arrive. The task takes entries from the ingest queue whenever a quarter of its
    ``fetch_ahead`` pages are done (``top_up_at``), until its ``ingest_pull_s`` is
    spent or the queue is empty, and never more than the process has fetch threads
    free (``starved``: it found none). Once the task lets go (nothing arrived for
    FETCH_PATIENCE_S: a slow or polite host), each later page is handed over through
    Redis to any extraction process, as on the split path: a slow download never holds
    an extraction process, and no page is lost."""

    def __init__(self, rt: Runtime, task_id: str, pull_s: float) -> None:
        self._rt = rt
        self._task_id = task_id
        self._pull_until = time.monotonic() + pull_s
        self._lock = threading.Lock()
        self._arrived: queue.SimpleQueue[tuple[str, pipeline.StageResult]] = queue.SimpleQueue()
        self._let_go = False
        self._passed_on = False
        self.submitted = 0
        self.taken = 0
        self.starved = False
        self.unclaimed: list[tuple[str, pipeline.StageResult]] = []  # arrived, not taken

    def add(self, entries: Sequence[tuple[str, StageStart | None]]) -> None:
        """Start downloading these entries' pages (the fetch stage begun by the take,
        or, for None, by the fetch thread), their host slots taken ahead together."""
        pipeline.reserve_fetches(self._rt, [start for _, start in entries if start is not None])
        running = _running_fetches[0]
        for entry_id, start in entries:
            running.add(1)
            fetch_pool().submit(self._fetch, running, entry_id, start)
            self.submitted += 1

    def _fetch(self, running: RunningFetches, entry_id: str, start: StageStart | None) -> None:
        """Run the fetch stage (in a fetch thread) and deliver what came of it."""
        rt = self._rt
        try:
            if start is None:
                result = pipeline.fetch_stage(rt, entry_id, hand_over=False)
            else:
                result = pipeline.fetch_started(rt, entry_id, start, hand_over=False)
        except Exception:
            log.exception("fetch of entry %s crashed", entry_id)  # its lease brings it back
            result = pipeline.StageResult("crashed")
        finally:
            running.add(-1)
        with self._lock:
            if not self._let_go:
                self._arrived.put((entry_id, result))
                return
        if result.fetched is not None:
            _hand_over(rt, entry_id, result.fetched)

    def _top_up(self) -> None:
        settings = self._rt.settings
        ahead = self.submitted - self.taken
        if ahead > top_up_at(settings.fetch_ahead) or time.monotonic() >= self._pull_until:
            return
        # Downloads this task let go of (a polite host's) may hold the threads: taking
        # more would only queue them behind those, unstarted, their leases running.
        free = settings.fetch_threads - _running_fetches[0].count
        count = min(settings.fetch_ahead - ahead, free)
        self.starved = count <= 0 and ahead == 0
        if count <= 0:
            return
        taken = self._rt.ledger.take_for_ingest(self._task_id, count)
        if not taken:
            self._pull_until = 0.0  # the queue is empty: new entries come with their tasks
        elif not self._passed_on and self._rt.ledger.ingest_waiting():
            # More than this task's first take waits: wake one more task, which does the
            # same, so a backlog reaches every idle extraction process of the deployment
            # (unless a task woken for it has yet to start: that one will).
            if self._rt.ledger.wake_due(WAKE_HOLD_S):
                wake_ingest_tasks(self._rt, 1)
            self._passed_on = True
        self.add(taken)

    def arrivals(self, patience_s: float) -> Iterator[tuple[str, pipeline.StageResult]]:
        """Fetch results as they arrive, until none is on its way or one keeps us waiting
        over ``patience_s``; then those that arrived meanwhile."""
        while True:
            self._top_up()
            if self.taken == self.submitted:
                break
            try:
                arrival = self._arrived.get(timeout=patience_s)
            except queue.Empty:
                break
            self.taken += 1
            yield arrival
        self.let_go()
        while self.unclaimed:
            self.taken += 1
            yield self.unclaimed.pop(0)

    def let_go(self) -> None:
        """Take no more pages; what arrived before waits in ``unclaimed``."""
        self._pull_until = 0.0
        with self._lock:
            self._let_go = True
        while not self._arrived.empty():
            self.unclaimed.append(self._arrived.get())

    def hand_over_rest(self) -> None:
        """The task must stop: hand over what arrived and was not taken, and (as they
        arrive) the pages still downloading."""
        self.let_go()
        for entry_id, result in self.unclaimed:
            if result.fetched is not None:
                _hand_over(self._rt, entry_id, result.fetched)


def _hand_over(rt: Runtime, entry_id: str, fetched: pipeline.Fetched) -> None:
    rt.ledger.hand_over(entry_id, fetched.page)
    enqueue_extractions([entry_id], rt.settings)


@app.task(name="newswire.ingest_pages", bind=True)
def ingest_pages(self: Task, entry_ids: list[str]) -> dict[str, int]:
    """The fused article path: download pages in this process's fetch threads and extract
    each here, in the main thread (trafilatura is not thread-safe; the per-page time
    limit is a signal), as soon as it arrives: downloads overlap extraction, and no page
    crosses a process boundary or Redis. The pages are those of ``entry_ids`` and of the
    entries the task takes from the ingest queue as it goes (``ArrivingPages``)."""
    rt = runtime()
    task_id = self.request.id or uuid.uuid4().hex
    rt.ledger.task_started()
    # Delivered before, to a process that died? What it took goes back to the queue's
    # head; this task takes the first of them, new tasks the rest.
    wake_ingest_tasks(rt, len(rt.ledger.return_taken(task_id)) - rt.settings.fetch_ahead)
    pages = ArrivingPages(rt, task_id, rt.settings.ingest_pull_s)
    pages.add([(entry_id, None) for entry_id in entry_ids])
    done = Extractions()
    current = ""
    try:
        for entry_id, result in pages.arrivals(FETCH_PATIENCE_S):
            current = entry_id
            if result.fetched is None:
                done.outcomes[result.next] += 1
            else:
                done.run_overlapped(rt, result.fetched)
            current = ""
    except SoftTimeLimitExceeded:
        if current:
            done.cut_short(rt, current)
        pages.hand_over_rest()
    done.settle()  # what this task took ends in the streams before it lets go of it
    rt.ledger.forget_taken(task_id)
    if rt.ledger.ingest_waiting():
        # This task's pull ended with entries left (its time spent, or no fetch thread
        # free: then a little later, when threads may be free): a task must come for them.
        wake_ingest_tasks(rt, 1, countdown=WAKE_AGAIN_S if pages.starved else None)
    if pages.taken < pages.submitted:
        done.outcomes["handed_over"] += pages.submitted - pages.taken
    return done.finish(rt)
