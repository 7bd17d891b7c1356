"""`newswire run`: Redis (embedded when none is configured), worker processes, scheduler.

The service supervises its workers (restarting one that dies), runs the scheduler in a
thread, and on SIGTERM/SIGINT stops in order: scheduler, workers (warm shutdown, so
acks_late work is finished or requeued), then the embedded Redis it owns.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from types import FrameType

from worker.config import Settings, child_environment
from worker.redis import RedisHandle
from worker.runtime import Runtime

log = logging.getLogger(__name__)
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass
class WorkerSpec:
    """One worker process: which queue, which pool, how many slots."""

    role: str  # io, cpu, poll, fetch or all (see celery_app.ROLE_QUEUES)
    pool: str
    concurrency: int
    name: str = ""  # distinguishes several workers of one role; default: the role

    @property
    def key(self) -> str:
        return self.name or self.role

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "worker",
            "worker",
            "--role",
            self.role,
            "--pool",
            self.pool,
            "--concurrency",
            str(self.concurrency),
        ]


def default_specs(settings: Settings) -> list[WorkerSpec]:
    """I/O in threads (downloads overlap), extraction in one process per core."""
    return [
        WorkerSpec("io", "threads", settings.io_concurrency),
        WorkerSpec("cpu", "prefork", settings.cpu_concurrency),
    ]


@dataclass
class WorkerProcesses:
    """Start, watch and stop worker subprocesses."""

    settings: Settings
    specs: list[WorkerSpec]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    _next_start: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        for spec in self.specs:
            self._spawn(spec)

    def _spawn(self, spec: WorkerSpec) -> None:
        env = child_environment(self.settings)
        self.processes[spec.key] = subprocess.Popen(
            spec.command(),
            env=env,
            stdout=sys.stderr,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )  # stdout stays clean for the command's own output (replay --json)
        log.info("started %s worker (pid %d)", spec.key, self.processes[spec.key].pid)

    def watch(self) -> None:
        """Restart workers that exited, with a growing delay between restarts."""
        for spec in self.specs:
            proc = self.processes.get(spec.key)
            if proc is None or proc.poll() is None:
                continue
            now = time.monotonic()
            due = self._next_start.get(spec.key)
            if due is None:
                count = self.restarts.get(spec.key, 0)
                delay = RESTART_BACKOFF_S[min(count, len(RESTART_BACKOFF_S) - 1)]
                log.error("%s worker exited with %s; restarting in %.0fs", spec.key,
                          proc.returncode, delay)  # fmt: skip
                self._next_start[spec.key] = now + delay
            elif now >= due:
                del self._next_start[spec.key]
                self.restarts[spec.key] = self.restarts.get(spec.key, 0) + 1
                self._spawn(spec)

    def stop(self, timeout: float) -> None:
        """SIGTERM every worker (warm shutdown), then kill what is still running."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("worker %d did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.wait()


def _die_with_parent() -> None:
    # Own session: a terminal Ctrl-C reaches only us, and we relay one SIGTERM (a second
    # signal would make Celery shut down cold). PDEATHSIG: no orphans if we are killed.
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Service:
    """The all-in-one service around one Redis handle."""

    def __init__(self, settings: Settings, handle: RedisHandle, seed: bool) -> None:
        self.settings = settings.model_copy(update={"redis_url": handle.url})
        self.handle = handle
        self.seed = seed
        self.stop_event = threading.Event()
        self.workers = WorkerProcesses(self.settings, default_specs(self.settings))

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the exit status."""
        from worker.metrics import serve_metrics
        from worker.replay import replay_in_background
        from worker.scheduler import run_scheduler
        from worker.tasks import use_runtime

        self._install_signals()
        rt = Runtime.build(self.settings, self.settings.redis_url or "")
        use_runtime(rt)
        log.info("newswire running: redis %s, data %s", self.handle.url, self.settings.data_dir)
        metrics = serve_metrics(rt)  # before the workers: a taken port stops nothing running
        self.workers.start()
        scheduler = threading.Thread(
            target=run_scheduler,
            args=(rt, self.stop_event, self.settings.feeds_file),
            name="scheduler",
            daemon=True,
        )
        scheduler.start()
        if self.seed:
            replay_in_background(rt, self.stop_event, self.settings.seeds_dir)
        while not self.stop_event.wait(1.0):
            self.workers.watch()
        log.info("stopping: scheduler, then workers, then redis")
        scheduler.join(timeout=10)
        self.workers.stop(self.settings.soft_shutdown_timeout_s + 10)
        if metrics is not None:
            metrics.shutdown()
        rt.close()
        return 0

    def _install_signals(self) -> None:
        def _stop(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
