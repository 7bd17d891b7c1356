"""The poll interval policy: pure functions, no Redis, no network."""

from __future__ import annotations

import calendar

from worker.feeds.schedule import (
    FeedHints,
    PollPolicy,
    backoff_interval,
    next_interval,
    skip_until,
    sy_period,
    update_rate,
)
from worker.fetch.headers import freshness, retry_after

POLICY = PollPolicy(default_s=900, min_s=60, max_s=86_400, max_backoff_s=7 * 86_400, jitter=0.1)
NONE = FeedHints()


def test_default_until_a_rate_is_known() -> None:
    assert 810 <= next_interval(POLICY, None, None, None, NONE) <= 990
    assert update_rate(None, 50, None) is None  # the backfill says nothing of the rate


def test_interval_follows_the_publishing_rate_both_ways() -> None:
    rate, interval = None, 900.0
    rate = update_rate(rate, 10, 600)  # 10 new entries in 10 minutes
    fast = next_interval(POLICY, None, rate, interval, NONE)
    assert fast < 900 * 0.5
    for _ in range(8):  # then nothing new, poll after poll
        rate = update_rate(rate, 0, fast)
        fast = next_interval(POLICY, None, rate, fast, NONE)
    assert fast > 900


def test_rate_never_leaves_the_bounds() -> None:
    assert next_interval(POLICY, None, 100.0, 900, NONE) >= 60 * 0.9
    assert next_interval(POLICY, None, 0.0, 10**9, NONE) <= 86_400 * 1.1
    assert 54 <= next_interval(POLICY, 10, None, None, NONE) <= 66  # fixed, clamped


def test_server_hints_are_floors() -> None:
    for hints in (FeedHints(ttl_s=3600), FeedHints(fresh_for_s=3600),
                  FeedHints(update_period_s=3600), FeedHints(retry_after_s=3600)):  # fmt: skip
        assert next_interval(POLICY, None, 1.0, 60, hints) >= 3600 * 0.9


def test_skip_hours_and_days() -> None:
    monday_2300 = calendar.timegm((2024, 1, 1, 23, 0, 0))  # 2024-01-01 was a Monday
    hints = FeedHints(skip_hours=frozenset({23, 0, 1}))
    assert skip_until(monday_2300, hints) == calendar.timegm((2024, 1, 2, 2, 0, 0))
    sunday = FeedHints(skip_days=frozenset({6}))
    saturday_noon = calendar.timegm((2024, 1, 6, 12, 0, 0))
    assert skip_until(saturday_noon + 86_400, sunday) == calendar.timegm((2024, 1, 8, 0, 0, 0))
    assert skip_until(monday_2300, NONE) == monday_2300


def test_sy_update_period() -> None:
    assert sy_period("hourly", "2") == 1800
    assert sy_period("daily", None) == 86_400
    assert sy_period("sometimes", "2") is None


def test_backoff_grows_to_a_week_and_honours_retry_after() -> None:
    delays = [backoff_interval(POLICY, None, n, None) for n in range(1, 20)]
    assert delays[3] > delays[0] * 4
    assert max(delays) <= 7 * 86_400 * 1.1
    soft = backoff_interval(POLICY, None, 2.0, None)  # four 403s weigh like two failures
    assert soft < backoff_interval(POLICY, None, 4.0, None)
    assert backoff_interval(POLICY, None, 1, 7200) >= 7200


def test_header_parsing() -> None:
    assert retry_after("120") == 120
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412420.0) == 60
    assert retry_after("soon") is None
    assert freshness({"cache-control": "public, max-age=600"}) == 600
    assert freshness({"cache-control": "no-cache, max-age=600"}) is None
    assert freshness({"expires": "Wed, 21 Oct 2015 08:00:00 GMT",
                      "date": "Wed, 21 Oct 2015 07:00:00 GMT"}) == 3600  # fmt: skip


def test_header_numbers_in_other_scripts_are_no_numbers() -> None:
    # "²".isdigit() is true and float("²") raises: every poll of such a feed crashed
    assert retry_after("\u00b2") is None
    assert retry_after("\u0663") is None  # an Arabic-Indic three
    assert freshness({"cache-control": "max-age=\u00b2"}) is None
    assert freshness({"cache-control": "max-age=60"}) == 60.0


def test_backoff_after_any_number_of_failures_is_the_cap() -> None:
    delay = backoff_interval(POLICY, None, error_score=5_000.0, retry_after_s=None)
    assert POLICY.max_backoff_s * 0.89 <= delay <= POLICY.max_backoff_s * 1.11
