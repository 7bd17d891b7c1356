"""Dead-lettered entries, given another go once their cause is fixed (`deadletter retry`).

After an outage (a site down past ``max_attempts``, DNS gone for an hour, a robots.txt
that refused everything), the entries it failed stay failed: their claims keep them from
being fetched again. Retrying reads the dead-letter stream, picks the entries by reason
and age, and hands each one that is still failed for one of those reasons back to the
ledger with its attempts cleared; the sweeper enqueues them like work whose task was
lost. Published since, failed since for another reason, or past the dedup window (its
record gone): left alone. Publishing stays idempotent whatever else runs: a stale copy
of a retried entry (a redelivered task) may fetch its page once more, never publish it
twice.
"""

from __future__ import annotations

import calendar
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from worker.dates import iso_from_text
from worker.runtime import Runtime

PAGE = 1000  # stream entries read, and entries requeued, per round trip
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


@dataclass(frozen=True)
class RetryReport:
    """What a retry found and did."""

    dead_letters: int  # entry dead letters that matched (one entry may have several)
    requeued: int  # entries handed back to work (or, dry run, that would be)
    not_failed: int  # published or failed otherwise since, or whose record is gone


def retry_dead_letters(
    rt: Runtime, reasons: frozenset[str] | None, since_ms: int = 0, dry_run: bool = False
) -> RetryReport:
    """Requeue the entries dead-lettered since ``since_ms`` (unix ms) that are still
    failed for one of ``reasons`` (None: any reason)."""
    matched, entry_ids = 0, []
    for entry_id, reason in _entry_dead_letters(rt, since_ms):
        if reasons is None or reason in reasons:
            matched += 1
            entry_ids.append(entry_id)
    unique = list(dict.fromkeys(entry_ids))
    requeued = 0
    for start in range(0, len(unique), PAGE):
        requeued += len(rt.ledger.requeue_failed(unique[start : start + PAGE], reasons, dry_run))
    return RetryReport(matched, requeued, len(unique) - requeued)


def _entry_dead_letters(rt: Runtime, since_ms: int) -> Iterator[tuple[str, str]]:
    """(entry id, reason) of each entry's dead letter from ``since_ms`` on: not a failed
    poll's (feeds retry on their own schedule), nor a consumer's poison message."""
    start = f"{since_ms}-0"
    while True:
        page = rt.client.xrange(rt.keys.deadletter, start, "+", count=PAGE)
        for _stream_id, fields in page:
            if fields.get("id") and _kind(fields.get("data", "")) == "entry":
                yield fields["id"], fields.get("reason", "")
        if len(page) < PAGE:
            return
        start = "(" + page[-1][0]


def _kind(data: str) -> str:
    try:
        message = json.loads(data)
    except ValueError:
        return ""
    return str(message.get("kind", "")) if isinstance(message, dict) else ""


def since_ms(text: str, now: float) -> int:
    """``--since`` as unix ms: a duration back from ``now`` (``90m``, ``6h``, ``2d``) or a
    date (``2026-12-06``, ``2026-12-06T04:00:00Z``, any form feeds use), not in the
    future. A bare number is refused: feedparser would read ``24`` as the year 2401."""
    if match := _DURATION.match(text):
        return max(int((now - float(match[1]) * _UNIT_S[match[2]]) * 1000), 0)
    iso = None if text.strip().isdigit() else iso_from_text(text)
    if iso is None:
        raise ValueError(f"{text!r} is neither a duration (90m, 6h, 2d) nor a date")
    seconds = calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))
    if seconds > now:
        raise ValueError(f"{text!r} is in the future")
    return max(seconds * 1000, 0)
