"""Reading the streams: plain ranges, and consumer groups with at-least-once delivery.

A group consumer first re-reads its own pending entries (delivered before a crash, never
acknowledged), then new ones; it reclaims entries other consumers left pending for too
long (XAUTOCLAIM) and dead-letters an entry delivered ``max_deliveries`` times. Callers
must be idempotent on (id, revision): an entry can arrive twice, never zero times.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import redis

Entry = tuple[str, dict[str, Any]]  # (stream id, message)


def decode(fields: dict[str, str]) -> dict[str, Any]:
    """The JSON message carried by a stream entry."""
    return dict(json.loads(fields["data"]))


def read_range(client: redis.Redis, stream: str, after: str = "-", count: int = 100) -> list[Entry]:
    """Entries after ``after`` (exclusive; "-" = from the start), oldest first."""
    start = "-" if after == "-" else f"({after}"
    return [(sid, decode(fields)) for sid, fields in client.xrange(stream, start, "+", count=count)]


def follow(
    client: redis.Redis, stream: str, after: str = "$", block_ms: int = 5000
) -> Iterator[Entry]:
    """Yield new entries as they arrive, forever (the caller stops iterating)."""
    last = after
    while True:
        batches = client.xread({stream: last}, count=100, block=block_ms) or []
        for _name, items in batches:
            for sid, fields in items:
                last = sid
                yield sid, decode(fields)


@dataclass
class GroupConsumer:
    """One consumer of a consumer group on one stream."""

    client: redis.Redis
    stream: str
    group: str
    consumer: str
    deadletter: str | None = None
    min_idle_ms: int = 60_000
    max_deliveries: int = 5

    def ensure_group(self, start: str = "0") -> None:
        """Create the group (reading from ``start``) unless it exists."""
        try:
            self.client.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def pending_own(self, count: int = 100) -> list[Entry]:
        """Entries delivered to this consumer and not yet acknowledged."""
        return self._read("0", count, block_ms=None)

    def new(self, count: int = 100, block_ms: int | None = None) -> list[Entry]:
        """Entries never delivered to anyone in the group."""
        return self._read(">", count, block_ms)

    def reclaim(self, count: int = 100) -> list[Entry]:
        """Take over entries idle in other consumers' pending lists; poison goes aside."""
        claimed: list[Entry] = []
        cursor = "0-0"
        while True:
            cursor, items, _deleted = self.client.xautoclaim(
                self.stream, self.group, self.consumer, self.min_idle_ms, cursor, count=count
            )
            for sid, fields in items:
                if fields and not self._poison(sid, fields):
                    claimed.append((sid, decode(fields)))
            if cursor == "0-0" or len(claimed) >= count:
                return claimed

    def ack(self, *stream_ids: str) -> None:
        if stream_ids:
            self.client.xack(self.stream, self.group, *stream_ids)

    def _read(self, start: str, count: int, block_ms: int | None) -> list[Entry]:
        reply = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=count, block=block_ms
        )
        return [
            (sid, decode(fields)) for _name, items in reply or [] for sid, fields in items if fields
        ]

    def _poison(self, sid: str, fields: dict[str, str]) -> bool:
        info = self.client.xpending_range(self.stream, self.group, sid, sid, 1)
        deliveries = int(info[0]["times_delivered"]) if info else 0
        if deliveries < self.max_deliveries or self.deadletter is None:
            return False
        self.client.xadd(
            self.deadletter,
            {**fields, "reason": "max_deliveries", "source": f"{self.stream}/{self.group}/{sid}"},
        )
        self.ack(sid)
        return True


def consume_stream(
    client: redis.Redis,
    stream: str,
    group: str | None,
    consumer: str,
    count: int | None,
    wait: bool,
    deadletter: str | None = None,
) -> Iterator[Entry]:
    """Yield up to ``count`` entries: from the start, or through ``group`` (each one
    acknowledged once the caller has taken the next, or stopped). With ``wait`` False,
    stop at the end of the stream."""
    limit = count if count is not None else 1 << 62
    if group:
        reader = GroupConsumer(client, stream, group, consumer, deadletter)
        yield from _group_entries(reader, limit, wait)
    else:
        yield from islice(_range_entries(client, stream, wait), limit)


def _range_entries(client: redis.Redis, stream: str, wait: bool) -> Iterator[Entry]:
    last = "-"
    while True:
        batch = read_range(client, stream, last, 500)
        yield from batch
        if batch:
            last = batch[-1][0]
        elif not wait:
            return
        else:
            yield from follow(client, stream, last if last != "-" else "0-0")
            return


def _group_entries(reader: GroupConsumer, limit: int, wait: bool) -> Iterator[Entry]:
    """Own pending entries, then ones other consumers left, then new ones; each is
    acknowledged when the caller asks for the next. Never reads more than ``limit``:
    what is read and not taken would sit pending until someone reclaims it."""
    reader.ensure_group()
    taken = 0
    batch = reader.pending_own(min(limit, 100)) or reader.reclaim(min(limit, 100))
    while taken < limit:
        for sid, message in batch[: limit - taken]:
            yield sid, message
            reader.ack(sid)
            taken += 1
        if taken >= limit:
            return
        batch = reader.new(min(limit - taken, 100), block_ms=5000 if wait else None)
        if not batch and not wait:
            return
