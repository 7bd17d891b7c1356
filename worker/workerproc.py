"""Worker processes: run one (`newswire worker`), or borrow a pair for a command."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis
from celery.signals import worker_ready, worker_shutting_down

from worker.celery_app import ROLE_QUEUES, app, queue_names
from worker.extract.document import warm_up
from worker.observability import beat, process_name
from worker.runtime import Runtime

log = logging.getLogger(__name__)
BEAT_EVERY_S = 5.0


def run_worker(rt: Runtime, role: str, pool: str | None, concurrency: int | None) -> None:
    """Run a Celery worker for ``role`` (io, cpu or all) in this process until stopped."""
    names = queue_names(rt.settings)._asdict()
    queues = [names[kind] for kind in ROLE_QUEUES[role]]
    cpu_bound = "extract" in ROLE_QUEUES[role]
    pool = pool or ("prefork" if cpu_bound else "threads")
    if concurrency is None:
        concurrency = rt.settings.cpu_concurrency if cpu_bound else rt.settings.io_concurrency
    if cpu_bound and pool == "prefork":
        warm_up()  # before the fork: children start warm
    _beat_when_ready(rt, role)
    app.worker_main(
        [
            "worker",
            "--queues",
            ",".join(queues),
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"{role}@%h-%d",
            "--loglevel",
            rt.settings.log_level,
            "--without-gossip",
            "--without-mingle",
        ]
    )


def _beat_when_ready(rt: Runtime, role: str) -> None:
    stop = threading.Event()
    roles = {"all": ["io", "cpu"], "poll": ["io"], "fetch": ["io"]}.get(role, [role])

    def _loop() -> None:
        while True:
            for name in roles:
                with contextlib.suppress(Exception):  # Redis away: the next beat retries
                    beat(rt.client, rt.keys, f"worker-{name}", ttl_s=int(BEAT_EVERY_S * 3))
            if stop.wait(BEAT_EVERY_S):
                return

    @worker_ready.connect(weak=False)
    def _ready(**_: Any) -> None:
        threading.Thread(target=_loop, name="heartbeat", daemon=True).start()

    @worker_shutting_down.connect(weak=False)
    def _stopping(**_: Any) -> None:
        stop.set()
        # Say at once that we are gone (a command starting now must not count on us), with
        # a one-shot client: a shutdown must not wait for Redis, or for DNS in a container.
        with contextlib.suppress(Exception):
            quick = redis.Redis.from_url(
                rt.settings.redis_url or "", socket_timeout=1, socket_connect_timeout=1
            )
            quick.delete(*(rt.keys.heartbeat(f"worker-{n}", process_name()) for n in roles))
            quick.close()


def live_roles(rt: Runtime) -> set[str]:
    """Roles with at least one live heartbeat anywhere (worker-io, worker-cpu, scheduler)."""
    roles = set()
    for key in rt.client.scan_iter(match=rt.keys.heartbeat_pattern, count=500):
        roles.add(key.split(":")[-3])
    return roles


@contextlib.contextmanager
def workers_for(rt: Runtime, timeout_s: float = 60.0) -> Iterator[None]:
    """Make sure io and cpu workers run while the block runs; start (then stop) our own if not."""
    from worker.service import WorkerProcesses, default_specs

    missing = [s for s in default_specs(rt.settings) if f"worker-{s.role}" not in live_roles(rt)]
    if not missing:
        yield
        return
    processes = WorkerProcesses(rt.settings, missing)
    processes.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not all(f"worker-{s.role}" in live_roles(rt) for s in missing):
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not become ready in time")
            time.sleep(0.2)
        yield
    finally:
        processes.stop(rt.settings.soft_shutdown_timeout_s + 10)
