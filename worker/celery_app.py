"""The Celery app: queues, routing, and the reliability settings a Redis broker needs.

Three queues keep the CPU busy while pages download and keep polls from waiting behind
a backlog of page downloads: ``<prefix>.poll`` and ``<prefix>.fetch`` (I/O, consumed by
thread pools) and ``<prefix>.extract`` (CPU, one process per core). Late
acks with reject-on-worker-lost make Celery at-least-once in the common failures; the
ledger (worker/ledger.py) repairs the rest, and every stage is idempotent.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from celery import Celery
from kombu.exceptions import OperationalError

from worker.config import Settings, load_settings

log = logging.getLogger(__name__)
app = Celery("newswire", set_as_current=False)
_configured: list[bool] = [False]


class Queues(NamedTuple):
    """Names of the queues: feed polls, page fetches, extraction."""

    poll: str
    fetch: str
    extract: str


ROLE_QUEUES = {"io": ("poll", "fetch"), "cpu": ("extract",), "poll": ("poll",),
               "fetch": ("fetch",), "all": ("poll", "fetch", "extract")}  # fmt: skip


def queue_names(settings: Settings) -> Queues:
    """The queues of one deployment (prefixed, so apps can share a broker)."""
    prefix = settings.key_prefix
    return Queues(f"{prefix}.poll", f"{prefix}.fetch", f"{prefix}.extract")


def soft_time_limit(settings: Settings) -> float:
    """When a task is asked to stop (SoftTimeLimitExceeded), before the hard kill."""
    return max(settings.task_time_limit_s - 10, settings.task_time_limit_s / 2)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings derived from ours (reliability.md, 'Settings for our worker')."""
    queues = queue_names(settings)
    transport = {
        "visibility_timeout": int(settings.visibility_timeout_s),
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 1,
        "socket_timeout": settings.redis_socket_timeout_s,
        "socket_connect_timeout": 5,
        "health_check_interval": 30,
    }
    return {
        "broker_url": settings.effective_broker_url,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "visibility_timeout": int(settings.visibility_timeout_s),
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_time_limit_s,
        "task_soft_time_limit": soft_time_limit(settings),
        "worker_max_tasks_per_child": settings.max_tasks_per_child,
        "worker_max_memory_per_child": settings.max_memory_per_child_kb,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_soft_shutdown_timeout": settings.soft_shutdown_timeout_s,
        "worker_enable_soft_shutdown_on_idle": True,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        # Nothing uses remote control; closing its channel at shutdown opens a fresh
        # connection, which can stall a warm shutdown when Redis or DNS is away.
        "worker_enable_remote_control": False,
        "task_default_queue": queues.poll,
        "task_create_missing_queues": True,
        "task_routes": {
            "newswire.poll_feed": {"queue": queues.poll},
            "newswire.poll_feeds": {"queue": queues.poll},
            "newswire.fetch_pages": {"queue": queues.fetch},
            "newswire.extract_pages": {"queue": queues.extract},
            "newswire.ingest_pages": {"queue": queues.extract},
        },
        "broker_pool_limit": max(settings.io_concurrency, 10),
    }


def configure(settings: Settings) -> Celery:
    """Apply our settings to the app (before it is first used)."""
    app.conf.update(celery_config(settings))
    _configured[0] = True
    return app


def warm_sender(celery: Celery = app) -> None:
    """Make now what the first task this process sends would make: the producer pool,
    its broker connection and the (disabled) result backend. The first send of an io
    worker cost 74 ms while its other threads parsed feeds (25 ms in an idle process,
    3.5 ms after this), and every article of its first poll waited for it. A broker
    that does not answer now is left to the first send, as before."""
    try:
        with celery.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=1)
        _ = celery.backend
    except (OperationalError, OSError) as exc:  # the first send connects, and reports
        log.warning("could not connect to the broker ahead of the first send: %s", exc)


@app.on_configure.connect
def _configure_from_environment(sender: Celery, **_: Any) -> None:
    # `celery -A worker.celery_app ...` without our CLI: read settings as usual.
    if not _configured[0]:
        sender.conf.update(celery_config(load_settings()))


app.autodiscover_tasks(["worker"], related_name="tasks", force=True)
