"""A per-page time limit for extraction, inside the worker process.

trafilatura's own ``timeout`` works only on its command line, and Celery's time limits
apply to a whole task (a task extracts several pages). An interval timer raises
``ExtractionError('extraction_timeout')`` in the page that overstays, so that page is
dead-lettered and the rest of the batch goes on. Python delivers the signal between
bytecodes: a single C call that never returns is left to Celery's hard limit.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from worker.errors import ExtractionError


class _Expired(BaseException):
    """Raised by the timer; a BaseException so no ``except Exception`` swallows it."""


def _raise(_signum: int, _frame: FrameType | None) -> None:
    raise _Expired


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ExtractionError('extraction_timeout') if the block runs over ``seconds``.

    Only the main thread of a process receives signals: elsewhere (a thread pool) the
    block runs without a limit and Celery's task limits are the backstop.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Expired:
        raise ExtractionError(
            "extraction_timeout", detail=f"extraction exceeded its {seconds:g}s time limit"
        ) from None
    finally:
        with contextlib.suppress(_Expired):  # it fired as the block ended: it did finish
            signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
