"""How `deadletter retry --since` reads its argument."""

from __future__ import annotations

import pytest

from worker.deadletters import since_ms

NOW = 1_765_000_000.0


@pytest.mark.parametrize(
    ("text", "expected_s"),
    [
        ("90m", NOW - 5400),
        ("6h", NOW - 21_600),
        ("2d", NOW - 172_800),
        ("45s", NOW - 45),
        ("1.5h", NOW - 5400),
        ("2025-12-06", 1_764_979_200),
        ("2025-12-06T05:00:00+01:00", 1_764_993_600),
    ],
)
def test_since_is_a_duration_back_or_a_date(text: str, expected_s: float) -> None:
    assert since_ms(text, NOW) == int(expected_s * 1000)


@pytest.mark.parametrize(
    "text",
    ["yesterday-ish", "5 weeks", "", "-3h", "1M", "12", "24", "1796531081"],  # 24: year 2401
)
def test_since_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError, match="neither a duration"):
        since_ms(text, NOW)


def test_since_refuses_the_future() -> None:
    with pytest.raises(ValueError, match="in the future"):
        since_ms("2030-01-01", NOW)
