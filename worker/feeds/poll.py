"""Poll one feed: conditional GET, parse, claim new entries, record the outcome.

Outcomes, each recorded on the feed: not modified (304, or the same body as last time:
no parse), ok (entries claimed), deferred (the host's politeness budget is spent: not a
failure), error (backoff by a weighted error score; soft errors count half), disabled
(410 Gone, reason kept; `newswire feeds enable` undoes it).

Parsing is most of what a poll costs, and most items of a changed feed are old: items
are hashed one by one and only the ones not seen in the previous body are parsed.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from worker.dedup.canonical import same_site, url_id
from worker.errors import (
    FeedError,
    FetchError,
    HostBusy,
    NewswireError,
    failure_weight,
)
from worker.feeds.parse import FeedItem, ParsedFeed, parse_feed, split_items
from worker.feeds.registry import FeedRecord
from worker.feeds.schedule import (
    FeedHints,
    backoff_interval,
    next_interval,
    skip_until,
    sy_period,
    update_rate,
)
from worker.fetch.client import Response
from worker.fetch.guard import check_url
from worker.fetch.headers import freshness
from worker.model import FeedEntry, utc_iso
from worker.publish.schema import deadletter_message
from worker.runtime import Runtime

log = logging.getLogger(__name__)
Enqueue = Callable[[list[str]], None]
PERMANENT_REDIRECTS = frozenset({301, 308})


@dataclass(frozen=True)
class PollResult:
    """What one poll did."""

    status: str  # skipped | not_modified | unchanged | ok | deferred | error | disabled
    entries: int = 0
    new: int = 0
    reason: str = ""


def entry_id_for(feed_id: str, item: FeedItem) -> str:
    """An entry is its canonical link (items without one: feed and GUID), plus its update
    time when the feed says it changed after publication: a correction is fetched again
    and published as a new revision if its text changed."""
    if item.link:
        base = url_id(item.link)
    else:
        basis = item.guid or f"{item.title}\n{item.summary}"
        base = hashlib.sha256(f"{feed_id}\n{basis}".encode()).hexdigest()[:32]
    if _updated_after_publication(item):
        return hashlib.sha256(f"{base}@{item.updated}".encode()).hexdigest()[:32]
    return base


def _updated_after_publication(item: FeedItem, slack_s: float = 60.0) -> bool:
    if not item.updated or not item.published:
        return False  # Atom's lone <updated> is the creation time as often as not
    return _epoch(item.updated) - _epoch(item.published) > slack_s


def _epoch(iso: str) -> float:
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


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
                entry_id=entry_id_for(feed.feed_id, item), feed_id=feed.feed_id,
                feed_url=feed.url, url=item.link, guid=item.guid, title=item.title,
                summary=item.summary, authors=item.authors, published=item.published,
                updated=item.updated, tags=list(dict.fromkeys([*item.tags, *feed.tags])),
                image=item.image, language=item.language or parsed.language,
            )
        )  # fmt: skip
    return entries, skipped


def poll_feed(rt: Runtime, feed_id: str, token: str, enqueue: Enqueue) -> PollResult:
    """Poll a claimed feed once; safe to call twice with the same token (the second skips)."""
    feed = rt.registry.begin_poll(feed_id, token)
    if feed is None or feed.status == "disabled":
        return PollResult("skipped")
    try:
        response = rt.fetcher.get(feed.url, rt.feed_limits, headers=_request_headers(rt, feed))
    except HostBusy as exc:
        rt.registry.update(feed_id, next_poll=time.time() + (exc.retry_after or 5.0))
        return PollResult("deferred", reason=exc.reason)
    except FetchError as exc:
        return _failed(rt, feed, time.time(), exc)
    polled_at = time.time()  # intervals count from the answer (a host slot can take a while)
    try:
        return _take_in(rt, feed, response, polled_at, enqueue)
    except redis.RedisError:
        raise  # Redis away: the poll's lease brings it back
    except Exception as exc:
        # Something in the answer that no check foresaw: recorded on the feed, which backs
        # off as for any failure. Left to the task, it would be polled again at each lease
        # expiry, fail the same way, and leave nothing on the feed's status.
        log.exception("poll of %s: the answer could not be handled", feed.url)
        failure = FeedError("feed_error", feed.url, f"{type(exc).__name__}: {exc}"[:300])
        return _failed(rt, feed, polled_at, failure)


def _take_in(
    rt: Runtime, feed: FeedRecord, response: Response, polled_at: float, enqueue: Enqueue
) -> PollResult:
    """Record a feed's answer: unchanged, or its new entries claimed and enqueued."""
    feed_id = feed.feed_id
    redirect = _track_redirects(rt, feed, response)
    digest = hashlib.sha256(response.body).hexdigest()[:32]
    if response.status == 304 or digest == feed.body_hash:
        kind = "not_modified" if response.status == 304 else "unchanged"
        extra = {kind: getattr(feed, kind) + 1, **redirect}
        _succeeded(rt, feed, polled_at, response, None, 0, 0, extra)
        return PollResult(kind)
    body, item_hashes = _unseen_items(response.body, feed.item_hashes)
    try:
        parsed = parse_feed(body, response.url, response.headers)
    except FeedError as exc:
        return _failed(rt, feed, polled_at, exc)
    if parsed.kind == "sitemap":
        _add_children(rt, feed, parsed.children)
    entries, skipped = to_entries(feed, parsed)
    new_ids = rt.ledger.claim(feed_id, entries)
    enqueue(new_ids)
    extra = {
        "body_hash": digest, "item_hashes": item_hashes, "parsed": feed.parsed + 1,
        "kind": parsed.kind, "entries_skipped": feed.entries_skipped + skipped, **redirect,
    }  # fmt: skip
    _succeeded(rt, feed, polled_at, response, parsed, len(entries), len(new_ids), extra)
    return PollResult("ok", len(entries), len(new_ids))


