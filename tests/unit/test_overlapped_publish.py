"""A fused task publishes in its process's publish thread: what its outcomes count."""

from __future__ import annotations

from concurrent.futures import Future

import pytest
import redis

from worker.pipeline import StageResult
from worker.tasks import Extractions


def _ended(result: StageResult | None = None, error: BaseException | None = None) -> Future:
    future: Future[StageResult] = Future()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
    return future


def test_settle_counts_every_ended_publish_and_its_cpu() -> None:
    done = Extractions()
    done.publishing = [
        _ended(StageResult("done", "article", cpu_s=0.02)),
        _ended(StageResult("done", "duplicate", cpu_s=0.03)),
    ]
    done.settle()
    assert done.outcomes == {"article": 1, "duplicate": 1}
    assert (done.pages, round(done.cpu_s, 3)) == (2, 0.05)
    assert done.publishing == []


def test_settle_without_waiting_leaves_publishes_under_way() -> None:
    done = Extractions()
    under_way: Future[StageResult] = Future()
    done.publishing = [_ended(StageResult("done", "article", cpu_s=0.02)), under_way]
    done.settle(wait_all=False)
    assert done.outcomes == {"article": 1}
    assert done.publishing == [under_way]


def test_a_failed_publish_raises_once_the_others_are_counted() -> None:
    done = Extractions()
    done.publishing = [
        _ended(error=redis.ConnectionError("Redis away")),
        _ended(StageResult("done", "article", cpu_s=0.02)),
    ]
    with pytest.raises(redis.ConnectionError):
        done.settle()
    assert done.outcomes == {"article": 1}
    assert done.publishing == []
