"""The entry latency histogram as the stats HASH holds it, and what status makes of it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.publish.latency import BOUNDS_S, from_stats, report


def test_quantiles_are_the_bounds_of_the_buckets_that_hold_them() -> None:
    stats = {"latency_le_1": 50, "latency_le_5": 40, "latency_le_60": 9, "latency_le_inf": 1}
    stats["latency_ms"] = 123_456
    waited = report(from_stats(stats))
    assert waited["entries"] == 100
    assert (waited["p50_le_s"], waited["p90_le_s"], waited["p99_le_s"]) == ("1", "5", "60")
    assert waited["mean_s"] == 1.235
    assert waited["buckets"]["2"] == 50 and waited["buckets"]["+Inf"] == 100


def test_an_empty_histogram_has_no_quantiles() -> None:
    waited = report(from_stats({"published": 3}))
    assert waited["entries"] == 0 and waited["p50_le_s"] is None and waited["mean_s"] is None


@given(st.lists(st.integers(min_value=0, max_value=1000), min_size=len(BOUNDS_S) + 1,
                max_size=len(BOUNDS_S) + 1))  # fmt: skip
def test_buckets_are_cumulative_and_end_at_the_count(counts: list[int]) -> None:
    names = [f"latency_le_{bound:g}" for bound in BOUNDS_S] + ["latency_le_inf"]
    buckets = list(report(from_stats(dict(zip(names, counts, strict=True))))["buckets"].values())
    assert buckets == sorted(buckets) and buckets[-1] == sum(counts)
