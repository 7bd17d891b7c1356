"""End-to-end throughput of the running pipeline, against the extraction limit of the machine.

What is measured, in one run:

1. Pipeline rate. A private embedded valkey (``EmbeddedServer``, temp dir), real worker
   processes (``WorkerProcesses``: an io worker with a thread pool, a cpu worker with a
   prefork pool of ``cores`` processes), and a loopback HTTP server in its own process
   (asyncio, pages pre-loaded in memory, optional per-page delay) listening on
   ``--hosts`` loopback addresses (127.0.0.10, .11, ...), each a host of its own to the
   per-host politeness budget, set by default as DESIGN.md sets it for a benchmark (8
   requests in flight to a host, no delay between starts); the feeds spread over the
   hosts in turn, each feed's pages on its own host. The aeb corpus pages
   (``../shared/corpus/aeb``) are served under ``--feeds`` RSS feeds; a page is served
   under several URLs when more articles than pages are asked for. Identical text under
   two URLs would end as an exact duplicate (``news:duplicates``), so every copy gets a
   unique marker sentence inserted at the end of a paragraph (a long ``<p>``, else the
   end of a long line of the extracted text found verbatim in the HTML); a probe
   extraction checks, page by page, that the marker survives trafilatura (pages where no
   position survives keep their text, and their extra copies end as duplicates). The
   clock runs from the first ``request_poll`` to the moment every entry has ended (the
   stats hash: published + duplicates + unchanged + failed == entries) and the pipeline
   is drained (inflight ZSET and every queue empty). Printed: entries/s (the pipeline
   rate) and published articles/s. entries/s counts every ended entry, because a
   duplicate goes through fetch, extraction, dedup and publishing (to
   ``news:duplicates``) like an article. The marker defeats only the exact-duplicate
   check: with near-duplicate detection on (the default since a70e2c3), the marked
   copies of one corpus page are near-duplicates of its first copy, so expect
   published == distinct corpus pages used and duplicates == the other copies.
2. Physical limit. Before the pipeline starts and again after it stopped, this process
   runs the call the cpu workers make, ``worker.extract.article.extract_page``
   (trafilatura text + metadata), on the served pages (the first ``--limit-pages``,
   decoded by ``decode_html`` beforehand, untimed), one page after the other:
   limit = cores x that single-process rate, averaged over the two passes (the machine
   shares its host and its speed drifts; both passes are printed). Also printed: the rate of
   ``cores`` forked processes running the same list in parallel (what the machine really
   gives when every core extracts), and both rates by CPU time instead of wall time.
   The ratio is pipeline entries/s over the limit; the cpu-time ratio (extract_page CPU
   ms per page over the pipeline's CPU ms per entry, all our processes) is the ceiling
   of that ratio on an idle machine, and is less sensitive to other load.

Also reported: CPU seconds used during the timed window by the HTTP server process, the
valkey server, each worker process tree and this process, and by everything else on the
machine ("others", from /proc/stat: other jobs sharing the cores skew every figure); the
share of each tree's CPU spent in the kernel and its context switches per entry (every
thread counted); the server's time and number of commands per entry, by command
(``--script-times``: per Lua script too); the peak RSS (VmHWM) of every worker process
(io, the cpu pool parent, each pool child) and the RSS of each every second (a long
run, ``--articles 5000``, shows whether it stays flat across trafilatura cache resets and
pool recycling); the outcome counts and whether each published text carries its marker.
When the entries ended, from their stream ids (the server's clock): the first, 10%, 50%,
90% and the last, and the ratio between 10% and 90% of them (``ratio_steady``), which
leaves out the start (feeds parsed, first pages fetched) and the end; a diagnosis, not
the target. Another (``ratio_at_run_pace``): the ratio had the limit passes extracted at
the pace the workers did during the run (extraction and publishing, timed by the workers:
entries/s x their CPU ms a page / cores), the share of the cores' time that went to
extracting and publishing. The host's speed drifts between the passes and the run (the
workers' pace was 0.89 to 1.21 times the passes' in runs of one code, 2026-12-06), and the
ratio follows that drift; this figure does not.
The machine is small and noisy: compare figures of one run, not across runs, or measure
several times (``--repeat N``: each run in a process of its own, then the medians, with
min and max, of the ratios, the rate and extraction's share of the pipeline's CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, cast

import psutil
from common import CORPUS, code_revision

from worker.celery_app import configure, queue_names
from worker.config import WORKER_MALLOC_ENVIRONMENT, Settings
from worker.extract.article import extract_page, release_memory
from worker.fetch.decode import decode_html
from worker.lua import source as lua_source
from worker.redis import EmbeddedServer
from worker.replay import request_poll
from worker.runtime import Runtime
from worker.service import WorkerProcesses, WorkerSpec
from worker.tasks import use_runtime
from worker.workerproc import live_roles

DEFAULT_CORPUS = CORPUS
CONTENT_TYPE = "text/html"  # no charset: decode_html reads <meta> or detects, as for many sites
PROBE_URL = "http://127.0.0.1/probe.html"
_PARAGRAPH = re.compile(rb"<p\b[^>]*>(.*?)</p\s*>", re.S | re.I)
_TAG = re.compile(rb"<[^>]+>")
_TERMINAL = ("published", "duplicates", "unchanged", "failed")
RSS_EVERY_S = 1.0


# --- the pages -----------------------------------------------------------------------


@dataclass(frozen=True)
class BasePage:
    """One corpus page and where a marker can be inserted so that extraction keeps it."""

    page_id: str
    raw: bytes
    anchor: int | None  # byte offset inside a paragraph; None: no position survives


@dataclass(frozen=True)
class Served:
    """One article URL path, its body, and the marker its text must carry (if any)."""

    feed: int  # its feed, whose host serves it
    path: str
    body: bytes
    marker: str | None


def marker_for(feed: int, item: int) -> str:
    return f"nwbench{feed:03d}x{item:04d}"


def insert_marker(raw: bytes, anchor: int, marker: str) -> bytes:
    return raw[:anchor] + f" Newswire benchmark copy {marker}.".encode() + raw[anchor:]


def paragraph_anchors(raw: bytes, count: int = 2) -> list[int]:
    """Offsets just before the ``</p>`` of the ``count`` longest paragraphs."""
    found = [(len(_TAG.sub(b"", m.group(1)).strip()), m.end(1)) for m in _PARAGRAPH.finditer(raw)]
    return [offset for _length, offset in sorted(found, reverse=True)[:count]]


def text_anchors(raw: bytes, count: int = 6) -> Iterator[int]:
    """Offsets just after the end of the longest extracted lines, found verbatim in ``raw``."""
    text = extract_page(decode_html(raw, CONTENT_TYPE), PROBE_URL).text
    for line in sorted(text.splitlines(), key=len, reverse=True)[:count]:
        needle = line.strip()[-24:].encode()
        position = raw.find(needle)
        if len(needle) >= 12 and position >= 0:
            yield position + len(needle)


def probe_anchor(raw: bytes) -> int | None:
    """The first candidate position whose marker survives extraction."""
    for anchor in itertools.chain(paragraph_anchors(raw), text_anchors(raw)):
        html = decode_html(insert_marker(raw, anchor, "nwbprobe"), CONTENT_TYPE)
        if "nwbprobe" in extract_page(html, PROBE_URL).text:
            return anchor
    return None


def load_bases(corpus: Path, count: int) -> list[BasePage]:
    """The first ``count`` aeb pages (sorted by id), decompressed and probed."""
    paths = sorted((corpus / "aeb" / "html").glob("*.html.gz"))[:count]
    bases = []
    for path in paths:
        raw = gzip.decompress(path.read_bytes())
        bases.append(BasePage(path.name.split(".")[0], raw, probe_anchor(raw)))
    return bases


def build_site(bases: list[BasePage], feeds: int, articles: int) -> list[list[Served]]:
    """Pages per feed: article ``n`` is base page ``n % len(bases)``, marked when possible."""
    per_feed = -(-articles // feeds)
    site: list[list[Served]] = []
    for n in range(articles):
        feed, item = divmod(n, per_feed)
        if item == 0:
            site.append([])
        base = bases[n % len(bases)]
        marker = marker_for(feed, item) if base.anchor is not None else None
        body = base.raw if marker is None else insert_marker(base.raw, base.anchor or 0, marker)
        site[feed].append(Served(feed, f"/f{feed:03d}/a{item:04d}.html", body, marker))
    return site


def rss(base_url: str, feed: int, pages: list[Served]) -> bytes:
    items = "".join(
        f"<item><title>Benchmark article {feed}-{i}</title><link>{base_url}{p.path}</link>"
        f'<guid isPermaLink="false">nwbench-{feed}-{i}</guid></item>'
        for i, p in enumerate(pages)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{escape(f'bench feed {feed}')}</title><link>{base_url}/</link>"
        f"<description>newswire benchmark</description>{items}</channel></rss>"
    ).encode()


def feed_path(feed: int) -> str:
    return f"/f{feed:03d}/feed.xml"


def routes_for(site: list[list[Served]], origins: list[str]) -> dict[str, tuple[str, bytes]]:
    """Every path, the same on every host (a feed and its pages name its own host)."""
    routes = {p.path: (CONTENT_TYPE, p.body) for pages in site for p in pages}
    for feed, pages in enumerate(site):
        routes[feed_path(feed)] = ("application/rss+xml", rss(origin(origins, feed), feed, pages))
    return routes


def origin(origins: list[str], feed: int) -> str:
    """The host serving ``feed`` and its pages: feeds spread over the hosts in turn."""
    return origins[feed % len(origins)]


def page_url(origins: list[str], page: Served) -> str:
    return f"{origin(origins, page.feed)}{page.path}"


# --- the loopback HTTP server (its own process) ----------------------------------------


NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def responses_for(routes: dict[str, tuple[str, bytes]]) -> dict[str, bytes]:
    """Each route's whole response, made once in the server process (a copy of every
    page: the server then only writes, one send a response)."""
    return {
        path: f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        for path, (content_type, body) in routes.items()
    }


async def _respond(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    responses: dict[str, bytes],
    delay_s: float,
) -> None:
    """HTTP/1.1 keep-alive: GET only, canned responses, the delay on article pages. Made
    per request, a response copied its ~170 KB page once more, and the server shares
    the cores with the pipeline it serves."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")
            path = target.split("?", 1)[0]
            response = responses.get(path, NOT_FOUND)
            if delay_s and path.endswith(".html"):
                await asyncio.sleep(delay_s)
            writer.write(response)
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, IndexError):
        pass
    finally:
        writer.close()


