"""Worker processes: run one (`newswire worker`), or borrow a pair for a command."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import redis
from celery.signals import task_received, worker_process_init, worker_ready, worker_shutting_down
from celery.worker import state as worker_state

from worker.celery_app import ROLE_QUEUES, app, queue_names, warm_sender
from worker.consumption import ConsumptionWatch, queue_depth
from worker.extract.document import warm_up
from worker.observability import beat, live_processes, stop_beating
from worker.runtime import Runtime

log = logging.getLogger(__name__)
BEAT_EVERY_S = 5.0
EXIT_STALLED = 75  # EX_TEMPFAIL: start me again
# The CPUs a prefork parent's children take, one each by their pool index (none: the
# scheduler places them); set before the fork, so each child (recycled ones too) finds it.
_child_cpus: list[int] = []


def run_worker(rt: Runtime, role: str, pool: str | None, concurrency: int | None) -> None:
    """Run a Celery worker for ``role`` (io, cpu or all) in this process until stopped."""
    names = queue_names(rt.settings)._asdict()
    queues = [names[kind] for kind in ROLE_QUEUES[role]]
    cpu_bound = "extract" in ROLE_QUEUES[role]
    pool = pool or ("prefork" if cpu_bound else "threads")
    if concurrency is None:
        concurrency = rt.settings.cpu_concurrency if cpu_bound else rt.settings.io_concurrency
    if cpu_bound and pool == "prefork":
        warm_before_fork()  # its children warm their task sender themselves (tasks.py)
        _child_cpus[:] = cpus_for_children(rt.settings.pin_extraction_cpus, concurrency)
    else:
        warm_sender()  # tasks run in this process
    _beat_when_ready(rt, role, stall_check(rt, queues, concurrency))
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


def warm_before_fork() -> None:
    """Load the extraction code in the prefork parent, so that its children (recycled ones
    too) start warm, then freeze what is loaded: the garbage collector of a child leaves
    the parent's ~117,000 objects alone. The full collection that trafilatura's
    ``reset_caches`` runs (every RESET_CACHES_EVERY pages) took 44 ms over them, 1 ms
    frozen (an extraction loop with the worker's modules, 3 x 150 corpus pages), and a
    collection that never touches them leaves their memory shared with the parent."""
    warm_up()
    gc.freeze()


def cpus_for_children(pin: bool, children: int, allowed: set[int] | None = None) -> list[int]:
    """The CPU of each pool child, by index (settings: ``pin_extraction_cpus``): one each
    when there are as many children as CPUs this process may run on (``allowed``: its
    affinity), else none. With more children than CPUs, or fewer (other work shares the
    machine), a pinned child could wait for a busy CPU while another one idles."""
    if allowed is None:
        allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if not pin or children < 2 or children != len(allowed):
        return []
    return sorted(allowed)


@worker_process_init.connect
def _pin_to_own_cpu(**_: Any) -> None:
    """Run this pool child, every thread of it (those started later inherit it), on its
    CPU: see ``pin_extraction_cpus``."""
    if not _child_cpus:
        return
    from billiard.process import current_process

    index = getattr(current_process(), "index", None)
    if index is None:
        return
    cpu = _child_cpus[index % len(_child_cpus)]
    try:
        for thread_id in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(thread_id), {cpu})
    except OSError as exc:  # a thread that ended meanwhile, or a cpuset that changed
        log.warning("extraction process %d not pinned to CPU %d: %s", os.getpid(), cpu, exc)
        return
    log.info("extraction process %d (pool index %d) runs on CPU %d", os.getpid(), index, cpu)


def stall_check(rt: Runtime, queues: list[str], capacity: int) -> Callable[[], None]:
    """What the heartbeat also runs: exit when this worker's consumer has stalled
    (consumption.py). With a Redis or RabbitMQ broker, whose queues we can count, and
    unless consumer_stall_s is 0 (then nothing is polled)."""
    stall_s = rt.settings.consumer_stall_s
    depth = queue_depth(rt.settings.effective_broker_url or "", queues) if stall_s > 0 else None
    if depth is None:
        return lambda: None
    watch = ConsumptionWatch(stall_s)
    received = [time.time()]

    @task_received.connect(weak=False)
    def _received(**_: Any) -> None:
        received[0] = time.time()

    def _check() -> None:
        reserved = len(worker_state.reserved_requests)
        if watch.stalled(time.time(), depth(), reserved, capacity, received[0]):
            log.critical(
                "this worker has received no task for %.0fs while messages wait in %s and "
                "it has room for %d more: its Celery consumer did not resume (celery#8030); "
                "exiting to be restarted",
                watch.stall_s, ", ".join(queues), capacity - reserved,
            )  # fmt: skip
            _exit_now(EXIT_STALLED)

    return _check


def _exit_now(code: int) -> None:
    """Leave at once, pool children included (a stalled consumer may not shut down)."""
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child.kill()
    logging.shutdown()
    os._exit(code)


def _beat_when_ready(rt: Runtime, role: str, check: Callable[[], None]) -> None:
    stop = threading.Event()
    roles = {"all": ["io", "cpu"], "poll": ["io"], "fetch": ["io"]}.get(role, [role])

    def _loop() -> None:
        while True:
            for name in roles:
                with contextlib.suppress(Exception):  # Redis away: the next beat retries
                    beat(rt.client, rt.keys, f"worker-{name}", ttl_s=int(BEAT_EVERY_S * 3))
            check()
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
            stop_beating(quick, rt.keys, [f"worker-{n}" for n in roles])
            quick.close()


def live_roles(rt: Runtime) -> set[str]:
    """Roles with at least one live heartbeat anywhere (worker-io, worker-cpu, scheduler)."""
    return {process.split(":", 1)[0] for process in live_processes(rt.client, rt.keys)}


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
