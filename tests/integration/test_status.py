"""What `status`, `feeds list`, the health check and the metrics read: right, and in a
few round trips however many feeds and keys the deployment holds."""

from __future__ import annotations

import time

import pytest

from worker.feeds.registry import FEEDS_PER_ROUND_TRIP
from worker.observability import beat, live_processes, process_name, stop_beating
from worker.runtime import Runtime
from worker.status import collect_status, health_ok
from worker.workerproc import live_roles

pytestmark = pytest.mark.integration


def test_feeds_are_counted_by_status_and_listed_in_batches(own_rt: Runtime) -> None:
    registry = own_rt.registry
    total = FEEDS_PER_ROUND_TRIP * 2 + 100  # three batches, the last one short
    ids = [registry.add(f"https://feeds{n % 7}.example.com/{n}.xml").feed_id for n in range(total)]
    for feed_id in ids[:300]:
        registry.update(feed_id, status="ok")
    for feed_id in ids[300:500]:
        registry.update(feed_id, status="error", last_error="http_500")
    for feed_id in ids[500:600]:
        registry.set_enabled(feed_id, False, "operator")
    for feed_id in ids[600:650]:
        registry.remove(feed_id)
    expected = {"ok": 300, "error": 200, "disabled": 100, "new": total - 650}

    assert registry.count_by_status() == expected
    assert collect_status(own_rt)["feeds"] == {"total": total - 50, **expected}
    listed = registry.all()
    assert [r.feed_id for r in listed] == sorted(set(ids) - set(ids[600:650]))
    for record in listed[:: FEEDS_PER_ROUND_TRIP // 5]:  # schedule included
        assert record == registry.get(record.feed_id)
    assert {r.status for r in listed if r.feed_id in ids[500:600]} == {"disabled"}
    assert all(r.next_poll is None for r in listed if r.status == "disabled")
    assert all(r.next_poll is not None for r in listed if r.status != "disabled")


def test_heartbeats_are_listed_until_they_expire_or_stop(own_rt: Runtime) -> None:
    client, keys = own_rt.client, own_rt.keys
    name = process_name()
    beat(client, keys, "worker-cpu", ttl_s=1)
    beat(client, keys, "scheduler", ttl_s=60)
    assert live_processes(client, keys) == [f"scheduler:{name}", f"worker-cpu:{name}"]
    assert live_roles(own_rt) == {"scheduler", "worker-cpu"}
    assert health_ok(own_rt, ("cpu", "scheduler"))
    assert not health_ok(own_rt, ("io",))

    stop_beating(client, keys, ["scheduler"])
    assert collect_status(own_rt)["processes"] == [f"worker-cpu:{name}"]

    time.sleep(1.3)  # the worker's heartbeat expires
    assert live_processes(client, keys) == []
    assert not health_ok(own_rt, ("cpu",))
    assert client.scard(keys.heartbeats) == 0  # the expired left the index
    beat(client, keys, "worker-cpu", ttl_s=1)  # and a process beating again is back
    assert live_roles(own_rt) == {"worker-cpu"}
