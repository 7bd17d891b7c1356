"""Replay seed documents through the real pipeline, offline.

Each seed (``seeds/<name>.txt`` plus optional ``<name>.json`` metadata) is served from a
loopback HTTP server as an RSS feed and an article page; the feed is registered, polled
by the workers, its page fetched, extracted, deduplicated and published like any other.
Replaying the same seed again publishes nothing new: its text is an exact duplicate.
"""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from worker.celery_app import queue_names
from worker.dedup.canonical import url_id
from worker.ledger import TERMINAL_STATES, new_token
from worker.runtime import Runtime

log = logging.getLogger(__name__)
DEFAULT_SEEDS = Path("seeds")


@dataclass
class Seed:
    """One seed document and what the fixture says about it."""

    name: str
    text: str
    title: str
    published: str | None = None
    authors: list[str] = field(default_factory=list)
    language: str = "en"

    @classmethod
    def load(cls, path: Path) -> Seed:
        meta_path = path.with_suffix(".json")
        meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        text = path.read_text(encoding="utf-8").strip()
        title = meta.get("title") or text.split("\n", 1)[0][:120]
        return cls(
            path.stem,
            text,
            title,
            meta.get("published"),
            meta.get("authors", []),
            meta.get("language", "en"),
        )

    def page(self) -> bytes:
        """The article page: a plain news-site template around the seed's paragraphs."""
        paragraphs = "\n".join(
            f"<p>{html.escape(p)}</p>" for p in self.text.split("\n") if p.strip()
        )
        byline = ", ".join(self.authors)
        date = (
            f'<meta property="article:published_time" content="{self.published}">'
            if self.published
            else ""
        )
        return f"""<!doctype html>
<html lang="{self.language}"><head><meta charset="utf-8">
<title>{html.escape(self.title)}</title>{date}
<meta name="author" content="{html.escape(byline)}">
</head><body>
<header><nav><a href="/">Home</a> | <a href="/world">World</a></nav></header>
<main><article><h1>{html.escape(self.title)}</h1>
{paragraphs}
</article></main>
<footer><p>newswire seed fixture {html.escape(self.name)}</p></footer>
</body></html>""".encode()


def load_seeds(path: Path) -> list[Seed]:
    """Seeds from a file or every ``*.txt`` in a directory."""
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no seed documents in {path}")
    return [Seed.load(f) for f in files]


