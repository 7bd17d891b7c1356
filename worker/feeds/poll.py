"""Poll one feed: conditional GET, parse, claim new entries, record the outcome."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from worker.dedup.canonical import url_id
from worker.errors import FeedError, FetchError, NewswireError
from worker.feeds.parse import FeedItem, ParsedFeed, parse_feed
from worker.feeds.registry import FeedRecord
from worker.feeds.schedule import backoff_interval, begin_poll, next_interval
from worker.fetch.guard import check_url
from worker.model import FeedEntry, utc_iso
from worker.publish.schema import deadletter_message
from worker.runtime import Runtime

log = logging.getLogger(__name__)
Enqueue = Callable[[list[str]], None]


@dataclass(frozen=True)
class PollResult:
    """What one poll did."""

    status: str  # skipped | not_modified | ok | error
    entries: int = 0
    new: int = 0
    reason: str = ""


def entry_id_for(feed_id: str, item: FeedItem) -> str:
    """An entry is its canonical link; items without one are keyed by feed and GUID."""
    if item.link:
        return url_id(item.link)
    basis = item.guid or f"{item.title}\n{item.summary}"
    return hashlib.sha256(f"{feed_id}\n{basis}".encode()).hexdigest()[:32]


def to_entries(feed: FeedRecord, parsed: ParsedFeed) -> tuple[list[FeedEntry], int]:
    """Turn items into entries; return them and how many were skipped (no usable link)."""
    entries: list[FeedEntry] = []
    skipped = 0
    for item in parsed.items:
        try:
            check_url(item.link)
        except NewswireError:
            skipped += 1
            continue
        entries.append(
            FeedEntry(
                entry_id=entry_id_for(feed.feed_id, item),
                feed_id=feed.feed_id,
                feed_url=feed.url,
                url=item.link,
                guid=item.guid,
                title=item.title,
                summary=item.summary,
                authors=item.authors,
                published=item.published,
                updated=item.updated,
                tags=list(dict.fromkeys([*item.tags, *feed.tags])),
                image=item.image,
                language=parsed.language,
            )
        )
    return entries, skipped


def poll_feed(rt: Runtime, feed_id: str, token: str, enqueue: Enqueue) -> PollResult:
    """Poll a claimed feed once; safe to call twice with the same token (the second skips)."""
    if not begin_poll(rt.client, rt.keys, feed_id, token):
        return PollResult("skipped")
    feed = rt.registry.get(feed_id)
    if feed is None or feed.status == "disabled":
        return PollResult("skipped")
    started = time.time()
    try:
        response = rt.fetcher.get(feed.url, rt.feed_limits, headers=_validators(feed))
        if response.status == 304:
            _record_success(rt, feed, started, None, 0, 0, {})
            return PollResult("not_modified")
        parsed = parse_feed(response.body, response.url, response.headers)
    except (FetchError, FeedError) as exc:
        _record_failure(rt, feed, started, exc)
        return PollResult("error", reason=exc.reason)
    entries, skipped = to_entries(feed, parsed)
    new_ids = rt.ledger.claim(feed_id, entries)
    enqueue(new_ids)
    _record_success(
        rt, feed, started, parsed, len(entries), len(new_ids), response.headers, skipped=skipped
    )
    return PollResult("ok", len(entries), len(new_ids))


def _validators(feed: FeedRecord) -> dict[str, str]:
    headers = {
        "Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
        "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
    }
    if feed.etag:
        headers["If-None-Match"] = feed.etag
    if feed.last_modified:
        headers["If-Modified-Since"] = feed.last_modified
    return headers


def _record_success(
    rt: Runtime,
    feed: FeedRecord,
    started: float,
    parsed: ParsedFeed | None,
    seen: int,
    new: int,
    headers: dict[str, str],
    skipped: int = 0,
) -> None:
    fields: dict[str, object] = {
        "status": "ok",
        "last_polled": started,
        "last_success": started,
        "consecutive_failures": 0,
        "polls": feed.polls + 1,
        "entries_seen": feed.entries_seen + seen,
        "entries_new": feed.entries_new + new,
    }
    if parsed is None:
        fields["not_modified"] = feed.not_modified + 1
    else:
        fields.update(
            etag=headers.get("etag", ""),
            last_modified=headers.get("last-modified", ""),
            title=parsed.title or feed.title,
            parsed=feed.parsed + 1,
            entries_skipped=feed.entries_skipped + skipped,
        )
    ttl = parsed.ttl_minutes if parsed else None
    next_poll = started + next_interval(rt.policy, feed.interval_s, ttl)
    rt.registry.update(feed.feed_id, next_poll=next_poll, **fields)
    log.info("polled %s: %d entries, %d new", feed.url, seen, new)


def _record_failure(rt: Runtime, feed: FeedRecord, started: float, exc: NewswireError) -> None:
    failures = feed.consecutive_failures + 1
    next_poll = started + backoff_interval(rt.policy, feed.interval_s, failures)
    rt.registry.update(
        feed.feed_id,
        next_poll=next_poll,
        status="error",
        last_polled=started,
        last_error=f"{exc.reason}: {exc.detail}"[:500],
        last_error_at=started,
        consecutive_failures=failures,
        polls=feed.polls + 1,
    )
    rt.publisher.feed_failure(
        deadletter_message(
            kind="feed",
            reason=exc.reason,
            detail=exc.detail,
            url=feed.url,
            feed_url=feed.url,
            failed_at=utc_iso(started),
            transient=exc.transient,
            attempts=failures,
        )
    )
    log.warning("poll of %s failed (%s): %s", feed.url, exc.reason, exc.detail)