def _add_children(rt: Runtime, feed: FeedRecord, children: list[str]) -> None:
    """A sitemap index: each sitemap it lists becomes a source, but for those whose URL we
    would never fetch (another scheme): one of them must not fail the index's polls. Only
    sitemaps of the index's own site, as the sitemaps protocol says: an index must not make
    us poll other sites (any number of them); and only its newest ``sitemap_index_limit``.
    Those it registered before and no longer lists among them are removed."""
    own = [child for child in children if same_site(child, feed.url)]
    if len(own) < len(children):
        log.warning(
            "sitemap index %s: skipped %d sitemaps of other sites",
            feed.url, len(children) - len(own),
        )  # fmt: skip
    limit = rt.settings.sitemap_index_limit
    if len(own) > limit:
        log.warning(
            "sitemap index %s lists %d sitemaps: only the newest %d are registered "
            "(sitemap_index_limit)", feed.url, len(own), limit,
        )  # fmt: skip
    _added, refused, retired = rt.registry.add_children(feed.feed_id, own[:limit], feed.tags)
    for why in refused:
        log.warning("sitemap index %s: skipped %s", feed.url, why)
    if retired:
        log.info("sitemap index %s: removed %d sitemaps it no longer lists", feed.url, retired)


def _unseen_items(body: bytes, previous: str) -> tuple[bytes, str]:
    """The body reduced to items not in the previous body, and the hashes of all items."""
    split = split_items(body)
    if split is None:
        return body, ""
    hashes = [hashlib.blake2b(item, digest_size=8).hexdigest() for item in split.items]
    known = {previous[i : i + 16] for i in range(0, len(previous), 16)}
    if not known:
        return body, "".join(hashes)
    fresh = [item for item, h in zip(split.items, hashes, strict=True) if h not in known]
    return split.with_items(fresh), "".join(hashes)


def _request_headers(rt: Runtime, feed: FeedRecord) -> dict[str, str]:
    headers = {
        "Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
        "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
    }
    # Validators sometimes lie (the same ETag for a changed feed): now and then, ask
    # without them; the body hash still spares the parse when nothing changed.
    every = rt.settings.unconditional_poll_every
    if every and feed.polls % every == every - 1:
        return headers
    if feed.etag:
        headers["If-None-Match"] = feed.etag
    if feed.last_modified:
        headers["If-Modified-Since"] = feed.last_modified
    return headers


