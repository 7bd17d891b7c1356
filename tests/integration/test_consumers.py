"""Consumer groups: at-least-once reading, acknowledgement, recovery and poison entries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from worker.publish.consumer import GroupConsumer
from worker.runtime import Runtime

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def fill(rt: Runtime, stream: str, count: int) -> list[str]:
    return [
        rt.client.xadd(stream, {"id": f"a{i}", "data": json.dumps({"id": f"a{i}", "n": i})})
        for i in range(count)
    ]


def test_group_consumer_is_at_least_once(rt: Runtime) -> None:
    stream = f"{rt.keys.stream_prefix}:consumer-test:{uuid.uuid4().hex[:6]}"
    dead = f"{stream}:dead"
    fill(rt, stream, 5)
    first = GroupConsumer(rt.client, stream, "indexer", "c1", dead, min_idle_ms=0)
    first.ensure_group()
    taken = first.new(count=3)
    assert [m["n"] for _sid, m in taken] == [0, 1, 2]
    # c1 "crashes" before acknowledging; after a restart it sees its own pending entries first
    restarted = GroupConsumer(rt.client, stream, "indexer", "c1", dead, min_idle_ms=0)
    assert [m["n"] for _sid, m in restarted.pending_own()] == [0, 1, 2]
    restarted.ack(taken[0][0])
    # c2 takes over what c1 left pending (idle time 0 for the test)
    second = GroupConsumer(rt.client, stream, "indexer", "c2", dead, min_idle_ms=0)
    assert sorted(m["n"] for _sid, m in second.reclaim()) == [1, 2]
    assert [m["n"] for _sid, m in second.new(count=10)] == [3, 4]
    assert second.new(count=10) == []
    # an entry delivered too often goes aside, acknowledged, instead of looping forever
    poison = GroupConsumer(
        rt.client, stream, "indexer", "c3", dead, min_idle_ms=0, max_deliveries=3
    )
    for _ in range(3):
        poison.reclaim()
    assert [f["reason"] for _sid, f in rt.client.xrange(dead)] == ["max_deliveries"] * 4
    assert rt.client.xpending(stream, "indexer")["pending"] == 0


def test_consume_command_with_a_group(rt: Runtime) -> None:
    prefix = f"cli{uuid.uuid4().hex[:6]}"
    stream = f"{prefix}:articles"
    fill(rt, stream, 3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(NEWSWIRE_REDIS_URL=rt.settings.redis_url or "", NEWSWIRE_STREAM_PREFIX=prefix,
               NEWSWIRE_LOG_LEVEL="WARNING")  # fmt: skip

    def consume(*args: str) -> list[dict[str, object]]:
        out = subprocess.run(
            [sys.executable, "-m", "worker", "consume", "--json", "--no-wait", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return [json.loads(line) for line in out.splitlines()]

    assert [m["n"] for m in consume("--group", "g", "--count", "2")] == [0, 1]
    assert [m["n"] for m in consume("--group", "g")] == [2]  # acknowledged ones are not resent
    assert consume("--group", "g") == []
    assert [m["n"] for m in consume()] == [0, 1, 2]  # without a group: from the start
