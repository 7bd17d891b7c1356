"""Idempotent publishing to the output streams, and dead letters.

One Lua script (lua/publish_article.lua) decides and acts in a single atomic step:
unchanged refetch, exact duplicate, near duplicate, new revision or new original; then
XADD, index and mark. A redelivered task therefore never adds a second entry, and two
workers racing on near-identical articles produce exactly one original.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from worker.dedup.fingerprint import from_hex
from worker.dedup.index import NearDupIndex
from worker.keys import Keys
from worker.lua import run_script
from worker.publish.latency import script_bounds

LATENCY_BOUNDS = script_bounds()


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
    """What publishing did: 'article', 'duplicate', 'unchanged' or 'done' (already ended).

    ``ref`` is the stream id of an article, or the original's id for a duplicate;
    ``detail`` the revision of an article or the similarity of a duplicate."""

    kind: str
    ref: str = ""
    detail: str = ""


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def message_rest(article: dict[str, Any]) -> str:
    """The article's JSON after its opening brace, without the fields the script sets."""
    return _dumps({k: v for k, v in article.items() if k not in ("schema", "revision")})[1:]


class Publisher:
    """Publishes article outcomes and dead letters for one deployment."""

    def __init__(
        self, client: redis.Redis, keys: Keys, retention: Retention, index: NearDupIndex
    ) -> None:
        self._client = client
        self._keys = keys
        self._retention = retention
        self._index = index

    def publish(self, article: dict[str, Any], entry_id: str) -> Outcome:
        """Publish ``article`` for entry ``entry_id`` exactly once; return what happened."""
        keys, retention = self._keys, self._retention
        now = time.time()
        near = self._index.script_args(from_hex(article["minhash"]), article["id"], now)
        result = run_script(
            self._client,
            "publish_article",
            [keys.articles, keys.duplicates, keys.article(article["id"]),
             keys.content(article["content_hash"]), keys.entry(entry_id), keys.inflight,
             keys.seen(entry_id), keys.stats, keys.page(entry_id), keys.handed],
            [entry_id, article["id"], article["content_hash"], message_rest(article),
             retention.window_s, retention.maxlen, retention.minid(), *near, now,
             LATENCY_BOUNDS],
        )  # fmt: skip
        return Outcome(*result)

    def dead_letter(self, entry_id: str, message: dict[str, Any]) -> str:
        """Dead-letter an entry once (a second call for the same entry writes nothing)."""
        keys = self._keys
        return str(
            run_script(
                self._client,
                "fail_entry",
                [
                    keys.deadletter,
                    keys.entry(entry_id),
                    keys.inflight,
                    keys.seen(entry_id),
                    keys.stats,
                    keys.page(entry_id),
                    keys.handed,
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