def _track_redirects(rt: Runtime, feed: FeedRecord, response: Response) -> dict[str, Any]:
    """Count polls that saw the same permanent redirect; move the feed once it is steady."""
    if not response.redirects or response.redirects[0][0] not in PERMANENT_REDIRECTS:
        return {"redirect_to": "", "redirect_seen": 0}
    permanent = all(status in PERMANENT_REDIRECTS for status, _ in response.redirects)
    target = response.redirects[-1][1] if permanent else response.redirects[0][1]
    seen = feed.redirect_seen + 1 if target == feed.redirect_to else 1
    if seen >= rt.settings.redirects_before_move and rt.registry.move(feed.feed_id, target):
        log.info("feed %s moved permanently to %s", feed.url, target)
        return {}
    return {"redirect_to": target, "redirect_seen": seen}


def _succeeded(
    rt: Runtime,
    feed: FeedRecord,
    started: float,
    response: Response,
    parsed: ParsedFeed | None,
    seen: int,
    new: int,
    extra: dict[str, Any],
) -> None:
    fields: dict[str, Any] = {
        "status": "ok", "last_polled": started, "last_success": started,
        "consecutive_failures": 0, "error_score": 0.0, "polls": feed.polls + 1,
        "entries_seen": feed.entries_seen + seen, "entries_new": feed.entries_new + new,
        "etag": response.headers.get("etag", feed.etag),
        "last_modified": response.headers.get("last-modified", feed.last_modified), **extra,
    }  # fmt: skip
    if parsed is not None:
        fields["title"] = parsed.title or feed.title
    elapsed = started - feed.last_success if feed.last_success else None
    rate = update_rate(feed.rate, new, elapsed if feed.parsed else None)
    hints = _hints(parsed, response.headers)
    interval = next_interval(rt.policy, feed.interval_s, rate, feed.current_interval_s, hints)
    fields.update(rate=rate, current_interval_s=round(interval, 1))
    count = f"polls_{next((k for k in ('not_modified', 'unchanged') if k in extra), 'parsed')}"
    rt.registry.update(
        feed.feed_id, next_poll=skip_until(started + interval, hints), count=count, **fields
    )
    log.debug("polled %s: %d entries, %d new, next in %.0fs", feed.url, seen, new, interval)


def _hints(parsed: ParsedFeed | None, headers: dict[str, str]) -> FeedHints:
    if parsed is None:
        return FeedHints(fresh_for_s=freshness(headers))
    return FeedHints(
        ttl_s=parsed.ttl_minutes * 60.0 if parsed.ttl_minutes else None,
        update_period_s=sy_period(parsed.update_period, parsed.update_frequency),
        fresh_for_s=freshness(headers),
        skip_hours=parsed.skip_hours,
        skip_days=parsed.skip_days,
    )


def _failed(rt: Runtime, feed: FeedRecord, started: float, exc: NewswireError) -> PollResult:
    failures = feed.consecutive_failures + 1
    fields: dict[str, Any] = {
        "status": "error", "last_polled": started, "polls": feed.polls + 1,
        "last_error": f"{exc.reason}: {exc.detail}"[:500], "last_error_at": started,
        "consecutive_failures": failures,
        "error_score": feed.error_score + failure_weight(exc.reason),
    }  # fmt: skip
    if exc.reason == "http_410":
        fields.update(status="disabled", disabled_reason=f"410 Gone at {utc_iso(started)}")
        rt.registry.update(feed.feed_id, count="polls_failed", **fields)
        rt.client.zrem(rt.keys.feeds_due, feed.feed_id)
    else:
        delay = backoff_interval(rt.policy, feed.interval_s, fields["error_score"], exc.retry_after)
        rt.registry.update(feed.feed_id, next_poll=started + delay, count="polls_failed", **fields)
    rt.publisher.feed_failure(
        deadletter_message(
            kind="feed", reason=exc.reason, detail=exc.detail, url=feed.url, feed_url=feed.url,
            failed_at=utc_iso(started), transient=exc.transient, attempts=failures,
        )
    )  # fmt: skip
    log.warning("poll of %s failed (%s): %s", feed.url, exc.reason, exc.detail)
    return PollResult(fields["status"], reason=exc.reason)
