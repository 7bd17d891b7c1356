"""Idempotent publishing to the output streams, and dead letters.

The decision (new article, new revision, exact duplicate, unchanged) is made here from
what Redis holds; the publish script re-checks that nothing changed in between and does
check + XADD + mark in one atomic step, so a redelivered task never adds a second entry.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from worker.keys import Keys
from worker.lua import Scripts
from worker.publish.schema import duplicate_message

MAX_CONFLICT_RETRIES = 8


@dataclass(frozen=True)
class Retention:
    """How long streams and dedup keys keep things."""

    maxlen: int = 1_000_000
    retention_days: float | None = None
    window_s: int = 30 * 86_400

    def minid(self) -> str:
        """The MINID for time-based trimming ('' when disabled)."""
        if not self.retention_days:
            return ""
        return f"{int((time.time() - self.retention_days * 86_400) * 1000)}-0"


@dataclass(frozen=True)
class Outcome:
    """What publishing did: 'article', 'duplicate', 'unchanged' or 'done' (already ended)."""

    kind: str
    ref: str = ""  # stream id for an article, original id for a duplicate


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


class Publisher:
    """Publishes article outcomes and dead letters for one deployment."""

    def __init__(self, client: redis.Redis, keys: Keys, retention: Retention) -> None:
        self._client = client
        self._keys = keys
        self._retention = retention
        self._scripts = Scripts(client)

    def publish(self, article: dict[str, Any], entry_id: str) -> Outcome:
        """Publish ``article`` for entry ``entry_id`` exactly once; return what happened."""
        for _ in range(MAX_CONFLICT_RETRIES):
            result = self._try_publish(article, entry_id)
            if result is not None:
                return result
        raise RuntimeError(f"publish of {article['id']} kept conflicting")

    def _try_publish(self, article: dict[str, Any], entry_id: str) -> Outcome | None:
        keys = self._keys
        digest = article["content_hash"]
        stored_hash, revision = self._client.hmget(
            keys.article(article["id"]), ["content_hash", "revision"]
        )
        owner = self._client.get(keys.content(digest)) or ""
        kind, message, duplicate_of = "article", article, ""
        if stored_hash == digest:
            kind = "unchanged"
        elif owner and owner != article["id"]:
            kind, duplicate_of = "duplicate", owner
            message = duplicate_message(article, owner, 1.0)
        else:
            message = {**article, "revision": int(revision or 0) + 1}
        result = self._scripts(
            "publish_article",
            [
                keys.articles,
                keys.duplicates,
                keys.article(article["id"]),
                keys.content(digest),
                keys.entry(entry_id),
                keys.inflight,
                keys.seen(entry_id),
                keys.stats,
            ],
            [
                kind,
                article["id"],
                digest,
                message.get("revision", 1),
                stored_hash or "",
                owner,
                _dumps(message),
                duplicate_of,
                entry_id,
                self._retention.window_s,
                self._retention.maxlen,
                self._retention.minid(),
            ],
        )
        if result[0] == "conflict":
            return None
        return Outcome(result[0], result[1])

    def dead_letter(self, entry_id: str, message: dict[str, Any]) -> str:
        """Dead-letter an entry once (a second call for the same entry writes nothing)."""
        keys = self._keys
        return str(
            self._scripts(
                "fail_entry",
                [
                    keys.deadletter,
                    keys.entry(entry_id),
                    keys.inflight,
                    keys.seen(entry_id),
                    keys.stats,
                ],
                [
                    entry_id,
                    message["reason"],
                    _dumps(message),
                    self._retention.window_s,
                    self._retention.maxlen,
                ],
            )
        )

    def feed_failure(self, message: dict[str, Any]) -> str:
        """Record a failed poll on the dead-letter stream."""
        stream_id = self._client.xadd(
            self._keys.deadletter,
            {"id": "", "reason": message["reason"], "data": _dumps(message)},
            maxlen=self._retention.maxlen,
            approximate=True,
        )
        return str(stream_id)
