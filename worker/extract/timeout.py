"""A per-page time limit for extraction, inside the worker process.

trafilatura's own ``timeout`` works only on its command line, and Celery's time limits
apply to a whole task (a task extracts several pages). An interval timer raises
``ExtractionError('extraction_timeout')`` in the page that overstays, so that page is
dead-lettered and the rest of the batch goes on. Python delivers the signal between
bytecodes: a single C call that never returns is left to Celery's hard limit.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import ParamSpec, TypeVar

from worker.errors import ExtractionError

P = ParamSpec("P")
T = TypeVar("T")

# After the limit, the timer fires again this often until its exception gets through: a
# delivery that lands in a finalizer (``__del__``: "Exception ignored in ...") or under a
# bare ``except`` is swallowed there, and a single shot then let a 5 s page run on to its
# end past a 2 s limit (tests/integration/test_hostile.py, once in a CI run).
REFIRE_S = 0.1
_limiting = [False]  # a call is under a limit in this process (its main thread)


class _Expired(BaseException):
    """Raised by the timer; a BaseException so no ``except Exception`` swallows it."""


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    if _limiting[0]:
        raise _Expired
    signal.setitimer(signal.ITIMER_REAL, 0)  # the call ended as the timer fired: let it be


def within_time_limit(seconds: float, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``call(*args, **kwargs)``, or ExtractionError('extraction_timeout') if it runs over
    ``seconds``.

    A function rather than a context manager: a ``with`` block's end runs the manager's
    ``__exit__`` outside any ``try`` of its own, where a timer firing as the block ends
    escaped as a bare ``_Expired``. Here the first shot may land anywhere between the
    arming and the end of the limit and is answered there; the next one comes REFIRE_S
    later, when the timer is long stopped. Only the main thread of a process receives
    signals: elsewhere (a thread pool) the call runs without a limit and Celery's task
    limits are the backstop.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        return call(*args, **kwargs)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        try:
            _limiting[0] = True
            signal.setitimer(signal.ITIMER_REAL, seconds, REFIRE_S)
            return call(*args, **kwargs)
        finally:
            _limiting[0] = False  # from here on, a shot stops the timer instead of raising
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Expired:
        raise ExtractionError(
            "extraction_timeout", detail=f"extraction exceeded its {seconds:g}s time limit"
        ) from None
    finally:
        # again: a first shot that landed before the inner finally's first line cut it short
        _limiting[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
