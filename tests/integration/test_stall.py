"""A worker that takes nothing while its queue waits exits, to be restarted (celery#8030):
the check a worker's heartbeat runs, in a process of its own, on real Redis."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import pytest

from worker.config import Settings, child_environment
from worker.runtime import Runtime
from worker.workerproc import EXIT_STALLED

pytestmark = pytest.mark.integration

CHECK_LOOP = """
import time
from worker.config import load_settings
from worker.runtime import Runtime
from worker.workerproc import stall_check
settings = load_settings()
check = stall_check(Runtime.build(settings, settings.redis_url), [{queue!r}], 2)
for _ in range(100):
    check()
    time.sleep(0.1)
"""


def run_check(settings: Settings, queue: str) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(CHECK_LOOP.format(queue=queue))
    env = child_environment(settings.model_copy(update={"consumer_stall_s": 1.0}))
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def test_messages_waiting_and_nothing_received_ends_the_worker(
    rt: Runtime, settings: Settings
) -> None:
    queue = f"stall-{uuid.uuid4().hex[:6]}"
    rt.client.lpush(queue, "a message nobody takes")
    try:
        done = run_check(settings, queue)
    finally:
        rt.client.delete(queue)
    assert done.returncode == EXIT_STALLED, done.stderr
    assert "received no task for 1s while messages wait in " + queue in done.stderr


def test_an_empty_queue_is_no_stall(settings: Settings) -> None:
    done = run_check(settings, f"stall-{uuid.uuid4().hex[:6]}")
    assert done.returncode == 0, done.stderr  # ten seconds of checks, then a normal exit
