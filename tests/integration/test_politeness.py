"""Per-host request slots in the real server: taken ahead for a group of requests, passed
from one request of a process to the next, given back, and the limit held throughout."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.servers.newsroom import Newsroom, Route
from worker.errors import HostBusy
from worker.fetch import politeness
from worker.fetch.client import Fetcher
from worker.fetch.limits import FetchLimits
from worker.fetch.politeness import RESERVE_HOLD_S, HostGate, Politeness
from worker.runtime import Runtime

pytestmark = pytest.mark.integration


def a_host() -> str:
    """A host name no other test uses: its slots start empty."""
    return f"h{uuid.uuid4().hex[:10]}.example"


def gate(rt: Runtime, concurrency: int, delay_s: float = 0.0, **policy: float) -> HostGate:
    """A worker's gate: gates made here share nothing but Redis."""
    return HostGate(rt.client, rt.keys, Politeness(concurrency, delay_s, **policy))


def slots(rt: Runtime, host: str) -> set[str]:
    """The host's slots in Redis: its requests in flight, as every worker counts them."""
    return {str(token) for token in rt.client.zrange(rt.keys.host_slots(host), 0, -1)}


def eventually(check: Callable[[], bool], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_slots_taken_ahead_serve_their_requests_then_go_back(rt: Runtime) -> None:
    host = a_host()
    ours, other = gate(rt, 3, max_wait_s=0.2), gate(rt, 3, max_wait_s=0.2)
    assert ours.reserve([host] * 5) == 3  # what the budget allows, in one round trip
    reserved = slots(rt, host)
    assert len(reserved) == 3
    with ours(host), ours(host):  # two requests at once, each on a slot taken ahead
        assert slots(rt, host) == reserved
        with pytest.raises(HostBusy), other(host):  # another worker finds the host full
            pass
    # the two used slots and the unused one go back to Redis on their own
    assert eventually(lambda: not slots(rt, host), RESERVE_HOLD_S + 3)
    with other(host):
        assert len(slots(rt, host)) == 1


def test_a_finished_requests_slot_serves_the_next_one_then_goes_back(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(politeness, "RELEASE_LINGER_S", 2.0)  # long enough to look at it
    host = a_host()
    ours, other = gate(rt, 1, max_wait_s=0.2), gate(rt, 1, max_wait_s=0.2)
    with ours(host):
        first = slots(rt, host)
    assert slots(rt, host) == first  # still counted in flight while it lingers here
    with pytest.raises(HostBusy), other(host):
        pass
    with ours(host):  # this process's next request to the host: the same slot, no new one
        assert slots(rt, host) == first
    assert eventually(lambda: not slots(rt, host), 2.0 + 3)
    with other(host):
        assert len(slots(rt, host)) == 1


def test_with_a_delay_between_starts_every_request_asks_redis(rt: Runtime) -> None:
    host = a_host()
    paced = gate(rt, 3, delay_s=0.05, max_wait_s=2)
    assert paced.reserve([host, host]) == 0  # a start Redis did not see could come too soon
    assert not slots(rt, host)
    for _ in range(2):
        with paced(host):
            assert len(slots(rt, host)) == 1
        assert not slots(rt, host)  # given back at once


def test_a_slot_near_its_expiry_in_redis_is_not_passed_on(rt: Runtime) -> None:
    host = a_host()
    short = gate(rt, 2, slot_ttl_s=0.2, max_wait_s=2)
    assert short.reserve([host]) == 1
    reserved = slots(rt, host)
    time.sleep(0.15)  # past half its time to live: another worker may soon count it gone
    with short(host):
        assert slots(rt, host) - reserved  # a fresh slot serves the request


def test_closing_gives_every_held_slot_back_at_once(rt: Runtime) -> None:
    host = a_host()
    ours = gate(rt, 4)
    assert ours.reserve([host, host]) == 2
    with ours(host):
        pass
    ours.close()
    assert not slots(rt, host)
    with ours(host):
        assert len(slots(rt, host)) == 1
    assert not slots(rt, host)  # closed: a request's slot goes back as it ends


def test_the_limit_holds_across_workers_taking_slots_ahead(rt: Runtime, newsroom: Newsroom) -> None:
    newsroom.add("/page.html", Route(body=b"<html><body>x</body></html>", delay_s=0.05))
    policy = Politeness(concurrency=3, delay_s=0.0, max_wait_s=30)
    gates = [HostGate(rt.client, rt.keys, policy) for _ in range(2)]
    fetchers = [Fetcher("t", True, gate=g) for g in gates]
    url, limits = newsroom.url("/page.html"), FetchLimits(deadline_s=30)

    def group(worker: int) -> None:
        """A fused task's take: slots for four pages ahead, then the four fetches."""
        fetchers[worker].reserve_slots([url] * 4)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: fetchers[worker].get(url, limits), range(4)))

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda i: group(i % 2), range(12)))
    assert newsroom.count("/page.html") == 48
    assert newsroom.max_in_flight == 3
    assert eventually(lambda: not slots(rt, newsroom.host), RESERVE_HOLD_S + 3)
