"""The per-page extraction time limit (an interval timer in the worker process)."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from worker.errors import ExtractionError
from worker.extract.timeout import within_time_limit


def busy(seconds: float) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "done"


def no_timer_left(handler: object) -> bool:
    return signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0) and (
        signal.getsignal(signal.SIGALRM) == handler
    )


def test_overstaying_call_raises_extraction_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(ExtractionError) as caught:
        within_time_limit(0.2, busy, 5)
    assert caught.value.reason == "extraction_timeout"
    assert "0.2s" in caught.value.detail
    assert time.monotonic() - started < 1.5


def test_call_within_its_limit_returns_and_leaves_no_timer() -> None:
    before = signal.getsignal(signal.SIGALRM)
    assert within_time_limit(0.5, busy, 0.05) == "done"
    assert no_timer_left(before)
    busy(0.6)  # nothing fires after the call


def test_exception_inside_passes_through_and_disarms() -> None:
    before = signal.getsignal(signal.SIGALRM)

    def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError):
        within_time_limit(0.3, boom)
    assert no_timer_left(before)


def test_outside_the_main_thread_there_is_no_limit() -> None:
    finished: list[str] = []
    thread = threading.Thread(target=lambda: finished.append(within_time_limit(0.05, busy, 0.2)))
    thread.start()
    thread.join()
    assert finished == ["done"]


def test_a_limit_swallowed_where_it_landed_fires_again() -> None:
    """A delivery can land in a finalizer (``__del__``) or under a bare ``except``, which
    swallow it; a single shot then left the page running to its end."""
    swallowed: list[BaseException] = []

    def swallows_once() -> None:
        try:
            busy(0.5)
        except BaseException as exc:  # noqa: BLE001 (as "Exception ignored in: __del__" does)
            swallowed.append(exc)
        busy(5)

    before = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    with pytest.raises(ExtractionError):
        within_time_limit(0.2, swallows_once)
    assert swallowed
    assert time.monotonic() - started < 1.5
    assert no_timer_left(before)


def test_calls_ending_as_their_limit_fires_end_one_way_or_the_other() -> None:
    """The timer firing just as the call ends: its result or extraction_timeout, never the
    timer's own exception (a ``with`` block's ``__exit__`` let it escape), and no shot
    after the call."""
    before = signal.getsignal(signal.SIGALRM)
    outcomes = {"done": 0, "timeout": 0}
    for _ in range(300):
        try:
            outcomes[within_time_limit(0.002, busy, 0.002)] += 1
        except ExtractionError:
            outcomes["timeout"] += 1
    assert sum(outcomes.values()) == 300
    assert no_timer_left(before)
    busy(0.3)  # nothing fires after the calls
