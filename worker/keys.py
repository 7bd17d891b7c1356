"""Every Redis key and stream name, in one place.

Public streams live under ``stream_prefix`` (default ``news``: ``news:articles``);
internal state lives under ``key_prefix`` (default ``newswire``). Keys that hold one
record per thing end with that thing's id.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key names for one deployment (one pair of prefixes)."""

    stream_prefix: str = "news"
    key_prefix: str = "newswire"

    # Public streams (the contract; see config/schema/)
    @property
    def articles(self) -> str:
        return f"{self.stream_prefix}:articles"

    @property
    def duplicates(self) -> str:
        return f"{self.stream_prefix}:duplicates"

    @property
    def deadletter(self) -> str:
        return f"{self.stream_prefix}:deadletter"

    # Feed registry and schedule
    @property
    def feeds(self) -> str:
        """SET of feed ids."""
        return f"{self.key_prefix}:feeds"

    @property
    def feed_urls(self) -> str:
        """HASH url -> feed id."""
        return f"{self.key_prefix}:feeds:by-url"

    @property
    def feeds_due(self) -> str:
        """ZSET feed id -> unix time of its next poll."""
        return f"{self.key_prefix}:feeds:due"

    def feed(self, feed_id: str) -> str:
        """HASH: the feed's record and status."""
        return f"{self.key_prefix}:feed:{feed_id}"

    def feed_children(self, feed_id: str) -> str:
        """SET of the feed ids that the sitemap index ``feed_id`` registered."""
        return f"{self.key_prefix}:feeds:children:{feed_id}"

    # Entry ledger: claims, leases, attempts
    def seen(self, entry_id: str) -> str:
        """STRING: the claim on an entry (a lease until it ends, then kept for the window)."""
        return f"{self.seen_prefix}{entry_id}"

    @property
    def seen_prefix(self) -> str:
        """What ``seen(id)`` puts before the id."""
        return f"{self.key_prefix}:seen:"

    def entry(self, entry_id: str) -> str:
        """HASH: what the poller knew of an entry, plus its state."""
        return f"{self.entry_prefix}{entry_id}"

    @property
    def entry_prefix(self) -> str:
        """What ``entry(id)`` puts before the id (for scripts that find entries by id)."""
        return f"{self.key_prefix}:entry:"

    @property
    def inflight(self) -> str:
        """ZSET entry id -> lease deadline; the sweeper re-enqueues what expires."""
        return f"{self.key_prefix}:inflight"

    @property
    def handed(self) -> str:
        """ZSET entry id -> hand-over time: fetched pages waiting for extraction."""
        return f"{self.key_prefix}:handed"

    @property
    def ingest_hosts(self) -> str:
        """LIST: the ring of hosts that have entries waiting for a fused task (taken round
        robin, one entry a host at a time)."""
        return f"{self.key_prefix}:ingest:hosts"

    def ingest_host_queue(self, host: str) -> str:
        """LIST of the entry ids of one host waiting for a fused task to fetch and
        extract them."""
        return f"{self.ingest_host_prefix}{host}"

    @property
    def ingest_host_prefix(self) -> str:
        return f"{self.key_prefix}:ingest:host:"

    @property
    def ingest_activity(self) -> str:
        """STRING: when entries were last queued for, or taken by, a fused task (the
        sweeper's sign that entries wait and no task comes for them)."""
        return f"{self.key_prefix}:ingest:activity"

    @property
    def ingest_woken(self) -> str:
        """STRING, expiring: fused tasks were woken for queued entries and none has
        started since (more wake-ups would only queue up behind them)."""
        return f"{self.key_prefix}:ingest:woken"

    @property
    def ingest_rewoken(self) -> str:
        """STRING, expiring: the sweeper woke a task for a stalled ingest queue lately."""
        return f"{self.key_prefix}:ingest:rewoken"

    def ingest_taken(self, task_id: str) -> str:
        """LIST: the entry ids one fused task took from the ingest queue (given back if
        the task is delivered again: its process died with them)."""
        return f"{self.key_prefix}:ingest:taken:{task_id}"

    def page(self, entry_id: str) -> str:
        """STRING: fetched page (compressed) handed from the fetch to the extract stage."""
        return f"{self.key_prefix}:page:{entry_id}"

    # Dedup index
    def article(self, article_id: str) -> str:
        """HASH: publish state of an article id (content hash, revision, duplicate_of)."""
        return f"{self.key_prefix}:article:{article_id}"

    def content(self, content_hash: str) -> str:
        """STRING: the article id that first published this exact text."""
        return f"{self.key_prefix}:content:{content_hash}"

    # Politeness
    def host_slots(self, host: str) -> str:
        """ZSET token -> expiry: requests in flight to one host."""
        return f"{self.key_prefix}:host:{host}:slots"

    def host_next(self, host: str) -> str:
        """STRING: earliest time (ms) the next request to one host may start."""
        return f"{self.key_prefix}:host:{host}:next"

    def robots(self, origin: str) -> str:
        """STRING with TTL: the robots.txt of an origin ("" = no restrictions)."""
        return f"{self.key_prefix}:robots:{origin}"

    @property
    def allowed_origins(self) -> str:
        """SET of "host:port" private origins an operator allowed (the replay fixture server)."""
        return f"{self.key_prefix}:fetch:allowed-origins"

    # Operations
    @property
    def stats(self) -> str:
        """HASH: counters (published, duplicates, failed, polls...)."""
        return f"{self.key_prefix}:stats"

    def heartbeat(self, role: str, name: str) -> str:
        """STRING with TTL: a process is alive and making progress."""
        return f"{self.key_prefix}:heartbeat:{role}:{name}"

    @property
    def heartbeats(self) -> str:
        """SET: "role:host:pid" of every process that beat lately, so that readers find
        the heartbeats without scanning the keyspace (millions of keys after months)."""
        return f"{self.key_prefix}:heartbeats"
