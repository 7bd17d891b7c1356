"""Extraction processes on CPUs of their own (``pin_extraction_cpus``), in a real prefork
worker started on two CPUs."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator

import psutil
import pytest

from tests.support import wait_until
from worker.config import Settings
from worker.runtime import Runtime
from worker.service import WorkerProcesses, WorkerSpec
from worker.workerproc import live_roles

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity and two CPUs",
)


def children_affinity(procs: WorkerProcesses) -> list[list[int]]:
    """The CPUs each pool child of the cpu worker may run on, every thread of it."""
    root = psutil.Process(procs.processes["cpu"].pid)
    found = []
    for child in root.children(recursive=True):
        tasks = os.listdir(f"/proc/{child.pid}/task")
        found.append(sorted({cpu for t in tasks for cpu in os.sched_getaffinity(int(t))}))
    return sorted(found)


@contextlib.contextmanager
def cpu_worker(settings: Settings, cpus: set[int], pin: bool) -> Iterator[WorkerProcesses]:
    """A cpu worker of two pool children, started on ``cpus``, once it is ready."""
    tag = uuid.uuid4().hex[:6]
    update = {"key_prefix": f"p{tag}", "stream_prefix": f"p{tag}:news"}
    own = settings.model_copy(update={**update, "pin_extraction_cpus": pin})
    procs = WorkerProcesses(own, [WorkerSpec("cpu", "prefork", 2)])
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)  # the worker inherits it
    try:
        procs.start()
    finally:
        os.sched_setaffinity(0, saved)
    own_rt = Runtime.build(own, own.redis_url or "")
    try:
        assert wait_until(lambda: "worker-cpu" in live_roles(own_rt), timeout=60)
        assert wait_until(lambda: len(children_affinity(procs)) == 2, timeout=30)
        yield procs
    finally:
        procs.stop(15)
        own_rt.close()


def two_cpus() -> set[int]:
    return set(sorted(os.sched_getaffinity(0))[:2])


def test_each_extraction_process_runs_on_a_cpu_of_its_own(settings: Settings) -> None:
    cpus = two_cpus()
    pinned = [[min(cpus)], [max(cpus)]]
    with cpu_worker(settings, cpus, pin=True) as procs:
        assert wait_until(lambda: children_affinity(procs) == pinned, timeout=30)


def test_with_pinning_off_they_may_run_on_any(settings: Settings) -> None:
    cpus = two_cpus()
    with cpu_worker(settings, cpus, pin=False) as procs:
        time.sleep(1.0)  # a child's init would have pinned it by now (~ms after its start)
        assert children_affinity(procs) == [sorted(cpus)] * 2
