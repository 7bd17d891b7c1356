"""What `newswire status` and `feeds list` show, and the health check behind --check."""

from __future__ import annotations

from typing import Any

from worker.celery_app import queue_names
from worker.feeds.registry import FeedRecord
from worker.observability import live_processes, process_name
from worker.publish import latency
from worker.runtime import Runtime

BUSIEST_HOSTS = 10  # hosts listed by the entries they have waiting (a polite host's backlog)


def collect_status(rt: Runtime) -> dict[str, Any]:
    """Counters, entry latency, stream lengths, queue depths, leases, feeds by status, live
    processes."""
    client, keys = rt.client, rt.keys
    by_status = rt.registry.count_by_status()
    ingest = rt.ledger.ingest_queued()
    stats = {k: int(v) for k, v in client.hgetall(keys.stats).items()}
    return {
        "redis": rt.settings.redis_url,
        "counters": {k: v for k, v in stats.items() if not k.startswith(latency.FIELD_PREFIX)},
        "latency": latency.report(latency.from_stats(stats)),
        "streams": {
            name: client.xlen(name) for name in (keys.articles, keys.duplicates, keys.deadletter)
        },
        "queues": {
            **{q: _queue_length(rt, q) for q in queue_names(rt.settings)},
            "ingest": sum(ingest.values()),  # entries for the fused tasks
            "ingest_hosts": len(ingest),  # ... from this many hosts
        },
        "ingest_busiest_hosts": dict(
            sorted(ingest.items(), key=lambda item: item[1], reverse=True)[:BUSIEST_HOSTS]
        ),
        "inflight_entries": rt.ledger.inflight_count(),
        "feeds": {"total": sum(by_status.values()), **by_status},
        "processes": live_processes(client, keys),
    }


def _queue_length(rt: Runtime, queue: str) -> int | None:
    broker = rt.settings.effective_broker_url or ""
    if not broker.startswith(("redis://", "rediss://", "unix://")):
        return None  # another broker (RabbitMQ): ask it, not us
    return int(rt.client.llen(queue))


def render_status(report: dict[str, Any]) -> str:
    """Human-readable form of collect_status()."""
    lines = [f"redis      {report['redis']}"]
    for section in ("counters", "streams", "queues", "feeds"):
        values = ", ".join(f"{k}={v}" for k, v in report[section].items()) or "-"
        lines.append(f"{section:<10} {values}")
    lines.append(f"latency    {_latency_line(report['latency'])}")
    busiest = ", ".join(f"{h or '-'}={n}" for h, n in report["ingest_busiest_hosts"].items())
    lines.append(f"waiting    {busiest or 'no host'}")
    lines.append(f"inflight   {report['inflight_entries']} entries")
    lines.append(f"processes  {', '.join(report['processes']) or 'none'}")
    return "\n".join(lines)


def _latency_line(waited: dict[str, Any]) -> str:
    if not waited["entries"]:
        return "no entry has reached a stream yet"
    count = waited["entries"]
    return (
        f"{count} {'entry' if count == 1 else 'entries'} from claim to stream: "
        f"mean {waited['mean_s']} s, "
        f"p50 <= {waited['p50_le_s']} s, p90 <= {waited['p90_le_s']} s, "
        f"p99 <= {waited['p99_le_s']} s"
    )


def health_ok(rt: Runtime, required: tuple[str, ...]) -> bool:
    """Redis answers, and each required role has a live heartbeat from this host."""
    if not rt.client.ping():
        return False
    host = process_name().split(":", 1)[0]
    here = {p.rsplit(":", 1)[0] for p in live_processes(rt.client, rt.keys)}  # role:host
    return all(f"{_heartbeat_role(role)}:{host}" in here for role in required)


def _heartbeat_role(role: str) -> str:
    return role if role == "scheduler" else f"worker-{role}"


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    delta = now - ts
    return f"in {-delta:.0f}s" if delta < 0 else f"{delta:.0f}s ago"


def feed_rows(records: list[FeedRecord], now: float) -> list[str]:
    """One line per feed: URL, title, status, last success, last error, failures, interval,
    next poll, entries seen."""
    rows = []
    for f in records:
        error = (
            f"last_error={f.last_error!r} ({_ago(f.last_error_at, now)})" if f.last_error else ""
        )
        current = f"{f.current_interval_s:.0f}s" if f.current_interval_s else "-"
        interval = f"{f.interval_s:.0f}s (fixed)" if f.interval_s else f"{current} (adaptive)"
        rows.append(
            f"{f.feed_id} {f.status:<8} {f.url} title={f.title!r} "
            f"last_success={_ago(f.last_success, now)} failures={f.consecutive_failures} "
            f"interval={interval} next_poll={_ago(f.next_poll, now)} "
            f"entries_seen={f.entries_seen} {error}".rstrip()
        )
    return rows
