"""Backpressure between fetching and extraction: fetched pages waiting in Redis are
counted deployment-wide, and fetching pauses while there is no room (real Redis)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tests.support import fetched_entries
from worker import pipeline, tasks
from worker.config import Settings
from worker.runtime import Runtime

pytestmark = pytest.mark.integration


@pytest.fixture
def small(settings: Settings) -> Iterator[Runtime]:
    """A deployment of its own (no worker consumes its keys), room for 2 waiting pages."""
    tag = uuid.uuid4().hex[:6]
    own = settings.model_copy(
        update={"key_prefix": f"bp{tag}", "stream_prefix": f"bp{tag}:news", "max_waiting_pages": 2}
    )
    runtime = Runtime.build(own, own.redis_url or "")
    yield runtime
    runtime.close()


def test_fetching_waits_for_room_and_ended_entries_free_it(
    small: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "ROOM_WAIT_S", 0.3)
    published, failed, waiting = fetched_entries(small, 3)
    assert small.ledger.pages_waiting() == 3
    started = time.monotonic()
    assert not tasks.wait_for_handoff_room(small, 1)
    assert time.monotonic() - started >= 0.3

    assert pipeline.extract_stage(small, published).detail == "article"
    pipeline.fail_entry(small, failed, "no_content", "test")
    assert small.ledger.pages_waiting() == 1
    assert tasks.wait_for_handoff_room(small, 1)
    tasks._handoff_level.release(small)  # the admitted fetch that did not run
    for entry_id in (published, failed):  # the hand-off is gone with the entry's end
        assert not small.client.exists(small.keys.page(entry_id))
    assert small.client.exists(small.keys.page(waiting))


def test_postponed_entries_come_back_later_but_ended_ones_do_not(small: Runtime) -> None:
    ended, queued = fetched_entries(small, 2)
    pipeline.fail_entry(small, ended, "no_content", "test")
    small.ledger.postpone([ended, queued], 30)
    assert small.client.zscore(small.keys.inflight, ended) is None
    deadline = small.client.zscore(small.keys.inflight, queued)
    assert deadline is not None and deadline >= time.time() + 29
    assert small.ledger.state(queued)["state"] == "queued"


def test_fetches_under_way_count_until_they_end(small: Runtime) -> None:
    """The threads of one worker cannot all pass the check between two looks at Redis:
    fetches admitted since the last look count as waiting pages."""
    level = tasks.HandoffLevel()
    assert small.ledger.pages_waiting() == 0
    assert level.admit(small, 1)
    assert level.admit(small, 3)  # one batch may pass the limit (2) ...
    assert not level.admit(small, 1)  # ... and then no other until fetches end
    level.release(small, 3)  # ended: their pages may be in Redis since its last answer
    assert not level.admit(small, 1)
    time.sleep(tasks.ROOM_CHECK_S + 0.05)  # the next answer counts what is really there
    assert level.admit(small, 1)
