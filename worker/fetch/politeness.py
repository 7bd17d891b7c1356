"""Per-host politeness shared by every worker on every machine, kept in Redis.

At most ``concurrency`` requests in flight to one host, and at least ``delay_s`` between
two request starts to it. A slot is a ZSET member with an expiry, so a worker that dies
holding one frees it after ``slot_ttl_s``. A caller waits up to ``max_wait_s`` in-thread;
past that it gets HostBusy and re-schedules the work instead of blocking a thread that
other hosts' work could use.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from worker.errors import HostBusy
from worker.keys import Keys
from worker.lua import run_script


@dataclass(frozen=True)
class Politeness:
    """The per-host budget (NEWSWIRE_HOST_CONCURRENCY, NEWSWIRE_HOST_DELAY_S)."""

    concurrency: int = 2
    delay_s: float = 1.0
    slot_ttl_s: float = 120.0  # longer than any fetch deadline
    max_wait_s: float = 5.0


class HostGate:
    """Acquire and release per-host request slots (usable as Fetcher's ``gate``)."""

    def __init__(self, client: redis.Redis, keys: Keys, policy: Politeness) -> None:
        self._client = client
        self._keys = keys
        self._policy = policy

    @contextlib.contextmanager
    def __call__(self, host: str) -> Iterator[None]:
        token = self.acquire(host)
        try:
            yield
        finally:
            self._client.zrem(self._keys.host_slots(host), token)

    def acquire(self, host: str) -> str:
        """Wait for a slot on ``host`` and return its token; raise HostBusy past max_wait_s."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self._policy.max_wait_s
        while True:
            wait_ms = self._try(host, token)
            if wait_ms <= 0:
                return token
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HostBusy(
                    "host_busy",
                    host,
                    f"no slot on {host} within {self._policy.max_wait_s}s",
                    retry_after=wait_ms / 1000,
                )
            time.sleep(min(wait_ms / 1000, remaining, 0.25))

    def _try(self, host: str, token: str) -> int:
        policy = self._policy
        return int(
            run_script(
                self._client,
                "acquire_host_slot",
                [self._keys.host_slots(host), self._keys.host_next(host)],
                [
                    int(time.time() * 1000),
                    token,
                    policy.concurrency,
                    int(policy.delay_s * 1000),
                    int(policy.slot_ttl_s * 1000),
                ],
            )
        )

    def defer(self, host: str, seconds: float) -> None:
        """Push the host's next allowed start ``seconds`` away (a 429/503 Retry-After)."""
        until = int((time.time() + seconds) * 1000)
        key = self._keys.host_next(host)
        current = int(self._client.get(key) or 0)
        if until > current:
            self._client.set(key, until, px=int(seconds * 1000) + 1000)
