"""A worker that takes nothing while its queue waits exits, to be restarted (celery#8030):
the check a worker's heartbeat runs, in a process of its own, on real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

import pytest
from kombu import Connection, Producer, Queue

from tests.support import wait_until
from worker.config import Settings, child_environment
from worker.consumption import queue_depth
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


AMQP_URL = os.environ.get("NEWSWIRE_TEST_AMQP_URL", "")
amqp_leg = pytest.mark.skipif(
    not AMQP_URL,
    reason="opt-in leg: set NEWSWIRE_TEST_AMQP_URL (e.g. amqp://guest:guest@127.0.0.1:5672//)",
)


def run_check(
    settings: Settings, queue: str, broker_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(CHECK_LOOP.format(queue=queue))
    update = {"consumer_stall_s": 1.0, "broker_url": broker_url or settings.broker_url}
    env = child_environment(settings.model_copy(update=update))
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


def test_an_unreachable_broker_is_no_answer_not_a_stall() -> None:
    assert queue_depth("amqp://guest:guest@127.0.0.1:1//", ["q"])() is None  # refused port


@amqp_leg
def test_rabbitmq_queues_are_counted_too(settings: Settings) -> None:
    queue = f"stall-{uuid.uuid4().hex[:6]}"
    depth = queue_depth(AMQP_URL, [queue])
    assert depth is not None and depth() is None  # not declared yet: no answer
    with Connection(AMQP_URL, connect_timeout=5) as connection:
        channel = connection.channel()
        Producer(channel).publish("a message nobody takes", routing_key=queue,
                                  declare=[Queue(queue, auto_delete=False)])  # fmt: skip
        try:
            assert wait_until(lambda: depth() == 1, 10)  # a publish is asynchronous
            done = run_check(settings, queue, broker_url=AMQP_URL)
        finally:
            channel.queue_delete(queue)
    assert done.returncode == EXIT_STALLED, done.stderr
    assert "received no task for 1s while messages wait in " + queue in done.stderr
