"""The per-page extraction time limit (an interval timer in the worker process)."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from worker.errors import ExtractionError
from worker.extract.timeout import time_limit


def busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_overstaying_block_raises_extraction_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(ExtractionError) as caught, time_limit(0.2):
        busy(5)
    assert caught.value.reason == "extraction_timeout"
    assert "0.2s" in caught.value.detail
    assert time.monotonic() - started < 1.5


def test_block_within_its_limit_runs_and_leaves_no_timer() -> None:
    before = signal.getsignal(signal.SIGALRM)
    with time_limit(0.5):
        busy(0.05)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == before
    busy(0.6)  # nothing fires after the block


def test_exception_inside_passes_through_and_disarms() -> None:
    with pytest.raises(ValueError), time_limit(0.3):
        raise ValueError("boom")
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_outside_the_main_thread_there_is_no_limit() -> None:
    finished: list[bool] = []

    def work() -> None:
        with time_limit(0.05):
            busy(0.2)
        finished.append(True)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert finished == [True]
