"""The ingest pipeline for one entry, stage by stage, with no Celery in sight.

fetch stage (I/O):   claim check -> GET page (guarded, capped) -> hand the HTML over
extract stage (CPU): trafilatura -> merge with the feed -> publish (atomic, idempotent)
Each stage first asks the ledger whether it may run, so redelivered tasks are no-ops.
On the fused article path one process runs both: the fetch stage keeps the page in hand
(``Fetched``) and ``extract_fetched`` takes it from there, without a hand-over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from worker.errors import (
    UNEXPECTED_DATA_ERRORS,
    ExtractionError,
    FetchError,
    HostBusy,
    NewswireError,
)
from worker.extract.document import article_document
from worker.extract.timeout import within_time_limit
from worker.fetch.page import fetch_page
from worker.ledger import HandedPage, StageStart
from worker.model import FeedEntry, utc_iso
from worker.publish.schema import deadletter_message
from worker.runtime import Runtime

log = logging.getLogger(__name__)

# What the ledger answers a stage that must not run: the entry ended (or its record is
# gone), or it waits to be tried again and the sweeper enqueues it when its wait is over.
STANDING_BY = frozenset({"done", "missing", "waiting"})


@dataclass(frozen=True)
class Fetched:
    """A page fetched and kept in hand for extraction in the same process."""

    entry: FeedEntry
    page: HandedPage
    attempt: int


@dataclass(frozen=True)
class StageResult:
    """Where an entry goes next: 'extract', 'done', 'retry' or 'failed'; for an
    extraction, the CPU seconds this thread spent extracting and publishing it; for a
    fetch that keeps its page, the page."""

    next: str
    detail: str = ""
    cpu_s: float = 0.0
    fetched: Fetched | None = None


def fetch_stage(rt: Runtime, entry_id: str, hand_over: bool = True) -> StageResult:
    """Fetch the entry's page and hand it to the extract stage (through Redis), or, with
    ``hand_over=False``, return it for ``extract_fetched`` in this process."""
    return fetch_started(rt, entry_id, rt.ledger.start(entry_id, "fetch"), hand_over)


def fetch_started(
    rt: Runtime, entry_id: str, start: StageStart, hand_over: bool = True
) -> StageResult:
    """``fetch_stage`` once the ledger answered its start (a fused task's take does)."""
    entry = start.entry
    if start.verdict in STANDING_BY or entry is None:
        return StageResult("done", start.detail)
    if start.verdict == "exhausted":
        return _give_up(rt, entry, int(start.detail))
    attempt = int(start.detail)
    try:
        if rt.settings.respect_robots_txt:
            rt.robots.check(entry.url)
        page = fetch_page(rt.fetcher, entry.url, rt.page_limits)
    except HostBusy as exc:
        rt.ledger.defer(entry_id, "fetch", exc.retry_after or rt.settings.host_delay_s or 1.0)
        return StageResult("retry", exc.reason)
    except FetchError as exc:
        if exc.transient and attempt < rt.settings.max_attempts:
            delay = rt.ledger.retry_later(entry_id, attempt, exc.retry_after)
            log.info("fetch of %s failed (%s), retry in %.0fs", entry.url, exc.reason, delay)
            return StageResult("retry", exc.reason)
        return _fail(rt, entry, exc, attempt)
    handed = HandedPage(page.url, utc_iso(), page.html)
    if not hand_over:
        return StageResult("extract", fetched=Fetched(entry, handed, attempt))
    rt.ledger.hand_over(entry_id, handed)
    return StageResult("extract")


def reserve_fetches(rt: Runtime, starts: Iterable[StageStart]) -> int:
    """Take ahead, in one round trip, the host slots of the pages these begun fetch stages
    are about to request (``HostGate.reserve``); return how many were taken."""
    urls = [start.entry.url for start in starts if start.verdict == "go" and start.entry]
    return rt.fetcher.reserve_slots(urls) if urls else 0


def extract_stage(rt: Runtime, entry_id: str) -> StageResult:
    """Extract, merge and publish; the outcome lands in the ledger and the streams."""
    start = rt.ledger.start(entry_id, "extract", with_page=True)
    entry = start.entry
    if start.verdict in STANDING_BY or entry is None:
        return StageResult("done", start.detail)
    if start.verdict == "exhausted":
        return _give_up(rt, entry, int(start.detail))
    if start.page is None:
        # The hand-off expired or was lost: the sweeper will run the fetch stage again.
        return StageResult("retry", "page hand-off missing")
    return extract_fetched(rt, Fetched(entry, start.page, int(start.detail)))


@dataclass(frozen=True)
class Prepared:
    """A page's article document, ready to publish, and the CPU seconds its making took."""

    fetched: Fetched
    article: dict[str, Any]
    cpu_s: float


def extract_fetched(rt: Runtime, fetched: Fetched) -> StageResult:
    """Extract, merge and publish a page in hand (its entry's lease already renewed)."""
    prepared = prepare_fetched(rt, fetched)
    return publish_prepared(rt, prepared) if isinstance(prepared, Prepared) else prepared


def prepare_fetched(rt: Runtime, fetched: Fetched) -> Prepared | StageResult:
    """Extract and merge a page in hand: its article document, or its failure (recorded)."""
    started = time.thread_time()
    try:
        article = within_time_limit(
            rt.settings.extraction_time_limit_s,
            article_document,
            fetched.entry,
            fetched.page.html,
            fetched.page.url,
            fetched.page.fetched_at,
            rt.settings.min_text_chars,
            rt.settings.min_publish_chars,
        )
    except ExtractionError as exc:
        failed = _fail(rt, fetched.entry, exc, fetched.attempt)
        return replace(failed, cpu_s=time.thread_time() - started)
    except UNEXPECTED_DATA_ERRORS as exc:
        return replace(_unexpected(rt, fetched, exc), cpu_s=time.thread_time() - started)
    return Prepared(fetched, article, time.thread_time() - started)


def publish_prepared(rt: Runtime, prepared: Prepared) -> StageResult:
    """Publish an article document (in any thread): the outcome lands in the ledger and
    the streams; ``cpu_s`` counts the making of the document and its publishing."""
    started = time.thread_time()
    entry = prepared.fetched.entry
    try:
        outcome = rt.publisher.publish(prepared.article, entry.entry_id)
    except UNEXPECTED_DATA_ERRORS as exc:
        failed = _unexpected(rt, prepared.fetched, exc)
        return replace(failed, cpu_s=prepared.cpu_s + time.thread_time() - started)
    # DEBUG: a line an article is noise at INFO (6 million a day at 70 a second), and
    # costs ~0.13 ms of the extraction process's CPU; each task's outcome counts are
    # logged at INFO by Celery, and failures at WARNING.
    log.debug("entry %s -> %s %s", entry.url, outcome.kind, outcome.ref)
    return StageResult("done", outcome.kind, cpu_s=prepared.cpu_s + time.thread_time() - started)


def _unexpected(rt: Runtime, fetched: Fetched, exc: Exception) -> StageResult:
    """This page only: raised to the task, it would end the task's whole batch, and come
    back at each retry of the entry until "gave_up_after_attempts"."""
    log.exception("extraction of %s failed", fetched.entry.url)
    detail = f"{type(exc).__name__}: {exc}"
    error = ExtractionError("extraction_error", fetched.entry.url, detail)
    return _fail(rt, fetched.entry, error, fetched.attempt)


def _fail(rt: Runtime, entry: FeedEntry, exc: NewswireError, attempts: int) -> StageResult:
    dead_letter(rt, entry, exc.reason, exc.detail, exc.transient, attempts)
    return StageResult("failed", exc.reason)


def _give_up(rt: Runtime, entry: FeedEntry, attempts: int) -> StageResult:
    detail = f"{attempts} attempts without finishing (worker lost or task timed out)"
    dead_letter(rt, entry, "gave_up_after_attempts", detail, False, attempts)
    return StageResult("failed", "gave_up_after_attempts")


def fail_entry(rt: Runtime, entry_id: str, reason: str, detail: str) -> None:
    """Dead-letter an entry by id (its stage was cut short from outside)."""
    entry = rt.ledger.entry(entry_id)
    if entry is not None:
        dead_letter(rt, entry, reason, detail, False, 1)


def dead_letter(
    rt: Runtime, entry: FeedEntry, reason: str, detail: str, transient: bool, attempts: int
) -> None:
    """Record the entry's failure once on the dead-letter stream."""
    message = deadletter_message(
        kind="entry",
        reason=reason,
        detail=detail,
        url=entry.url,
        feed_url=entry.feed_url,
        entry_id=entry.entry_id,
        failed_at=utc_iso(),
        transient=transient,
        attempts=attempts,
    )
    if rt.publisher.dead_letter(entry.entry_id, message):
        log.warning("entry %s dead-lettered: %s (%s)", entry.url, reason, detail)