class FixtureServer:
    """An HTTP server serving the seeds as one RSS feed plus article pages: on loopback,
    or on ``listen`` and named ``advertise`` in its URLs, for workers in other
    containers (the poll and the page downloads may run in different ones)."""

    def __init__(self, seeds: list[Seed], listen: str = "127.0.0.1", advertise: str = "") -> None:
        self.seeds = seeds
        self.host = advertise or listen
        self._httpd = ThreadingHTTPServer((listen, 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def feed_url(self) -> str:
        return f"http://{self.host}:{self.port}/seeds/feed.xml"

    def article_url(self, seed: Seed) -> str:
        return f"http://{self.host}:{self.port}/seeds/{seed.name}.html"

    def routes(self) -> dict[str, tuple[str, bytes]]:
        pages = {
            f"/seeds/{s.name}.html": ("text/html; charset=utf-8", s.page()) for s in self.seeds
        }
        return {"/seeds/feed.xml": ("application/rss+xml", self._feed()), **pages}

    def _feed(self) -> bytes:
        items = []
        for seed in self.seeds:
            date = ""
            if seed.published:
                stamp = datetime.fromisoformat(seed.published.replace("Z", "+00:00"))
                date = f"<pubDate>{format_datetime(stamp)}</pubDate>"
            items.append(
                f"<item><title>{html.escape(seed.title)}</title>"
                f"<link>{self.article_url(seed)}</link>"
                f'<guid isPermaLink="false">newswire-seed:{seed.name}</guid>{date}</item>'
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>newswire seeds</title><link>http://{self.host}:{self.port}/</link>"
            f"<description>replay fixture</description>{''.join(items)}</channel></rss>"
        ).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = server.routes().get(self.path.split("?", 1)[0])
                if route is None:
                    self.send_error(404)
                    return
                content_type, body = route
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> FixtureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@dataclass
class ReplaySummary:
    """What a replay did, entry by entry and in total."""

    published: int = 0
    duplicates: int = 0
    failed: int = 0
    pending: int = 0
    elapsed_s: float = 0.0
    entries: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def request_poll(rt: Runtime, feed_id: str) -> None:
    """Poll one feed now, whatever its schedule (the token makes it a normal claim)."""
    from worker.tasks import poll_feed

    token = new_token()
    pipe = rt.client.pipeline(transaction=True)
    pipe.hset(rt.keys.feed(feed_id), "poll_token", token)
    pipe.zadd(rt.keys.feeds_due, {feed_id: time.time() + rt.settings.poll_lease_s})
    pipe.execute()
    poll_feed.apply_async((feed_id, token), queue=queue_names(rt.settings).poll)


def replay(
    rt: Runtime,
    path: Path = DEFAULT_SEEDS,
    timeout_s: float = 120.0,
    listen: str = "127.0.0.1",
    advertise: str = "",
) -> ReplaySummary:
    """Serve the seeds (on loopback unless told otherwise), run them through the
    workers, and report outcomes."""
    seeds = load_seeds(path)
    started = time.monotonic()
    with FixtureServer(seeds, listen, advertise) as server:
        rt.allow_origin(server.host, server.port)
        feed = rt.registry.add(server.feed_url, tags=["newswire-seed"])
        try:
            entry_ids = {url_id(server.article_url(s)): server.article_url(s) for s in seeds}
            request_poll(rt, feed.feed_id)
            states = _wait(rt, feed.feed_id, entry_ids, started + timeout_s)
        finally:
            rt.registry.remove(feed.feed_id)  # the fixture feed lives only as long as its server
    return _summarize(states, entry_ids, time.monotonic() - started)


def _wait(
    rt: Runtime, feed_id: str, entry_ids: dict[str, str], deadline: float
) -> dict[str, dict[str, str]]:
    states: dict[str, dict[str, str]] = {}
    while time.monotonic() < deadline:
        states = {eid: rt.ledger.state(eid) for eid in entry_ids}
        if all(s.get("state") in TERMINAL_STATES for s in states.values()):
            break
        feed = rt.registry.get(feed_id)
        if feed is not None and feed.status == "error":
            for eid in entry_ids:
                states.setdefault(eid, {}).update(state="failed", reason=feed.last_error)
            break
        time.sleep(0.1)
    return states


def _summarize(
    states: dict[str, dict[str, str]], entry_ids: dict[str, str], elapsed: float
) -> ReplaySummary:
    summary = ReplaySummary(elapsed_s=round(elapsed, 2))
    for eid, url in entry_ids.items():
        record = states.get(eid, {})
        state = record.get("state", "pending")
        if state == "published":
            summary.published += 1
        elif state in ("duplicate", "unchanged"):
            summary.duplicates += 1
        elif state == "failed":
            summary.failed += 1
        else:
            summary.pending += 1
        summary.entries.append(
            {
                "url": url,
                "state": state,
                "article_id": record.get("article_id", ""),
                "reason": record.get("reason", ""),
            }
        )
    return summary


def replay_in_background(rt: Runtime, stop: threading.Event, path: Path = DEFAULT_SEEDS) -> None:
    """Replay the seeds from a thread of the running service and log the summary."""

    def _run() -> None:
        try:
            summary = replay(rt, path)
            log.info(
                "seed replay: %d published, %d duplicates, %d failed, %d pending (%.1fs)",
                summary.published,
                summary.duplicates,
                summary.failed,
                summary.pending,
                summary.elapsed_s,
            )
        except Exception:
            log.exception("seed replay failed")

    if path.exists():
        threading.Thread(target=_run, name="seed-replay", daemon=True).start()
