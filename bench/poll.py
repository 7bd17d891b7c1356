"""Polling throughput: polls per second through the real scheduler and Celery workers.

What runs: an embedded valkey-server, ``--io-workers`` Celery worker processes consuming
only the poll queue (thread pools), the real scheduler loop (claims due feeds in Redis
and enqueues polls), and a feed server in its own process listening on ``--hosts``
loopback addresses (127.0.0.10, .11, ...) so politeness keys spread over hosts.

Two measurements, each after a first (backfill) pass that is reported but not the target:
  (a) ``--feeds`` unchanged feeds answering 304 to If-None-Match: polls/s of the pass;
  (b) ``--changed-feeds`` 50-item feeds whose body changes at every request (one item
      rotates in): each poll downloads, parses 50 items and claims the new one; feeds/s.
Page fetches of new entries are enqueued on the fetch queue, which no worker consumes
here: this measures polling. Also printed: the feed server's CPU seconds (it shares the
two cores), peak RSS of each worker process tree, Redis memory, and then, with every
feed and claim in place, what an operator's reads take: `status`, a metrics scrape,
`feeds list`.

    .venv/bin/python bench/poll.py                      # 20,000 + 1,000 feeds
    .venv/bin/python bench/poll.py --feeds 2000 --changed-feeds 200 --json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.celery_app import configure
from worker.config import Settings
from worker.feeds.registry import feed_id_for
from worker.metrics import exposition
from worker.redis import EmbeddedServer
from worker.runtime import Runtime
from worker.scheduler import run_scheduler
from worker.service import WorkerProcesses, WorkerSpec
from worker.status import collect_status
from worker.tasks import use_runtime
from worker.workerproc import live_roles

ETAG = '"v1"'


def _feed_body(start: int, count: int, feed: str) -> bytes:
    items = "".join(
        f"<item><title>Story {i} of {feed}</title><link>http://news.example/{feed}/{i}</link>"
        f"<guid>{feed}-{i}</guid><description>Summary of story {i}.</description></item>"
        for i in range(start, start + count)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Feed {feed}</title><link>http://news.example/</link>"
        f"<description>bench</description>{items}</channel></rss>"
    ).encode()


def _handler(counts: dict[str, int], lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            kind, _, name = self.path.strip("/").partition("/")
            if kind == "a" and self.headers.get("If-None-Match") == ETAG:
                self._send(304, b"")
            elif kind == "a":
                self._send(200, _feed_body(0, 1, name))
            else:
                with lock:
                    counts[name] = counts.get(name, 0) + 1
                    served = counts[name]
                self._send(200, _feed_body(served, 50, name))

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("ETag", ETAG)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def serve_feeds(hosts: list[str], ports: Any, ready: Any, stop: Any, cpu: Any) -> None:
    """Child process: one threaded server per loopback address; report CPU time at the end."""
    counts: dict[str, int] = {}
    lock = threading.Lock()
    servers = []
    for host in hosts:
        server = ThreadingHTTPServer((host, 0), _handler(counts, lock))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    for i, server in enumerate(servers):
        ports[i] = server.server_address[1]
    ready.set()
    stop.wait()
    times = os.times()
    cpu.value = times.user + times.system


class PeakRss:
    """Sample the RSS of each worker process tree in a thread; keep the peaks."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.peaks = dict.fromkeys(pids, 0)
        self._pids = pids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for name, pid in self._pids.items():
                try:
                    proc = psutil.Process(pid)
                    rss = sum(p.memory_info().rss for p in [proc, *proc.children(True)])
                except psutil.Error:
                    continue
                self.peaks[name] = max(self.peaks[name], rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each process tree (this process: itself only)."""
    used = {}
    for name, pid in pids.items():
        try:
            proc = psutil.Process(pid)
            tree = [proc] if pid == os.getpid() else [proc, *proc.children(recursive=True)]
            used[name] = sum(sum(p.cpu_times()[:2]) for p in tree)
        except psutil.Error:
            used[name] = 0.0
    return used


def _stat(rt: Runtime, name: str) -> int:
    return int(rt.client.hget(rt.keys.stats, name) or 0)


def wait_polls(rt: Runtime, counters: list[str], target: int, timeout: float) -> float:
    """Wait until the counters went up by ``target``; return the seconds it took."""
    start_values = sum(_stat(rt, c) for c in counters)
    started = time.monotonic()
    while sum(_stat(rt, c) for c in counters) - start_values < target:
        if time.monotonic() - started > timeout:
            done = sum(_stat(rt, c) for c in counters) - start_values
            raise RuntimeError(f"only {done}/{target} polls after {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - started


def register(rt: Runtime, urls: list[str]) -> list[str]:
    """Add feeds as an import or the feeds file does; they are left not due (the pass
    makes them due at once)."""
    accepted, refused = rt.registry.add_each((url, [], None) for url in urls)
    assert accepted == len(urls) and not refused, refused[:3]
    ids = [feed_id_for(url) for url in urls]
    rt.client.zadd(rt.keys.feeds_due, dict.fromkeys(ids, time.time() + 10**6))
    return ids


POLL_COUNTERS = ["polls_parsed", "polls_unchanged", "polls_not_modified", "polls_failed"]


def run_pass(rt: Runtime, ids: list[str], timeout: float) -> tuple[float, dict[str, int]]:
    """Make ``ids`` due now; wait until each was polled once, whatever the outcome;
    return polls per second and how many polls ended in each outcome."""
    before = {c: _stat(rt, c) for c in POLL_COUNTERS}
    counting = threading.Event()
    result: list[float] = []

    def waiter() -> None:
        counting.set()
        result.append(wait_polls(rt, POLL_COUNTERS, len(ids), timeout))

    thread = threading.Thread(target=waiter)
    thread.start()
    counting.wait()
    time.sleep(0.05)  # the waiter has read the counters before the feeds become due
    rt.client.zadd(rt.keys.feeds_due, dict.fromkeys(ids, 0))
    thread.join()
    if not result:
        raise RuntimeError("pass did not finish")
    outcomes = {c.removeprefix("polls_"): _stat(rt, c) - before[c] for c in POLL_COUNTERS}
    return len(ids) / result[0], {k: v for k, v in outcomes.items() if v}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=20_000, help="unchanged (304) feeds")
    parser.add_argument("--changed-feeds", type=int, default=1_000, help="changed 50-item feeds")
    parser.add_argument("--hosts", type=int, default=8, help="loopback addresses serving feeds")
    parser.add_argument("--io-workers", type=int, default=4, help="poll worker processes")
    parser.add_argument("--threads", type=int, default=2, help="Celery threads per io worker")
    parser.add_argument("--poll-threads", type=int, default=6, help="poll threads per worker")
    parser.add_argument("--batch", type=int, default=20, help="feeds per poll task")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    hosts = [f"127.0.0.{10 + i}" for i in range(args.hosts)]
    ports, ready, stop, cpu = mp.Array("i", len(hosts)), mp.Event(), mp.Event(), mp.Value("d")
    server = mp.Process(target=serve_feeds, args=(hosts, ports, ready, stop, cpu), daemon=True)
    server.start()
    ready.wait(30)
    origins = [f"http://{h}:{p}" for h, p in zip(hosts, ports, strict=True)]
    tmp = Path(tempfile.mkdtemp(prefix="newswire-bench-poll-"))
    redis_server = EmbeddedServer.start(tmp)
    settings = Settings(
        redis_url=redis_server.url, data_dir=tmp, key_prefix="benchpoll",
        stream_prefix="benchpoll:news", allow_private_hosts=True, feeds_file=None,
        seed_on_start=False, host_concurrency=64, host_delay_s=0.0, scheduler_batch=2000,
        poll_interval_s=86_400, io_concurrency=args.threads, log_level="WARNING",
        unconditional_poll_every=0, poll_threads=args.poll_threads, poll_batch=args.batch,
    )  # fmt: skip
    configure(settings)
    rt = Runtime.build(settings, redis_server.url)
    use_runtime(rt)
    specs = [
        WorkerSpec("poll", "threads", args.threads, name=f"poll{i}") for i in range(args.io_workers)
    ]
    workers = WorkerProcesses(settings, specs)
    stop_scheduler = threading.Event()
    figures: dict[str, Any] = {"feeds_304": args.feeds, "feeds_changed": args.changed_feeds,
                               "hosts": args.hosts, "io_workers": args.io_workers,
                               "threads": args.threads, "poll_threads": args.poll_threads,
                               "batch": args.batch, "cores": os.cpu_count()}  # fmt: skip
    try:
        t0 = time.monotonic()
        a_ids = register(rt, [f"{origins[n % len(origins)]}/a/{n}" for n in range(args.feeds)])
        b_ids = register(
            rt, [f"{origins[n % len(origins)]}/b/{n}" for n in range(args.changed_feeds)]
        )
        figures["register_s"] = round(time.monotonic() - t0, 1)
        workers.start()
        deadline = time.monotonic() + 60
        while "worker-io" not in live_roles(rt) and time.monotonic() < deadline:
            time.sleep(0.2)
        threading.Thread(target=run_scheduler, args=(rt, stop_scheduler), daemon=True).start()
        pids = {key: proc.pid for key, proc in workers.processes.items()}
        measured = {**pids, "feed_server": server.pid, "valkey": redis_server.process.pid,
                    "bench+scheduler": os.getpid()}  # fmt: skip
        with PeakRss(pids) as rss:
            for name, ids in (("a_first_pass", a_ids), ("a_304", a_ids),
                              ("b_first_pass", b_ids), ("b_changed", b_ids)):  # fmt: skip
                before = cpu_seconds(measured)
                rate, outcomes = run_pass(rt, ids, args.timeout)
                after = cpu_seconds(measured)
                figures[f"{name}_polls_per_s"] = round(rate, 1)
                figures[f"{name}_outcomes"] = outcomes
                figures[f"{name}_cpu_ms_per_poll"] = {
                    k: round((after[k] - before[k]) * 1000 / len(ids), 2) for k in measured
                }
        figures["polls_failed"] = _stat(rt, "polls_failed")
        figures["worker_peak_rss_mb"] = {k: round(v / 2**20, 1) for k, v in rss.peaks.items()}
        figures["redis_used_memory_mb"] = round(
            int(rt.client.info("memory")["used_memory"]) / 2**20, 1
        )
        figures.update(operator_reads(rt))
    finally:
        stop_scheduler.set()
        workers.stop(30)
        stop.set()
        server.join(10)
        figures["feed_server_cpu_s"] = round(cpu.value, 1)
        rt.close()
        redis_server.stop()
    print(json.dumps(figures) if args.json else _render(figures))


def operator_reads(rt: Runtime) -> dict[str, Any]:
    """What an operator's reads cost at this size, in ms: `status` (the health check and
    each metrics scrape read the same), one metrics scrape, `feeds list`."""
    figures: dict[str, Any] = {"redis_keys": rt.client.dbsize()}
    reads = {"status_ms": lambda: collect_status(rt), "metrics_scrape_ms": lambda: exposition(rt),
             "feeds_list_ms": rt.registry.all}  # fmt: skip
    for name, read in reads.items():
        started = time.perf_counter()
        read()
        figures[name] = round((time.perf_counter() - started) * 1000)
    return figures


def _render(figures: dict[str, Any]) -> str:
    lines = [f"{key:<28} {value}" for key, value in figures.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
