"""Per-host politeness shared by every worker on every machine, kept in Redis.

At most ``concurrency`` requests in flight to one host, and at least ``delay_s`` between
two request starts to it. A slot is a ZSET member with an expiry, so a worker that dies
holding one frees it after ``slot_ttl_s``. A caller waits up to ``max_wait_s`` in-thread;
past that it gets HostBusy and re-schedules the work instead of blocking a thread that
other hosts' work could use.

When a host needs no delay between request starts (``delay_s`` 0), a slot may pass from
one request of this process to the next without a round trip to Redis: a group of
requests about to start takes its slots in one round trip (``reserve``), a finished
request's slot stays here RELEASE_LINGER_S for this process's next request to the host,
and the slots left over go back to Redis together, from a thread of the gate. Taking and
giving back a slot for each page were two round trips of its fetch thread, ~2% of the
pipeline's CPU at 0 ms (bench/RESULTS.md, twelfth session). Lingering slots still count
as in flight: the limit holds, and other workers see a host as busy for at most a linger
longer than it is.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import redis

from worker.errors import HostBusy
from worker.keys import Keys
from worker.lua import run_script

log = logging.getLogger(__name__)

# How long a finished request's slot waits for the next request of this process to its
# host before it goes back to Redis (a fetch group's pages end within a few ms of each
# other: their slots go back in one round trip).
RELEASE_LINGER_S = 0.02
# How long a slot taken ahead waits for its request (fetch threads start within ms; a
# request redirected elsewhere, or refused before it is sent, leaves its slot unused).
RESERVE_HOLD_S = 0.5


@dataclass(frozen=True)
class Politeness:
    """The per-host budget (NEWSWIRE_HOST_CONCURRENCY, NEWSWIRE_HOST_DELAY_S)."""

    concurrency: int = 2
    delay_s: float = 1.0
    slot_ttl_s: float = 120.0  # longer than any fetch deadline
    max_wait_s: float = 5.0


@dataclass
class _Held:
    """A slot this process holds that no request of it uses now."""

    token: str
    reuse_until: float  # monotonic; past it the slot's expiry in Redis is too near to reuse
    give_back_at: float  # monotonic


class HostGate:
    """Acquire and release per-host request slots (usable as Fetcher's ``gate``)."""

    def __init__(self, client: redis.Redis, keys: Keys, policy: Politeness) -> None:
        self._client = client
        self._keys = keys
        self._policy = policy
        self._lock = threading.Lock()
        self._return_due = threading.Condition(self._lock)
        self._idle: dict[str, list[_Held]] = {}  # host -> slots held here, unused
        self._next_return = math.inf
        self._returner_pid = 0  # the process whose thread gives slots back (a fork has none)
        self._closed = False
        self._token_prefix = uuid.uuid4().hex[:16]
        self._serial = itertools.count()

    @property
    def _passes_slots(self) -> bool:
        """Whether a slot may serve several requests in turn: only with no delay, since a
        request start that Redis does not see could come too soon after another's."""
        return self._policy.delay_s == 0 and not self._closed

    @contextlib.contextmanager
    def __call__(self, host: str) -> Iterator[None]:
        slot = self._slot(host)
        try:
            yield
        finally:
            self._finished(host, slot)

    def acquire(self, host: str) -> str:
        """Wait for a slot on ``host`` and return its token; raise HostBusy past max_wait_s.
        The caller gives it back (ZREM), or it expires after ``slot_ttl_s``."""
        return self._slot(host, pass_on=False).token

    def _slot(self, host: str, pass_on: bool = True) -> _Held:
        """A slot on ``host``: one held here (``pass_on``), else one from Redis, waited for
        up to max_wait_s (then HostBusy), taking one held here if it comes meanwhile."""
        token = ""
        deadline = time.monotonic() + self._policy.max_wait_s
        while True:
            held = self._take_idle(host) if pass_on else None
            if held is not None:
                return held
            token = token or self._new_token()
            wait_ms = self._try(host, token)
            if wait_ms <= 0:
                return _Held(token, time.monotonic() + self._policy.slot_ttl_s / 2, math.inf)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HostBusy(
                    "host_busy",
                    host,
                    f"no slot on {host} within {self._policy.max_wait_s}s",
                    retry_after=wait_ms / 1000,
                )
            time.sleep(min(wait_ms / 1000, remaining, 0.25))

    def reserve(self, hosts: Sequence[str]) -> int:
        """Take slots ahead for requests about to start, one per host named (a host named
        three times is asked three slots), in one round trip; return how many were taken.
        A request finds its slot here; one the budget does not allow now asks for itself.
        Nothing is taken ahead for a host with a delay between request starts."""
        if not self._passes_slots or not hosts:
            return 0
        wanted = self._not_held(hosts)
        if not wanted:
            return 0
        policy = self._policy
        tokens = [self._new_token() for _ in wanted]
        keys = [
            key
            for host in wanted
            for key in (self._keys.host_slots(host), self._keys.host_next(host))
        ]
        args = [int(time.time() * 1000), policy.concurrency, int(policy.slot_ttl_s * 1000)]
        taken = run_script(self._client, "reserve_host_slots", keys, [*args, *tokens])
        now = time.monotonic()
        for host, token, granted in zip(wanted, tokens, taken, strict=True):
            if int(granted):
                self._keep(host, _Held(token, now + policy.slot_ttl_s / 2, now + RESERVE_HOLD_S))
        return sum(int(granted) for granted in taken)

    def defer(self, host: str, seconds: float) -> None:
        """Push the host's next allowed start ``seconds`` away (a 429/503 Retry-After)."""
        until = int((time.time() + seconds) * 1000)
        key = self._keys.host_next(host)
        current = int(self._client.get(key) or 0)
        if until > current:
            self._client.set(key, until, px=int(seconds * 1000) + 1000)

    def close(self) -> None:
        """Give back every slot held here now; later requests give theirs back at once."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
            self._next_return = math.inf
            self._return_due.notify()
        self._give_back({host: [held.token for held in slots] for host, slots in idle.items()})

    def _new_token(self) -> str:
        """A slot's token, unique across processes: a uuid4 a slot read the OS's random
        source, and the fetch thread then waited for the GIL again behind the extraction
        (7% of its samples in a profile of bench/throughput.py at 0 ms)."""
        return f"{self._token_prefix}-{os.getpid()}-{next(self._serial)}"

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

    def _finished(self, host: str, slot: _Held) -> None:
        """A request's slot: kept a moment for the next request to its host, or given back."""
        now = time.monotonic()
        if self._passes_slots and now < slot.reuse_until:
            self._keep(host, _Held(slot.token, slot.reuse_until, now + RELEASE_LINGER_S))
        else:
            self._client.zrem(self._keys.host_slots(host), slot.token)

    def _take_idle(self, host: str) -> _Held | None:
        now = time.monotonic()
        with self._lock:
            slots = self._idle.get(host, [])
            for position, held in enumerate(slots):
                if now < held.reuse_until:
                    return slots.pop(position)
        return None

    def _not_held(self, hosts: Sequence[str]) -> list[str]:
        """The hosts of ``hosts`` (with repeats) that the idle slots held here do not cover;
        those that do cover one wait for it as long as a slot taken ahead."""
        now = time.monotonic()
        wanted: list[str] = []
        with self._lock:
            spare = {
                host: [held for held in slots if now < held.reuse_until]
                for host, slots in self._idle.items()
            }
            for host in hosts:
                if spare.get(host):
                    held = spare[host].pop()
                    held.give_back_at = max(held.give_back_at, now + RESERVE_HOLD_S)
                else:
                    wanted.append(host)
        return wanted

    def _keep(self, host: str, held: _Held) -> None:
        with self._lock:
            closed = self._closed
            if not closed:
                self._idle.setdefault(host, []).append(held)
                if held.give_back_at < self._next_return:
                    self._next_return = held.give_back_at
                    self._wake_returner()
        if closed:  # closed since the caller looked: nothing would give it back later
            self._give_back({host: [held.token]})

    def _wake_returner(self) -> None:
        """Have the thread that gives slots back look again (started on first use, and
        again in a forked process, which has none); the lock is held."""
        if self._returner_pid == os.getpid():
            self._return_due.notify()
            return
        self._returner_pid = os.getpid()
        threading.Thread(target=self._return_loop, name="host-slots", daemon=True).start()

    def _return_loop(self) -> None:
        """Give back, in one round trip, the slots whose time is up (and those due within a
        linger: they would need a round trip of their own a moment later)."""
        while True:
            with self._lock:
                while not self._closed and self._next_return > time.monotonic():
                    wait = self._next_return - time.monotonic()
                    self._return_due.wait(None if math.isinf(wait) else wait)
                if self._closed:
                    return
                due = self._due(time.monotonic() + RELEASE_LINGER_S)
            self._give_back(due)

    def _due(self, by: float) -> dict[str, list[str]]:
        """Take out of the idle slots those to give back by ``by`` (lock held)."""
        due: dict[str, list[str]] = {}
        later = math.inf
        for host, slots in list(self._idle.items()):
            keep = [held for held in slots if held.give_back_at > by]
            due_here = [held.token for held in slots if held.give_back_at <= by]
            if due_here:
                due[host] = due_here
            if keep:
                self._idle[host] = keep
                later = min(later, *(held.give_back_at for held in keep))
            else:
                del self._idle[host]
        self._next_return = later
        return due

    def _give_back(self, tokens: dict[str, list[str]]) -> None:
        if not tokens:
            return
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for host, host_tokens in tokens.items():
                    pipe.zrem(self._keys.host_slots(host), *host_tokens)
                pipe.execute()
        except (redis.RedisError, OSError) as exc:
            # Redis away: the slots expire there after slot_ttl_s, as a dead worker's do.
            log.warning("could not give host slots back (%s): they expire", exc)
