"""The feed registry: feed records and status in Redis, shared by every process."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from worker.dedup.canonical import canonical_url
from worker.errors import UNEXPECTED_DATA_ERRORS, PermanentFetchError
from worker.fetch.guard import check_url
from worker.keys import Keys
from worker.lua import run_script

FEEDS_PER_ROUND_TRIP = 500  # feed records read in one pipeline (~1 MB of replies at most)


def _url_key(url: str) -> str:
    """The canonical URL a feed is known by, once ``url`` is one we would fetch and Redis
    can store (raises PermanentFetchError, or UnicodeError for a lone surrogate)."""
    check_url(url)
    key = canonical_url(url)
    for text in (url, key):
        text.encode()  # Redis is sent UTF-8: a lone surrogate (a YAML escape) raises here
    return key


def feed_id_for(url: str) -> str:
    """Stable id of a feed, from its URL as first added (a later 301 keeps the id)."""
    return _feed_id_of(canonical_url(url))


def _feed_id_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class FeedRecord:
    """One feed: where it is, how it is polled, and how its last polls went."""

    feed_id: str
    url: str
    title: str = ""
    status: str = "new"  # new | ok | error | disabled
    kind: str = ""  # rss | atom | json | sitemap (as last parsed)
    tags: list[str] = field(default_factory=list)
    interval_s: float | None = None  # fixed poll interval; None = adaptive
    current_interval_s: float | None = None  # the interval chosen after the last poll
    rate: float | None = None  # estimated new entries per second
    added_at: float = 0.0
    last_polled: float | None = None
    last_success: float | None = None
    last_error: str = ""
    last_error_at: float | None = None
    consecutive_failures: int = 0
    error_score: float = 0.0  # failures weighted (soft errors count half)
    disabled_reason: str = ""
    redirect_to: str = ""  # target of the permanent redirects seen lately
    redirect_seen: int = 0  # consecutive polls that saw it
    etag: str = ""
    last_modified: str = ""
    body_hash: str = ""
    item_hashes: str = ""  # 16 hex characters per item of the last parsed body
    entries_seen: int = 0
    entries_new: int = 0
    entries_skipped: int = 0  # items without a usable http(s) link
    polls: int = 0
    parsed: int = 0  # polls whose body was parsed (not 304, not unchanged)
    not_modified: int = 0  # 304 answers
    unchanged: int = 0  # 200 answers with the same body as last time (validators ignored)
    # The sitemap index that registered this sitemap, and retires it once it lists it no
    # more ('': a feed of the operator's, which no index retires)
    parent: str = ""
    next_poll: float | None = None

    def to_redis(self) -> dict[str, str]:
        return {k: json.dumps(v) for k, v in vars(self).items() if k != "next_poll"}

    @classmethod
    def from_redis(cls, raw: dict[str, str], next_poll: float | None) -> FeedRecord:
        known = {k: json.loads(v) for k, v in raw.items() if k in cls.__dataclass_fields__}
        if "feed_id" not in known:
            raise ValueError(f"feed record without id: {sorted(raw)}")
        return cls(**known, next_poll=next_poll)


class Registry:
    """Add, remove, list feeds, and record the outcome of each poll."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def add(
        self, url: str, tags: list[str] | None = None, interval_s: float | None = None
    ) -> FeedRecord:
        """Register a feed (idempotent on its URL); it becomes due at once. A sitemap that
        an index registered becomes the operator's: no index retires it."""
        self._add_batch([(url, _url_key(url), list(tags or []), interval_s)])
        record = self.find(url)
        if record is None:  # another process removed it in between
            raise LookupError(f"feed {url} was removed while it was being added")
        return record

    def add_each(
        self, feeds: Iterable[tuple[str, list[str], float | None]]
    ) -> tuple[int, list[str]]:
        """Register each (url, tags, interval_s) as ``add`` does, FEEDS_PER_ROUND_TRIP at
        a time (three round trips, not three a feed: an import or a feeds file of 50,000
        took a minute): how many were registered or known already, and why each other
        one was not (a URL we would never fetch, one with a lone surrogate): one bad feed
        of an import, the feeds file or a sitemap index must not keep out the rest."""
        keys, refused = self._add_all(feeds)
        return len(keys), refused

    def add_children(
        self, parent_id: str, urls: list[str], tags: list[str]
    ) -> tuple[int, list[str], int]:
        """Register the sitemaps an index lists now, as the index's (``add_each``), and
        remove those it registered before and lists no more, or no longer among the ones
        it registers: a news site's index gains a sitemap a day, and each would otherwise
        stay polled for as long as the service runs. Returns how many were registered or
        known already, why each other one was not, and how many were removed."""
        keys, refused = self._add_all(((url, tags, None) for url in urls), parent_id)
        children = self._keys.feed_children(parent_id)
        listed = set(self._client.hmget(self._keys.feed_urls, keys)) if keys else set()
        retired = [child for child in self._client.smembers(children) if child not in listed]
        for child in retired:
            self._delete(child)
        if retired:
            self._client.srem(children, *retired)
        return len(keys), refused, len(retired)

    def _add_all(
        self, feeds: Iterable[tuple[str, list[str], float | None]], parent: str = ""
    ) -> tuple[list[str], list[str]]:
        """``add_each``: the canonical URLs of the feeds registered or known already, and
        why each other one was not."""
        accepted: list[str] = []
        refused: list[str] = []
        batch: list[tuple[str, str, list[str], float | None]] = []
        for url, tags, interval_s in feeds:
            try:
                batch.append((url, _url_key(url), tags, interval_s))
            except PermanentFetchError as exc:
                refused.append(f"{url}: {exc.reason} ({exc.detail})")
            except UNEXPECTED_DATA_ERRORS as exc:
                refused.append(f"{url!r}: {type(exc).__name__}: {exc}")
            if len(batch) == FEEDS_PER_ROUND_TRIP:
                accepted += self._add_batch(batch, parent)
                batch = []
        return accepted + self._add_batch(batch, parent), refused

    def _add_batch(
        self, batch: list[tuple[str, str, list[str], float | None]], parent: str = ""
    ) -> list[str]:
        """Register the feeds of ``batch`` (url, canonical url, tags, interval) that are
        not registered yet, the first of any two with the same canonical URL, as
        ``parent``'s children (a sitemap index's id; '' for the operator's feeds, which
        also takes over known feeds that an index registered). Returns the canonical
        URLs of the batch."""
        if not batch:
            return []
        keys = self._keys
        known = self._client.hmget(keys.feed_urls, [key for _, key, _, _ in batch])
        pipe = self._client.pipeline(transaction=False)
        for feed_id in known:
            pipe.hmget(keys.feed(feed_id or ""), ["feed_id", "parent"])
        present = pipe.execute()
        now, seen = time.time(), set()
        pipe = self._client.pipeline(transaction=True)
        for (url, key, tags, interval_s), feed_id, (exists, owner) in zip(
            batch, known, present, strict=True
        ):
            if feed_id and exists:
                index = json.loads(owner) if owner else ""
                if index and not parent:
                    pipe.hset(keys.feed(feed_id), "parent", json.dumps(""))
                    pipe.srem(keys.feed_children(index), feed_id)
                continue
            if key in seen:
                continue
            seen.add(key)
            record = FeedRecord(
                _feed_id_of(key), url, tags=list(tags), interval_s=interval_s, added_at=now,
                parent=parent,
            )  # fmt: skip
            pipe.hset(keys.feed(record.feed_id), mapping=record.to_redis())
            pipe.sadd(keys.feeds, record.feed_id)
            pipe.hset(keys.feed_urls, key, record.feed_id)
            pipe.zadd(keys.feeds_due, {record.feed_id: now})
            if parent:
                pipe.sadd(keys.feed_children(parent), record.feed_id)
        pipe.execute()
        return [key for _, key, _, _ in batch]

    def find(self, url_or_id: str) -> FeedRecord | None:
        """Look a feed up by id or URL."""
        feed_id = self._client.hget(self._keys.feed_urls, canonical_url(url_or_id)) or url_or_id
        return self.get(feed_id)

    def get(self, feed_id: str) -> FeedRecord | None:
        raw = self._client.hgetall(self._keys.feed(feed_id))
        if not raw:
            return None
        return FeedRecord.from_redis(raw, self._client.zscore(self._keys.feeds_due, feed_id))

    def begin_poll(self, feed_id: str, token: str) -> FeedRecord | None:
        """Consume a poll token; return the feed to poll, or None if the token was taken
        already (a redelivered task) or the feed is gone."""
        flat = run_script(self._client, "begin_poll", [self._keys.feed(feed_id)], [token])
        if not flat:
            return None
        return FeedRecord.from_redis(dict(zip(flat[::2], flat[1::2], strict=True)), None)

    def remove(self, url_or_id: str) -> tuple[FeedRecord, int] | None:
        """Forget a feed, and the sitemaps it registered if it is a sitemap index (how many
        went with it is returned beside it); entries already claimed keep their claims."""
        record = self.find(url_or_id)
        if record is None:
            return None
        return record, self._delete(record.feed_id) - 1

    def _delete(self, feed_id: str) -> int:
        """Delete a feed and, in turn, the feeds it registered; how many were deleted."""
        keys = self._keys
        url, parent = self._client.hmget(keys.feed(feed_id), ["url", "parent"])
        children = self._client.smembers(keys.feed_children(feed_id))
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(keys.feed(feed_id), keys.feed_children(feed_id))
        pipe.srem(keys.feeds, feed_id)
        if url:
            pipe.hdel(keys.feed_urls, canonical_url(json.loads(url)))
        if parent and json.loads(parent):
            pipe.srem(keys.feed_children(json.loads(parent)), feed_id)
        pipe.zrem(keys.feeds_due, feed_id)
        pipe.execute()
        return 1 + sum(self._delete(child) for child in children)

    def all(self) -> list[FeedRecord]:
        """Every feed, by id. A round trip per FEEDS_PER_ROUND_TRIP feeds: with two a feed,
        `feeds list` took 10 s at 21,000 feeds (bench/poll.py), now 3.4."""
        records = []
        for ids in self._ids_in_batches():
            pipe = self._client.pipeline(transaction=False)
            for feed_id in ids:
                pipe.hgetall(self._keys.feed(feed_id))
            pipe.zmscore(self._keys.feeds_due, ids)
            *raws, due = pipe.execute()
            records += [
                FeedRecord.from_redis(raw, next_poll)
                for raw, next_poll in zip(raws, due, strict=True)
                if raw  # removed meanwhile
            ]
        return records

    def count_by_status(self) -> dict[str, int]:
        """How many feeds are new, ok, in error or disabled: what `status` and each metrics
        scrape show. Counted by the server, FEEDS_PER_ROUND_TRIP feeds a call: reading
        the records took 6 s of client CPU at 20,000 feeds (bench/poll.py)."""
        counts: dict[str, int] = {}
        for ids in self._ids_in_batches():
            keys = [self._keys.feed(feed_id) for feed_id in ids]
            pairs = run_script(self._client, "count_feeds", keys, [])
            for raw, count in zip(pairs[::2], pairs[1::2], strict=True):
                status = json.loads(raw)
                counts[status] = counts.get(status, 0) + int(count)
        return counts

    def _ids_in_batches(self) -> Iterator[list[str]]:
        ids = sorted(self._client.smembers(self._keys.feeds))
        for start in range(0, len(ids), FEEDS_PER_ROUND_TRIP):
            yield ids[start : start + FEEDS_PER_ROUND_TRIP]

    def update(
        self, feed_id: str, next_poll: float | None = None, count: str = "", **fields: Any
    ) -> None:
        """Write status fields of a feed (and its next poll time) if it still exists;
        ``count`` names a counter of the stats hash to increment (polls_ok, ...)."""
        pairs = [item for k, v in fields.items() for item in (k, json.dumps(v))]
        keys = self._keys
        run_script(
            self._client, "update_feed", [keys.feed(feed_id), keys.feeds_due, keys.stats],
            [feed_id, "" if next_poll is None else next_poll, count, *pairs],
        )  # fmt: skip

    def move(self, feed_id: str, new_url: str) -> bool:
        """Point a feed at its new address (after consistent permanent redirects).

        If the new address is already a registered feed, this one is removed instead:
        the other record carries on polling it.
        """
        record = self.get(feed_id)
        if record is None:
            return False
        other = self._client.hget(self._keys.feed_urls, canonical_url(new_url))
        if other and other != feed_id:
            self.remove(feed_id)
            return False
        pipe = self._client.pipeline(transaction=True)
        pipe.hdel(self._keys.feed_urls, canonical_url(record.url))
        pipe.hset(self._keys.feed_urls, canonical_url(new_url), feed_id)
        fields = {"url": new_url, "redirect_to": "", "redirect_seen": 0}
        pipe.hset(self._keys.feed(feed_id), mapping={k: json.dumps(v) for k, v in fields.items()})
        pipe.execute()
        return True

    def set_enabled(self, url_or_id: str, enabled: bool, reason: str = "") -> FeedRecord | None:
        """Disable a feed (kept, with its reason) or enable it again (due at once)."""
        record = self.find(url_or_id)
        if record is None:
            return None
        if enabled:
            self.update(
                record.feed_id,
                next_poll=time.time(),
                status="new",
                disabled_reason="",
                consecutive_failures=0,
                error_score=0.0,
            )
        else:
            self.update(record.feed_id, status="disabled", disabled_reason=reason)
            self._client.zrem(self._keys.feeds_due, record.feed_id)
        return self.get(record.feed_id)
