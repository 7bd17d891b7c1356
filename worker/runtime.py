"""Everything one process needs to run the pipeline, built once from settings."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from worker.config import Settings
from worker.dedup.index import NearDupIndex
from worker.feeds.registry import Registry
from worker.feeds.schedule import PollPolicy
from worker.fetch.client import Fetcher
from worker.fetch.limits import FetchLimits
from worker.fetch.politeness import HostGate, Politeness
from worker.fetch.robots import Robots
from worker.keys import Keys
from worker.ledger import Leases, Ledger
from worker.publish.stream import Publisher, Retention
from worker.redis import connect


@dataclass
class Runtime:
    """Clients and policies for one process (a worker child, the scheduler, a command)."""

    settings: Settings
    client: redis.Redis
    keys: Keys
    ledger: Ledger
    publisher: Publisher
    registry: Registry
    policy: PollPolicy
    page_limits: FetchLimits
    feed_limits: FetchLimits
    _fetcher: Fetcher | None = None
    _robots: Robots | None = None

    @classmethod
    def build(cls, settings: Settings, redis_url: str) -> Runtime:
        client = connect(redis_url, settings.redis_socket_timeout_s)
        keys = Keys(settings.stream_prefix, settings.key_prefix)
        window = int(settings.dedup_window_days * 86_400)
        leases = Leases(
            settings.queued_lease_s,
            settings.running_lease_s,
            window,
            settings.max_attempts,
            settings.retry_base_s,
            settings.ingest_queued_lease_s,
        )
        retention = Retention(settings.stream_maxlen, settings.stream_retention_days, window)
        page_limits = FetchLimits.from_settings(settings)
        return cls(
            settings=settings,
            client=client,
            keys=keys,
            ledger=Ledger(client, keys, leases),
            publisher=Publisher(
                client,
                keys,
                retention,
                NearDupIndex(
                    settings.key_prefix,
                    settings.near_dup_threshold,
                    settings.dedup_window_days,
                    bucket_bits=settings.near_dup_bucket_bits,
                    enabled=settings.near_dup_enabled,
                ),
            ),
            registry=Registry(client, keys),
            policy=PollPolicy(
                settings.poll_interval_s, settings.min_poll_interval_s, settings.max_poll_interval_s
            ),
            page_limits=page_limits,
            feed_limits=FetchLimits.from_settings(settings, max_bytes=settings.max_feed_bytes),
        )

    @property
    def fetcher(self) -> Fetcher:
        """The HTTP client, created on first use (after a prefork child is forked)."""
        if self._fetcher is None:
            gate = HostGate(
                self.client,
                self.keys,
                Politeness(
                    self.settings.host_concurrency,
                    self.settings.host_delay_s,
                    slot_ttl_s=self.settings.fetch_deadline_s * 4,
                    max_wait_s=self.settings.host_wait_s,
                ),
            )
            self._fetcher = Fetcher(
                self.settings.effective_user_agent,
                allow_private=self.settings.allow_private_hosts,
                gate=gate,
                origin_allowed=self.origin_allowed,
            )
        return self._fetcher

    @property
    def robots(self) -> Robots:
        """robots.txt checks for article fetches (shares the fetcher and its politeness)."""
        if self._robots is None:
            self._robots = Robots(self.client, self.keys, self.fetcher)
        return self._robots

    def origin_allowed(self, host: str, port: int) -> bool:
        """Whether an operator allowed this private origin (``allow_origin``)."""
        return bool(self.client.sismember(self.keys.allowed_origins, f"{host}:{port}"))

    def allow_origin(self, host: str, port: int, ttl_s: int = 3600) -> None:
        """Let workers fetch one private origin for a while, whatever allow_private_hosts says."""
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(self.keys.allowed_origins, f"{host}:{port}")
        pipe.expire(self.keys.allowed_origins, ttl_s)
        pipe.execute()

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
        self.client.close()
