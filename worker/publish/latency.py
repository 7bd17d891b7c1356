"""Entry latency: seconds from an entry's claim (the poll that first saw it) to its end in
a stream (article, duplicate or unchanged), the freshness a downstream team gets.

The publish script counts it in the stats HASH as a histogram, so every worker of every
machine adds to one deployment-wide figure: ``latency_le_<bound>`` per bucket (not
cumulative; ``latency_le_inf`` past the last bound) and ``latency_ms``, the sum. Both
ends are worker clocks (the claiming and the publishing worker's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

BOUNDS_S = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
FIELD_PREFIX = "latency_"


def script_bounds() -> str:
    """The bucket bounds as the publish script takes them."""
    return ",".join(f"{bound:g}" for bound in BOUNDS_S)


@dataclass(frozen=True)
class LatencyHistogram:
    """Cumulative counts at each upper bound (``math.inf`` last) and the sum of seconds."""

    buckets: list[tuple[float, int]]
    sum_s: float

    @property
    def count(self) -> int:
        return self.buckets[-1][1]

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding the ``q`` quantile (None: no entries)."""
        if not self.count:
            return None
        return next(bound for bound, seen in self.buckets if seen >= q * self.count)


def from_stats(stats: dict[str, int]) -> LatencyHistogram:
    """The histogram out of the stats HASH's fields."""
    seen, buckets = 0, []
    for bound in (*BOUNDS_S, math.inf):
        seen += stats.get(f"{FIELD_PREFIX}le_{bound:g}", 0)
        buckets.append((float(bound), seen))
    return LatencyHistogram(buckets, stats.get(f"{FIELD_PREFIX}ms", 0) / 1000)


def report(histogram: LatencyHistogram) -> dict[str, Any]:
    """What `newswire status` shows and the metrics expose: count, sum, mean, quantiles
    (bucket upper bounds) and the cumulative buckets, keyed as Prometheus writes them."""
    count = histogram.count
    quantiles = {f"p{round(q * 100)}_le_s": histogram.quantile(q) for q in (0.5, 0.9, 0.99)}
    return {
        "entries": count,
        "sum_s": round(histogram.sum_s, 3),
        "mean_s": round(histogram.sum_s / count, 3) if count else None,
        **{name: _bound(value) for name, value in quantiles.items()},
        "buckets": {_bound(bound): seen for bound, seen in histogram.buckets},
    }


def _bound(value: float | None) -> float | str | None:
    if value is None:
        return None
    return "+Inf" if value == math.inf else f"{value:g}"
