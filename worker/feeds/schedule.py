"""When feeds are polled: the due ZSET, atomic claims, and the interval policy.

The policy is pure (no Redis, no clock of its own): given what we observed of a feed and
what its server said, it returns seconds until the next poll. The interval follows the
feed's publishing rate (an exponentially weighted estimate of new entries per second,
aiming at about one new entry per poll), never below what the server asked for (TTL,
Cache-Control/Expires, sy:updatePeriod, Retry-After), within configured bounds, with
jitter so that feeds do not stay aligned, and skipping the feed's skipHours/skipDays.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import redis

from worker.keys import Keys
from worker.ledger import new_token
from worker.lua import run_script

SY_PERIODS = {
    "hourly": 3600.0,
    "daily": 86_400.0,
    "weekly": 604_800.0,
    "monthly": 2_592_000.0,
    "yearly": 31_536_000.0,
}
RATE_WEIGHT = 0.3  # weight of the newest observation in the rate estimate


@dataclass(frozen=True)
class PollPolicy:
    """Bounds of the poll interval and of the error backoff."""

    default_s: float = 900.0
    min_s: float = 60.0
    max_s: float = 86_400.0
    max_backoff_s: float = 7 * 86_400.0
    jitter: float = 0.1
    target_new_per_poll: float = 1.0


@dataclass(frozen=True)
class FeedHints:
    """What a feed and its response say about how often to poll."""

    ttl_s: float | None = None
    update_period_s: float | None = None
    fresh_for_s: float | None = None
    retry_after_s: float | None = None
    skip_hours: frozenset[int] = field(default_factory=frozenset)  # UTC hours 0-23
    skip_days: frozenset[int] = field(default_factory=frozenset)  # 0 = Monday


def update_rate(rate: float | None, new_entries: int, elapsed_s: float | None) -> float | None:
    """New estimate of entries per second after a poll that found ``new_entries``."""
    if elapsed_s is None or elapsed_s <= 0:
        return rate  # the first poll is a backfill: its count says nothing of the rate
    observed = new_entries / elapsed_s
    return observed if rate is None else RATE_WEIGHT * observed + (1 - RATE_WEIGHT) * rate


def adaptive_interval(
    policy: PollPolicy, fixed_s: float | None, rate: float | None, previous_s: float | None
) -> float:
    """Interval from the publishing rate alone (before server hints and bounds)."""
    if fixed_s:
        return fixed_s
    if rate is None:
        return policy.default_s
    if rate > 0:
        return policy.target_new_per_poll / rate
    return (previous_s or policy.default_s) * 2


def next_interval(
    policy: PollPolicy,
    fixed_s: float | None,
    rate: float | None,
    previous_s: float | None,
    hints: FeedHints,
) -> float:
    """Seconds until the next poll after a success (jitter included, skips not)."""
    interval = adaptive_interval(policy, fixed_s, rate, previous_s)
    floors = (hints.ttl_s, hints.update_period_s, hints.fresh_for_s, hints.retry_after_s)
    interval = max([interval, *(f for f in floors if f)])
    interval = min(max(interval, policy.min_s), policy.max_s)
    return _jitter(policy, interval)


def backoff_interval(
    policy: PollPolicy, fixed_s: float | None, error_score: float, retry_after_s: float | None
) -> float:
    """Seconds until the next poll after failures (exponential in the error score)."""
    base = min(max(fixed_s or policy.default_s, policy.min_s), policy.max_s)
    # 2 ** 1025 does not fit a float: cap the exponent, the result is capped anyway
    delay = min(base * 2 ** min(max(error_score - 1, 0), 64), policy.max_backoff_s)
    return max(_jitter(policy, delay), min(retry_after_s or 0, policy.max_backoff_s))


def skip_until(when: float, hints: FeedHints) -> float:
    """The first moment at or after ``when`` outside the feed's skipHours and skipDays."""
    if not hints.skip_hours and not hints.skip_days:
        return when
    t = when
    for _ in range(24 * 8):
        tm = time.gmtime(t)
        if tm.tm_hour not in hints.skip_hours and tm.tm_wday not in hints.skip_days:
            return t
        t = (t // 3600 + 1) * 3600  # the start of the next hour
    return when  # every hour skipped: the feed is confused, ignore it


def sy_period(period: str | None, frequency: str | None) -> float | None:
    """Seconds between updates announced by sy:updatePeriod / sy:updateFrequency."""
    seconds = SY_PERIODS.get((period or "").strip().lower())
    if seconds is None:
        return None
    try:
        times = max(int((frequency or "1").strip()), 1)
    except ValueError:
        times = 1
    return seconds / times


def _jitter(policy: PollPolicy, seconds: float) -> float:
    return seconds * random.uniform(1 - policy.jitter, 1 + policy.jitter)


def claim_due(client: redis.Redis, keys: Keys, limit: int, lease_s: float) -> list[tuple[str, str]]:
    """Claim due feeds atomically; return (feed id, poll token) pairs to enqueue."""
    flat = run_script(
        client,
        "claim_due_feeds",
        [keys.feeds_due],
        [time.time(), limit, lease_s, f"{keys.key_prefix}:feed:", new_token()],
    )
    return list(zip(flat[::2], flat[1::2], strict=True))