def _serve(
    socks: list[socket.socket],
    routes: dict[str, tuple[str, bytes]],
    delay_s: float,
    ready: Event,
) -> None:
    responses = responses_for(routes)
    ready.set()

    async def main() -> None:
        servers = [
            await asyncio.start_server(
                lambda r, w: _respond(r, w, responses, delay_s), sock=sock, limit=1 << 16
            )
            for sock in socks
        ]
        await asyncio.gather(*(server.serve_forever() for server in servers))

    asyncio.run(main())


class LoopbackServer:
    """Listening sockets on ``hosts`` loopback addresses (127.0.0.10, .11, ...: each its
    own host to the politeness budget), served by one forked process."""

    def __init__(self, hosts: int) -> None:
        self.socks = [self._listen(f"127.0.0.{10 + i}") for i in range(hosts)]
        self.process: multiprocessing.process.BaseProcess | None = None

    @staticmethod
    def _listen(address: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, 0))
        sock.listen(1024)
        return sock

    @property
    def origins(self) -> list[str]:
        return [f"http://{host}:{port}" for host, port in (s.getsockname() for s in self.socks)]

    def start(self, routes: dict[str, tuple[str, bytes]], delay_s: float) -> int:
        ctx = multiprocessing.get_context("fork")  # routes are inherited, not pickled
        ready = ctx.Event()
        self.process = ctx.Process(
            target=_serve, args=(self.socks, routes, delay_s, ready), daemon=True
        )
        self.process.start()
        if not ready.wait(120):  # its responses made before anything is timed
            raise RuntimeError("the loopback HTTP server did not start")
        return int(self.process.pid or 0)

    def stop_serving(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.join(5)
            self.process = None

    def close(self) -> None:
        self.stop_serving()
        for sock in self.socks:
            sock.close()


# --- process accounting ----------------------------------------------------------------


def tree(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    return []


def processes_cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process, its live descendants, and the children it has reaped
    (a recycled pool child's time moves to its parent's children_user/system)."""
    reaped = 0.0
    with contextlib.suppress(psutil.Error):
        times = psutil.Process(pid).cpu_times()
        reaped = times.children_user + times.children_system
    return processes_cpu_seconds(tree(pid)) + reaped


def context_switches(pid: int) -> int:
    """Context switches of every live thread of a process (its status file counts only the
    main thread's)."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


def kernel_snapshot(trees: dict[str, int]) -> dict[str, tuple[float, int]]:
    """Per process tree: (CPU seconds in the kernel, context switches)."""
    snapshot = {}
    for name, pid in trees.items():
        system, switches = 0.0, 0
        for proc in tree(pid):
            with contextlib.suppress(psutil.Error):
                system += proc.cpu_times().system
                switches += context_switches(proc.pid)
        snapshot[name] = (system, switches)
    return snapshot


def kernel_figures(
    before: dict[str, tuple[float, int]],
    after: dict[str, tuple[float, int]],
    cpu: dict[str, float],
    entries: int,
) -> dict[str, str]:
    """Share of each tree's CPU (``cpu``: its seconds in the window) spent in the kernel,
    and its context switches per entry: a threaded worker whose threads hand the GIL
    back and forth shows both high."""
    figures = {}
    for name, (system, switches) in after.items():
        system0, switches0 = before.get(name, (0.0, 0))
        share = (system - system0) / max(cpu[name], 1e-9)
        figures[name] = f"{share:.0%} kernel, {(switches - switches0) / entries:.0f} switches"
    return figures


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of one process, in MiB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores, idle/iowait excluded)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def wait_quiet(max_wait_s: float, cores_busy: float = 0.15, window_s: float = 3.0) -> bool:
    """Wait (up to ``max_wait_s``) until the machine is nearly idle; return whether it is."""
    deadline = time.monotonic() + max_wait_s
    while True:
        before = machine_busy()
        time.sleep(window_s)
        if (machine_busy() - before) / window_s < cores_busy:
            return True
        if time.monotonic() > deadline:
            print("warning: the machine is busy with other work", file=sys.stderr)
            return False


@dataclass
class Accounts:
    """CPU seconds of our processes over a timed window, and of everything else."""

    trees: dict[str, int] = field(default_factory=dict)  # name: root pid
    groups: dict[str, list[psutil.Process]] = field(default_factory=dict)
    start: dict[str, float] = field(default_factory=dict)

    def snapshot(self) -> dict[str, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "machine": machine_busy(),
            "bench_process": own.ru_utime + own.ru_stime,
            **{name: tree_cpu_seconds(pid) for name, pid in self.trees.items()},
            **{name: processes_cpu_seconds(procs) for name, procs in self.groups.items()},
        }

    def begin(self) -> None:
        self.start = self.snapshot()

    def used(self) -> dict[str, float]:
        """Per group, plus ``others``: what the rest of the machine used meanwhile."""
        delta = {k: v - self.start.get(k, 0.0) for k, v in self.snapshot().items()}
        machine = delta.pop("machine")
        delta["others"] = max(machine - sum(delta.values()), 0.0)
        return {k: round(v, 2) for k, v in delta.items()}


# --- the pipeline run ------------------------------------------------------------------


def bench_settings(redis_url: str, data_dir: Path, args: argparse.Namespace) -> Settings:
    tag = uuid.uuid4().hex[:6]
    extra: dict[str, Any] = {"io_concurrency": args.io_concurrency} if args.io_concurrency else {}
    if args.processes:
        extra["cpu_concurrency"] = args.processes
    if args.article_path:
        extra["article_path"] = args.article_path
    return Settings(
        redis_url=redis_url,
        data_dir=data_dir,
        key_prefix=f"bench{tag}",
        stream_prefix=f"bench{tag}:news",
        allow_private_hosts=True,
        host_concurrency=args.host_concurrency,
        host_delay_s=args.host_delay_s,
        feeds_file=None,
        seed_on_start=False,
        **{"cpu_concurrency": args.cores, **extra},
    )


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Point fd 2 at ``path`` while workers are spawned (they inherit it for their logs)."""
    saved = os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def start_workers(rt: Runtime, settings: Settings, log: Path) -> WorkerProcesses:
    specs = [
        WorkerSpec("io", "threads", settings.io_concurrency),
        WorkerSpec("cpu", "prefork", settings.cpu_concurrency),
    ]
    procs = WorkerProcesses(settings, specs)
    with stderr_to(log):
        procs.start()
    deadline = time.monotonic() + 90
    while not {"worker-io", "worker-cpu"} <= live_roles(rt):
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers did not become ready; see {log}")
        time.sleep(0.1)
    return procs


def ended(rt: Runtime) -> int:
    counts = rt.client.hmget(rt.keys.stats, list(_TERMINAL))
    return sum(int(c or 0) for c in counts)


def extraction_cpu(rt: Runtime) -> float:
    """CPU ms a page took inside the extraction processes (article document and publish,
    the workers' own count): against extract_page in the limit pass, what running among
    the other processes costs trafilatura, apart from what the pipeline adds."""
    pages, cpu_ms = rt.client.hmget(rt.keys.stats, ["extractions", "extraction_cpu_ms"])
    return round(int(cpu_ms or 0) / max(int(pages or 0), 1), 1)


def idle(rt: Runtime) -> bool:
    queues = queue_names(rt.settings)
    return rt.client.zcard(rt.keys.inflight) == 0 and all(rt.client.llen(q) == 0 for q in queues)


def rss_mb(pid: int) -> float:
    with contextlib.suppress(psutil.Error):
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    return 0.0


def rss_sample(rt: Runtime, procs: WorkerProcesses, started: float) -> dict[str, Any]:
    """Resident memory now: the io worker, the cpu pool parent, and its largest child;
    with the tasks waiting in the poll/fetch/extract queues (where the backlog is)."""
    sample: dict[str, Any] = {"s": round(time.monotonic() - started, 1), "ended": ended(rt)}
    names = queue_names(rt.settings)
    sample["queued"] = "/".join(str(rt.client.llen(q)) for q in names)
    sample["pages_waiting"] = rt.ledger.pages_waiting()
    for role, popen in procs.processes.items():
        sample[role] = rss_mb(popen.pid)
        children = [rss_mb(p.pid) for p in tree(popen.pid)[1:]]
        if children:
            sample[f"{role}_child_max"] = max(children)
    return sample


def run_until_done(
    rt: Runtime, procs: WorkerProcesses, feed_ids: list[str], entries: int, timeout_s: float
) -> tuple[float, float, list[dict[str, Any]]]:
    """Poll every feed now; wait until all entries ended and the pipeline drained.
    Returns when it started (epoch seconds), the seconds it took, and a memory sample
    every RSS_EVERY_S."""
    started, started_wall = time.monotonic(), time.time()
    for feed_id in feed_ids:
        request_poll(rt, feed_id)
    deadline = started + timeout_s
    samples = [rss_sample(rt, procs, started)]
    while not (ended(rt) >= entries and idle(rt)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{ended(rt)} of {entries} entries ended in {timeout_s:.0f}s")
        if time.monotonic() - started - samples[-1]["s"] >= RSS_EVERY_S:
            samples.append(rss_sample(rt, procs, started))
        time.sleep(0.1)  # an end found up to 0.1 s late: <1% of a run of 10 s or more
    elapsed = time.monotonic() - started
    samples.append(rss_sample(rt, procs, started))
    return started_wall, elapsed, samples


def stream_entries(rt: Runtime, stream: str) -> list[tuple[str, dict[str, str]]]:
    """Every entry of a stream (the client decodes responses to str)."""
    return cast(list[tuple[str, dict[str, str]]], rt.client.xrange(stream, "-", "+"))


def outcomes(rt: Runtime, site: list[list[Served]], origins: list[str]) -> dict[str, Any]:
    """Outcome counts, dead-letter reasons, and marker checks of published texts."""
    stats = rt.client.hgetall(rt.keys.stats)
    expected = {page_url(origins, p): p.marker for pages in site for p in pages}
    marked = unmarked = 0
    for _sid, fields in stream_entries(rt, rt.keys.articles):
        message = json.loads(fields["data"])
        marker = expected.get(message["url"])
        if marker is not None:
            if marker in message["text"]:
                marked += 1
            else:
                unmarked += 1
    reasons = Counter(f["reason"] for _sid, f in stream_entries(rt, rt.keys.deadletter))
    return {
        **{name: int(stats.get(name, 0)) for name in _TERMINAL},
        "articles_stream": rt.client.xlen(rt.keys.articles),
        "duplicates_stream": rt.client.xlen(rt.keys.duplicates),
        "deadletter_reasons": dict(reasons),
        "published_with_marker": marked,
        "published_marker_missing": unmarked,
    }


def timeline(rt: Runtime, started_wall: float, elapsed: float) -> dict[str, float]:
    """When entries ended (their stream ids are the server's clock in ms), in seconds
    from the first poll: the first, 10%, 50%, 90%, the last; and the rate between 10%
    and 90%, the steady state without the start (feeds parsed, first pages fetched)
    and the end (the last pages of one process while the other has none); and how many
    ended in each of the first and the last eight half seconds."""
    ms = sorted(
        int(sid.split("-")[0])
        for stream in (rt.keys.articles, rt.keys.duplicates, rt.keys.deadletter)
        for sid, _fields in stream_entries(rt, stream)
    )
    if len(ms) < 10:
        return {}
    at = [(m / 1000 - started_wall) for m in ms]
    low, high = at[len(at) // 10], at[len(at) * 9 // 10]
    return {
        "first_s": round(at[0], 2),
        "p10_s": round(low, 2),
        "p50_s": round(at[len(at) // 2], 2),
        "p90_s": round(high, 2),
        "last_s": round(at[-1], 2),
        "drained_s": round(elapsed, 2),
        "steady_entries_per_s": round(
            (len(at) * 9 // 10 - len(at) // 10) / max(high - low, 1e-3), 2
        ),
        "ended_each_half_second_at_start": [
            sum(start <= t < start + 0.5 for t in at) for start in (i / 2 for i in range(8))
        ],
        "ended_each_half_second_at_end": [
            sum(end - 0.5 < t <= end for t in at)
            for end in (at[-1] - i / 2 for i in range(7, -1, -1))
        ],
    }


def valkey_time(rt: Runtime, entries: int, top: int = 8) -> dict[str, float]:
    """Microseconds per entry the server spent in each of its busiest commands."""
    stats = cast(dict[str, dict[str, Any]], rt.client.info("commandstats"))
    usec = {name.removeprefix("cmdstat_"): float(s["usec"]) for name, s in stats.items()}
    busiest = sorted(usec.items(), key=lambda item: -item[1])[:top]
    return {name: round(us / entries, 1) for name, us in busiest}


def valkey_calls(rt: Runtime, entries: int, top: int = 12) -> dict[str, float]:
    """Commands per entry the server ran, by command: every call is a round trip or a
    step of a script, and the server's own cost is mostly in their number."""
    stats = cast(dict[str, dict[str, Any]], rt.client.info("commandstats"))
    calls = {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}
    busiest = sorted(calls.items(), key=lambda item: -item[1])[:top]
    per = {name: round(n / entries, 2) for name, n in busiest}
    return {"total": round(sum(calls.values()) / entries, 1), **per}


def log_every_command(rt: Runtime) -> None:
    """Have the server's slow log keep every command, to time each Lua script."""
    rt.client.config_set("slowlog-log-slower-than", 0)
    rt.client.config_set("slowlog-max-len", 1_000_000)


def script_time(rt: Runtime, entries: int) -> dict[str, float]:
    """Microseconds per entry spent in each Lua script (from the slow log)."""
    lua = resources.files("worker.lua")
    names = {
        hashlib.sha1(lua_source(path.name[:-4]).encode()).hexdigest(): path.name[:-4]
        for path in lua.iterdir()
        if path.name.endswith(".lua")
    }
    usec: Counter[str] = Counter()
    for record in rt.client.slowlog_get(1_000_000):
        raw = record["command"]  # bytes even when the client decodes responses
        command = (raw.decode("latin-1") if isinstance(raw, bytes) else raw).split(" ", 2)
        if command[0].upper() == "EVALSHA" and len(command) > 1:
            usec[names.get(command[1], command[1])] += record["duration"]
    return {name: round(us / entries, 1) for name, us in usec.most_common()}


def register(rt: Runtime, origins: list[str], feeds: int) -> list[str]:
    return [rt.registry.add(f"{origin(origins, f)}{feed_path(f)}").feed_id for f in range(feeds)]


def cpu_per_entry(cpu: dict[str, float], entries: int) -> dict[str, float]:
    """Milliseconds of CPU per entry, by process group and for all of ours."""
    ours = {k: v for k, v in cpu.items() if k != "others"}
    per = {k: round(v * 1000 / entries, 1) for k, v in ours.items()}
    per["total"] = round(sum(ours.values()) * 1000 / entries, 1)
    return per


def worker_memory(procs: WorkerProcesses) -> dict[str, float]:
    peaks: dict[str, float] = {}
    for role, popen in procs.processes.items():
        for i, proc in enumerate(tree(popen.pid)):
            name = role if i == 0 else f"{role}-child{i}"
            peaks[f"{name} (pid {proc.pid})"] = peak_rss_mb(proc.pid)
    return peaks


def pipeline(
    args: argparse.Namespace, site: list[list[Served]], workdir: Path, http: LoopbackServer
) -> dict[str, Any]:
    """Serve, start valkey and workers, ingest every feed once; return the figures."""
    origins = http.origins
    http_pid = http.start(routes_for(site, origins), args.delay_ms / 1000)
    redis_server = EmbeddedServer.start(workdir)
    procs: WorkerProcesses | None = None
    try:
        settings = bench_settings(redis_server.url, workdir / "data", args)
        configure(settings)
        rt = Runtime.build(settings, redis_server.url)
        use_runtime(rt)
        procs = start_workers(rt, settings, workdir / "workers.log")
        if args.script_times:
            log_every_command(rt)
        feed_ids = register(rt, origins, len(site))
        accounts = Accounts(
            {
                "http_server": http_pid,
                "valkey": redis_server.process.pid,
                **{f"worker_{role}": p.pid for role, p in procs.processes.items()},
            }
        )
        accounts.begin()
        kernel_before = kernel_snapshot(accounts.trees)
        entries = sum(len(pages) for pages in site)
        started_wall, elapsed, rss_samples = run_until_done(
            rt, procs, feed_ids, entries, args.timeout
        )
        cpu = accounts.used()
        kernel = kernel_figures(kernel_before, kernel_snapshot(accounts.trees), cpu, entries)
        figures = {
            "entries": entries,
            "hosts": len(origins),
            "host_concurrency": settings.host_concurrency,
            "host_delay_s": settings.host_delay_s,
            "elapsed_s": round(elapsed, 2),
            "entries_per_s": round(entries / elapsed, 2),
            "io_concurrency": settings.io_concurrency,
            "cpu_concurrency": settings.cpu_concurrency,
            "article_path": settings.article_path,
            "cpu_seconds": cpu,
            "cpu_available_s": round(elapsed * (os.cpu_count() or 1), 2),
            "peak_rss_mb": worker_memory(procs),
            "rss_samples": rss_samples,
            **outcomes(rt, site, origins),
        }
        figures["articles_per_s"] = round(figures["published"] / elapsed, 2)
        figures["cpu_ms_per_entry"] = cpu_per_entry(cpu, entries)
        figures["kernel_per_entry"] = kernel
        figures["extraction_cpu_ms_per_page"] = extraction_cpu(rt)
        figures["extraction_share"] = round(
            figures["extraction_cpu_ms_per_page"] / figures["cpu_ms_per_entry"]["total"], 3
        )
        figures["timeline"] = timeline(rt, started_wall, elapsed)
        figures["valkey_us_per_entry"] = valkey_time(rt, entries)
        figures["valkey_calls_per_entry"] = valkey_calls(rt, entries)

        if args.script_times:
            figures["script_us_per_entry"] = script_time(rt, entries)
        rt.close()
        return figures
    finally:
        if procs is not None:
            procs.stop(30)
        redis_server.stop()
        http.stop_serving()


# --- the physical limit ----------------------------------------------------------------

_PAGES: list[tuple[str, str]] = []  # (html, url), inherited by forked pool processes


def _extract_one(index: int) -> int:
    html, url = _PAGES[index]
    return len(extract_page(html, url).text)


def timed_single(count: int) -> tuple[float, dict[str, float]]:
    """Extract pages 0..count-1 here, one after the other: (seconds, CPU accounts)."""
    accounts = Accounts()
    accounts.begin()
    started = time.perf_counter()
    for index in range(count):
        _extract_one(index)
    return time.perf_counter() - started, accounts.used()


def timed_parallel(count: int, cores: int) -> tuple[float, dict[str, float]]:
    """Extract pages 0..count-1 in ``cores`` forked processes: (seconds, CPU accounts)."""
    with multiprocessing.get_context("fork").Pool(cores) as pool:
        pool.map(_extract_one, range(cores))  # every process started and warm
        accounts = Accounts(groups={"pool": psutil.Process().children()})
        accounts.begin()
        started = time.perf_counter()
        pool.map(_extract_one, range(count), chunksize=1)
        return time.perf_counter() - started, accounts.used()


def extraction_limit(site: list[list[Served]], origins: list[str], cores: int) -> dict[str, Any]:
    """Single-process extract_page rate on the served pages, and ``cores`` processes' rate.

    Rates by wall time, and by CPU time (pages / CPU seconds of the extracting
    processes: what one process gives with a core to itself, whatever else runs).
    trafilatura's caches are emptied before each timed pass (worker children start cold).
    """
    _PAGES[:] = [
        (decode_html(p.body, CONTENT_TYPE), page_url(origins, p)) for pages in site for p in pages
    ]
    count = len(_PAGES)
    _extract_one(0)  # lazy imports
    release_memory()
    single_s, single_cpu = timed_single(count)
    release_memory()
    parallel_s, parallel_cpu = timed_parallel(count, cores)
    single_rate = count / single_s
    cpu_rate = count / max(single_cpu["bench_process"], 1e-9)
    return {
        "single_process_pages_per_s": round(single_rate, 2),
        "limit_pages_per_s": round(single_rate * cores, 2),
        "parallel_pages_per_s": round(count / parallel_s, 2),
        "single_process_cpu_pages_per_s": round(cpu_rate, 2),
        "limit_cpu_pages_per_s": round(cpu_rate * cores, 2),
        "extract_cpu_ms_per_page": round(1000 / cpu_rate, 1),
        "parallel_cpu_ms_per_page": round(parallel_cpu["pool"] * 1000 / count, 1),
        "single_cpu_seconds": single_cpu,
        "parallel_cpu_seconds": parallel_cpu,
    }


# --- command line ----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--articles",
        type=int,
        default=2000,
        help="entries in the run (~40 s here: the first poll and the last batch, ~1.5 s, "
        "weigh a sixth of a 500-entry run)",
    )
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="per-page response delay")
    parser.add_argument(
        "--hosts", type=int, default=8, help="loopback addresses the feeds spread over"
    )
    parser.add_argument(
        "--host-concurrency",
        type=int,
        default=8,
        help="requests in flight to one host (NEWSWIRE_HOST_CONCURRENCY; DESIGN.md: 8)",
    )
    parser.add_argument(
        "--host-delay-s",
        type=float,
        default=0.0,
        help="seconds between request starts to one host (NEWSWIRE_HOST_DELAY_S; DESIGN.md: 0)",
    )
    parser.add_argument(
        "--cores", type=int, default=os.cpu_count() or 1, help="cores the limit counts"
    )
    parser.add_argument(
        "--processes", type=int, default=None, help="extraction processes (default: --cores)"
    )
    parser.add_argument(
        "--article-path", choices=["fused", "split"], default=None, help="default: settings"
    )
    parser.add_argument("--io-concurrency", type=int, default=None, help="default: settings")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the run")
    parser.add_argument(
        "--limit-pages", type=int, default=724, help="served pages the limit is measured on"
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, help="wait up to S seconds for an idle machine"
    )
    parser.add_argument(
        "--script-times", action="store_true", help="time each Lua script (server slow log)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (worker log)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure N times, then print the medians"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object a run")
    return parser.parse_args(argv)


def report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    report_pipeline(result)
    report_limit(result["limit"], result["cores"])
    print(f"  the limit passes ran, as the workers do, under {result['malloc']}")
    print(
        "  one process, before / after the pipeline: "
        f"{result['limit_before']['single_process_pages_per_s']} / "
        f"{result['limit_after']['single_process_pages_per_s']} pages/s"
    )
    report_noise(result)
    print(
        f"ratio pipeline/limit: {result['ratio']} (vs measured {result['cores']} processes: "
        f"{result['ratio_parallel']}; cpu-time ratio, extraction ms per page / pipeline ms "
        f"per entry: {result['ratio_cpu']}; between 10% and 90% of the entries, without "
        f"start and end: {result['ratio_steady']}; at the pace extraction ran in the "
        f"workers, not in the limit passes: {result['ratio_at_run_pace']})"
    )


def report_pipeline(result: dict[str, Any]) -> None:
    run = result["pipeline"]
    print(
        f"code {result['revision']}, delay {result['delay_ms']:.0f} ms, {run['entries']} "
        f"entries in {result['feeds']} feeds on {run['hosts']} hosts (at most "
        f"{run['host_concurrency']} requests in flight to each, {run['host_delay_s']} s "
        f"between starts), io threads {run['io_concurrency']}, "
        f"cpu processes {run['cpu_concurrency']}, {run['article_path']} article path"
    )
    print(
        f"pipeline: {run['elapsed_s']} s, {run['entries_per_s']} entries/s, "
        f"{run['articles_per_s']} published articles/s"
    )
    print(
        "  outcomes: "
        + ", ".join(f"{k} {run[k]}" for k in _TERMINAL)
        + f"; dead letters {run['deadletter_reasons']}; {run['published_with_marker']} "
        f"texts carry their marker, {run['published_marker_missing']} miss it "
        f"({result['unmarkable_pages']} corpus pages unmarkable)"
    )
    print(f"  cpu s in the window ({run['cpu_available_s']} available): {run['cpu_seconds']}")
    print(f"  cpu ms per entry: {run['cpu_ms_per_entry']}")
    print(f"  kernel share of CPU, context switches per entry: {run['kernel_per_entry']}")
    print(
        f"  extraction and publishing, timed by the workers: "
        f"{run['extraction_cpu_ms_per_page']} ms CPU a page, "
        f"{run['extraction_share']:.0%} of the pipeline's"
    )
    print(f"  entries ended by (s from the first poll): {run['timeline']}")
    print(f"  valkey us per entry by command: {run['valkey_us_per_entry']}")
    print(f"  valkey calls per entry by command: {run['valkey_calls_per_entry']}")
    if "script_us_per_entry" in run:
        print(f"  valkey us per entry by Lua script: {run['script_us_per_entry']}")
    print(f"  peak RSS MiB: {run['peak_rss_mb']}")
    report_memory(run["rss_samples"])


def report_memory(samples: list[dict[str, Any]], rows: int = 6) -> None:
    """RSS over the run (a few samples, evenly spaced, and the last): flat or growing?"""
    step = max(len(samples) // rows, 1)
    picked = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    print("  RSS MiB over the run (s, entries ended, per process):")
    for sample in picked:
        rest = ", ".join(f"{k} {v}" for k, v in sample.items() if k not in ("s", "ended"))
        print(f"    {sample['s']:>6} s {sample['ended']:>6}: {rest}")


def report_limit(limit: dict[str, Any], cores: int) -> None:
    print(
        f"limit (wall): {limit['single_process_pages_per_s']} pages/s in one process x {cores}"
        f" = {limit['limit_pages_per_s']}; {cores} processes measured "
        f"{limit['parallel_pages_per_s']}"
    )
    print(
        f"limit (cpu time): {limit['extract_cpu_ms_per_page']} ms/page -> "
        f"{limit['single_process_cpu_pages_per_s']} pages/s per core x {cores} = "
        f"{limit['limit_cpu_pages_per_s']}; pool {limit['parallel_cpu_ms_per_page']} ms/page"
    )
    print(
        f"  cpu s: one process {limit['single_cpu_seconds']}; "
        f"{cores} processes {limit['parallel_cpu_seconds']}"
    )


def report_noise(result: dict[str, Any]) -> None:
    """Warn when other work on the machine took a visible share of a timed window."""
    limit, cores = result["limit"], result["cores"]
    for phase, cpu in (
        ("pipeline", result["pipeline"]["cpu_seconds"]),
        ("one-process limit", limit["single_cpu_seconds"]),
        (f"{cores}-process limit", limit["parallel_cpu_seconds"]),
    ):
        share = cpu["others"] / max(sum(cpu.values()), 1e-9)
        if share > 0.1:
            print(f"  WARNING: other work took {share:.0%} of the busy CPU during the {phase}")


def quiet(args: argparse.Namespace) -> None:
    if args.wait_quiet:
        wait_quiet(args.wait_quiet)


def limit_pages(site: list[list[Served]], count: int) -> list[list[Served]]:
    """The first ``count`` served pages (every corpus page, 4 times over, by default):
    the limit of a long run is measured on a sample of what it served."""
    pages = [page for feed in site for page in feed][:count]
    return [pages]


def average_limits(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Rates and milliseconds averaged over the two passes; CPU accounts summed."""
    limit: dict[str, Any] = {}
    for key, value in before.items():
        if isinstance(value, dict):
            limit[key] = {k: round(v + after[key].get(k, 0.0), 2) for k, v in value.items()}
        else:
            limit[key] = round((value + after[key]) / 2, 2)
    return limit


def measure(
    args: argparse.Namespace, site: list[list[Served]], bases: list[BasePage], http: LoopbackServer
) -> dict[str, Any]:
    """One measurement: the limit, the pipeline, the limit again; the ratios."""
    workdir = Path(tempfile.mkdtemp(prefix="newswire-bench-"))
    limit_site = limit_pages(site, args.limit_pages)
    try:
        # The limit is measured before and after the pipeline, and averaged: the
        # machine's speed drifts (it shares its host), and a drift would otherwise
        # land on one side of the ratio only.
        quiet(args)
        before = extraction_limit(limit_site, http.origins, args.cores)
        quiet(args)
        run = pipeline(args, site, workdir, http)
        quiet(args)
        after = extraction_limit(limit_site, http.origins, args.cores)
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    limit = average_limits(before, after)
    return {
        "revision": code_revision(),
        "delay_ms": args.delay_ms,
        "feeds": len(site),
        "cores": args.cores,
        "unmarkable_pages": sum(b.anchor is None for b in bases),
        "malloc": " ".join(f"{k}={os.environ[k]}" for k in sorted(WORKER_MALLOC_ENVIRONMENT)),
        "pipeline": run,
        "limit": limit,
        "limit_before": before,
        "limit_after": after,
        "ratio": round(run["entries_per_s"] / limit["limit_pages_per_s"], 3),
        "ratio_parallel": round(run["entries_per_s"] / limit["parallel_pages_per_s"], 3),
        "ratio_cpu": round(limit["extract_cpu_ms_per_page"] / run["cpu_ms_per_entry"]["total"], 3),
        "ratio_steady": round(
            run["timeline"].get("steady_entries_per_s", 0.0) / limit["limit_pages_per_s"], 3
        ),
        "ratio_at_run_pace": round(
            run["entries_per_s"] * run["extraction_cpu_ms_per_page"] / (1000 * args.cores), 3
        ),
    }


def medians(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of several runs that matter most, as median (min-max): on a shared
    host single runs swing by 15% or more."""

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.3g} ({min(values):.3g}-{max(values):.3g})"

    runs = [r["pipeline"] for r in results]
    return {
        "runs": len(results),
        "ratio": spread([r["ratio"] for r in results]),
        "ratio_cpu": spread([r["ratio_cpu"] for r in results]),
        "ratio_steady": spread([r["ratio_steady"] for r in results]),
        "ratio_at_run_pace": spread([r["ratio_at_run_pace"] for r in results]),
        "entries_per_s": spread([run["entries_per_s"] for run in runs]),
        "extraction_share": spread([run["extraction_share"] for run in runs]),
    }


def repeated(argv: list[str], args: argparse.Namespace) -> int:
    """Measure ``--repeat`` times, each in a process of its own (the Celery app of a
    process keeps its first broker), then print every run and the medians."""
    results = []
    for _ in range(args.repeat):
        done = subprocess.run(
            [sys.executable, __file__, *argv, "--repeat", "1", "--json"],
            stdout=subprocess.PIPE, text=True, check=True,
        )  # fmt: skip
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        report(results[-1], args.json)
    summary = medians(results)
    if args.json:
        print(json.dumps({"medians": summary}))
    else:
        print("medians over the runs (min-max): " + ", ".join(
            f"{k} {v}" for k, v in summary.items() if k != "runs"))  # fmt: skip
    return 0


def under_workers_malloc(argv: list[str]) -> None:
    """Run this script again under the malloc settings that worker processes get, unless
    it runs under them already: glibc reads them at process start, and the limit passes
    must run trafilatura as the workers do. Those settings make a page ~3% faster
    (20.3-20.4 against 20.9-21.1 ms, a single-process loop over 120 corpus pages, three
    alternations): a limit measured without them flattered the pipeline by as much."""
    missing = {k: v for k, v in WORKER_MALLOC_ENVIRONMENT.items() if k not in os.environ}
    if missing:
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, __file__, *argv], {**os.environ, **missing})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    under_workers_malloc(argv)
    args = parse_args(argv)
    if args.repeat > 1:
        return repeated(argv, args)
    bases = load_bases(args.corpus, min(args.articles, 181))
    site = build_site(bases, args.feeds, args.articles)
    http = LoopbackServer(args.hosts)
    try:
        result = measure(args, site, bases, http)
    finally:
        http.close()
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
