"""When feeds are polled: the due ZSET, atomic claims, and the interval policy."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import redis

from worker.keys import Keys
from worker.ledger import new_token
from worker.lua import Scripts


@dataclass(frozen=True)
class PollPolicy:
    """Bounds of the poll interval and of the error backoff."""

    default_s: float = 900.0
    min_s: float = 60.0
    max_s: float = 86_400.0
    max_backoff_s: float = 7 * 86_400.0
    jitter: float = 0.1


def next_interval(policy: PollPolicy, fixed_s: float | None, ttl_minutes: int | None) -> float:
    """Seconds until the next poll after a success: fixed or default, at least the feed's
    TTL, within bounds, with jitter so that feeds added together do not stay aligned."""
    interval = fixed_s or policy.default_s
    if ttl_minutes:
        interval = max(interval, ttl_minutes * 60.0)
    interval = min(max(interval, policy.min_s), policy.max_s)
    return interval * random.uniform(1 - policy.jitter, 1 + policy.jitter)


def backoff_interval(policy: PollPolicy, fixed_s: float | None, failures: int) -> float:
    """Seconds until the next poll after ``failures`` consecutive failures (exponential)."""
    base = min(max(fixed_s or policy.default_s, policy.min_s), policy.max_s)
    delay = min(base * 2 ** max(failures - 1, 0), policy.max_backoff_s)
    return delay * random.uniform(1 - policy.jitter, 1 + policy.jitter)


def claim_due(client: redis.Redis, keys: Keys, limit: int, lease_s: float) -> list[tuple[str, str]]:
    """Claim due feeds atomically; return (feed id, poll token) pairs to enqueue."""
    flat = Scripts(client)(
        "claim_due_feeds",
        [keys.feeds_due],
        [time.time(), limit, lease_s, f"{keys.key_prefix}:feed:", new_token()],
    )
    return list(zip(flat[::2], flat[1::2], strict=True))


def begin_poll(client: redis.Redis, keys: Keys, feed_id: str, token: str) -> bool:
    """Consume the poll token; False means another delivery already took it."""
    return bool(Scripts(client)("begin_poll", [keys.feed(feed_id)], [token]))
