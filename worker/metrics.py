"""Prometheus metrics of the deployment, read from Redis at each scrape.

The counters live in Redis (every worker on every machine adds to them), so any one
process can serve them all: `run` and `scheduler` do when ``metrics_port`` is set.
A scrape costs a handful of Redis commands (``collect_status``); with Redis away it
answers ``newswire_redis_up 0`` instead of failing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIServer

import redis
from prometheus_client import PROCESS_COLLECTOR, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from worker.runtime import Runtime
from worker.status import collect_status

log = logging.getLogger(__name__)
ENTRY_OUTCOMES = ("published", "duplicates", "unchanged", "failed")
POLL_OUTCOMES = ("parsed", "not_modified", "unchanged", "failed")
FAILED_BY_REASON = "failed:"  # stats hash fields of dead-lettered entries, by reason


class MetricsUnavailable(RuntimeError):
    """The metrics port cannot be listened on (taken, or an address not this host's)."""


class DeploymentCollector(Collector):
    """Counters, stream lengths, queue depths, leases, feeds and live processes."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("newswire_redis_up", "Whether Redis answered this scrape")
        try:
            report = collect_status(self._rt)
        except redis.RedisError as exc:
            log.warning("metrics: redis unavailable (%s)", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _counters(report["counters"])
        yield _latency(report["latency"])
        yield from _gauges(report)


def _counters(counters: dict[str, int]) -> Iterator[Metric]:
    entries = CounterMetricFamily(
        "newswire_entries", "Entries that ended, by outcome", labels=["outcome"]
    )
    for outcome in ENTRY_OUTCOMES:
        entries.add_metric([outcome], counters.get(outcome, 0))
    yield entries
    failures = CounterMetricFamily(
        "newswire_entry_failures", "Entries dead-lettered, by reason", labels=["reason"]
    )
    for field, value in sorted(counters.items()):
        if field.startswith(FAILED_BY_REASON):
            failures.add_metric([field.removeprefix(FAILED_BY_REASON)], value)
    yield failures
    polls = CounterMetricFamily("newswire_polls", "Feed polls, by outcome", labels=["outcome"])
    for outcome in POLL_OUTCOMES:
        polls.add_metric([outcome], counters.get(f"polls_{outcome}", 0))
    yield polls
    yield CounterMetricFamily(
        "newswire_extractions", "Pages extracted", value=counters.get("extractions", 0)
    )
    yield CounterMetricFamily(
        "newswire_extraction_cpu_seconds",
        "CPU time of extraction and publishing (trafilatura included)",
        value=counters.get("extraction_cpu_ms", 0) / 1000,
    )
    yield CounterMetricFamily(
        "newswire_ingest_rewakes",
        "Tasks the sweeper woke for entries left in the ingest queue (a lost wake-up task)",
        value=counters.get("ingest_rewakes", 0),
    )


def _latency(waited: dict[str, Any]) -> Metric:
    return HistogramMetricFamily(
        "newswire_entry_latency_seconds",
        "Seconds from an entry's claim (the poll that first saw it) to its stream entry",
        buckets=list(waited["buckets"].items()),
        sum_value=waited["sum_s"],
    )


def _gauges(report: dict[str, Any]) -> Iterator[Metric]:
    streams = GaugeMetricFamily(
        "newswire_stream_entries", "Entries in each output stream", labels=["stream"]
    )
    for stream, length in report["streams"].items():
        streams.add_metric([stream], length)
    yield streams
    queues = GaugeMetricFamily(
        "newswire_queue_length", "Work waiting, by queue (Redis broker only)", labels=["queue"]
    )
    for queue, length in report["queues"].items():
        if length is not None and queue != "ingest_hosts":
            queues.add_metric([queue], length)
    yield queues
    yield GaugeMetricFamily(
        "newswire_ingest_hosts",
        "Hosts whose entries wait in the ingest queue",
        value=report["queues"]["ingest_hosts"],
    )
    by_host = GaugeMetricFamily(
        "newswire_ingest_queued",
        "Entries waiting in the ingest queue, for the hosts with the most",
        labels=["host"],
    )
    for host, waiting in report["ingest_busiest_hosts"].items():
        by_host.add_metric([host], waiting)
    yield by_host
    yield GaugeMetricFamily(
        "newswire_inflight_entries", "Entries under a lease", value=report["inflight_entries"]
    )
    feeds = GaugeMetricFamily("newswire_feeds", "Registered feeds, by status", labels=["status"])
    for status, count in report["feeds"].items():
        if status != "total":
            feeds.add_metric([status], count)
    yield feeds
    roles: dict[str, int] = {}
    for process in report["processes"]:
        role = process.split(":", 1)[0]
        roles[role] = roles.get(role, 0) + 1
    alive = GaugeMetricFamily(
        "newswire_live_processes", "Processes with a live heartbeat, by role", labels=["role"]
    )
    for role, count in sorted(roles.items()):
        alive.add_metric([role], count)
    yield alive


def registry_for(rt: Runtime) -> CollectorRegistry:
    """The deployment's metrics, and this process's own (CPU, memory, open files)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeploymentCollector(rt))
    registry.register(PROCESS_COLLECTOR)
    return registry


def exposition(rt: Runtime) -> str:
    """The metrics as Prometheus scrapes them (``newswire metrics``)."""
    return generate_latest(registry_for(rt)).decode()


def serve_metrics(rt: Runtime) -> WSGIServer | None:
    """Serve /metrics on ``metrics_address``:``metrics_port`` in a thread (None: off)."""
    settings = rt.settings
    if settings.metrics_port is None:
        return None
    where = f"{settings.metrics_address}:{settings.metrics_port}"
    try:
        server, _thread = start_http_server(
            settings.metrics_port, addr=settings.metrics_address, registry=registry_for(rt)
        )
    except OSError as exc:
        raise MetricsUnavailable(
            f"cannot serve metrics on {where} ({exc.strerror or exc}): "
            "set NEWSWIRE_METRICS_PORT to a free port, or unset it"
        ) from None
    log.info("metrics on http://%s:%d/metrics", settings.metrics_address, server.server_port)
    return server
