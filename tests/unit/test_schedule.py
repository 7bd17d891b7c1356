from __future__ import annotations

from worker.feeds.schedule import PollPolicy, backoff_interval, next_interval

POLICY = PollPolicy(default_s=900, min_s=60, max_s=86_400, max_backoff_s=7 * 86_400, jitter=0.1)


def test_interval_respects_bounds_and_ttl() -> None:
    assert 810 <= next_interval(POLICY, None, None) <= 990
    assert 3240 <= next_interval(POLICY, None, 60) <= 3960
    assert next_interval(POLICY, 10, None) >= 54
    assert next_interval(POLICY, 10**9, None) <= 86_400 * 1.1


def test_backoff_grows_to_its_ceiling() -> None:
    delays = [backoff_interval(POLICY, None, n) for n in range(1, 20)]
    assert delays[3] > delays[0] * 4
    assert max(delays) <= 7 * 86_400 * 1.1
