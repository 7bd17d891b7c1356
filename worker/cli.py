"""The command line. Each command is a few lines over the modules that do the work."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from worker.config import Settings, load_settings, use_config_file
from worker.observability import setup_logging
from worker.redis import RedisHandle, open_redis
from worker.runtime import Runtime


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="YAML settings file (default: config/newswire.yaml, or NEWSWIRE_CONFIG).",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """newswire: feeds in, one clean deduplicated event per article out (Redis Streams)."""
    if config_path is not None:
        use_config_file(config_path)
    settings = load_settings()
    setup_logging(settings.log_level)
    ctx.obj = settings


@contextlib.contextmanager
def runtime_for(
    settings: Settings, adopt: bool = False, attach_only: bool = False
) -> Iterator[tuple[Runtime, RedisHandle]]:
    """Open Redis (attach, own or external), configure Celery, and build a Runtime."""
    from worker.celery_app import configure
    from worker.tasks import use_runtime

    handle = open_redis(settings.redis_url, settings.data_dir, adopt, attach_only)
    try:
        settings = settings.model_copy(update={"redis_url": handle.url})
        configure(settings)
        rt = Runtime.build(settings, handle.url)
        use_runtime(rt)
        try:
            yield rt, handle
        finally:
            rt.close()
    finally:
        handle.close()


@main.command()
@click.option(
    "--seed/--no-seed", default=None, help="Replay seeds/ once started (default: seed_on_start)."
)
@click.pass_obj
def run(settings: Settings, seed: bool | None) -> None:
    """Run everything: Redis (embedded if none configured), workers, scheduler."""
    from worker.metrics import MetricsUnavailable
    from worker.service import Service

    with runtime_for(settings, adopt=True) as (_rt, handle):
        service = Service(settings, handle, settings.seed_on_start if seed is None else seed)
        try:
            exit_status = service.run()
        except MetricsUnavailable as exc:
            raise click.ClickException(str(exc)) from None
    sys.exit(exit_status)


@main.command()
@click.option(
    "--role",
    type=click.Choice(["io", "cpu", "poll", "fetch", "all"]),
    default="all",
    help="io: feed polls and page fetches; cpu: extraction; poll, fetch: one I/O queue only; "
    "all: every queue.",
)
@click.option(
    "--pool", default=None, help="Celery pool (default: threads for io, prefork otherwise)."
)
@click.option("--concurrency", type=int, default=None)
@click.pass_obj
def worker(settings: Settings, role: str, pool: str | None, concurrency: int | None) -> None:
    """Run one Celery worker process (deployments run several, on several machines)."""
    from worker.workerproc import run_worker

    with runtime_for(settings) as (rt, _handle):
        run_worker(rt, role, pool, concurrency)


@main.command()
@click.pass_obj
def scheduler(settings: Settings) -> None:
    """Run the scheduler alone: claims due feeds, enqueues polls, sweeps expired leases."""
    import signal

    from worker.metrics import MetricsUnavailable, serve_metrics
    from worker.scheduler import run_scheduler

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with runtime_for(settings) as (rt, _handle):
        try:
            metrics = serve_metrics(rt)
        except MetricsUnavailable as exc:
            raise click.ClickException(str(exc)) from None
        run_scheduler(rt, stop, settings.feeds_file)
        if metrics is not None:
            metrics.shutdown()


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=Path("seeds"))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--timeout", type=float, default=120.0, show_default=True)
@click.option(
    "--listen",
    default="127.0.0.1",
    show_default=True,
    help="Address the fixture server listens on (0.0.0.0: workers in other containers).",
)
@click.option(
    "--advertise",
    default="",
    help="Host name the feed and pages are served under (default: the --listen address).",
)
@click.pass_obj
def replay(
    settings: Settings, path: Path, as_json: bool, timeout: float, listen: str, advertise: str
) -> None:
    """Replay seed documents through the real pipeline (offline: the fixture server runs
    here; by default on loopback, so the workers must run on this machine)."""
    from worker.replay import replay as run_replay
    from worker.workerproc import workers_for

    with runtime_for(settings) as (rt, _handle), workers_for(rt):
        summary = run_replay(rt, path, timeout, listen, advertise)
    if as_json:
        click.echo(summary.as_json())
    else:
        click.echo(
            f"published {summary.published}, duplicates {summary.duplicates}, "
            f"failed {summary.failed}, pending {summary.pending} ({summary.elapsed_s}s)"
        )
        for entry in summary.entries:
            click.echo(f"  {entry['state']:<10} {entry['url']} {entry['reason']}")
    sys.exit(0 if summary.failed == 0 and summary.pending == 0 else 1)


@main.command()
@click.option(
    "--stream",
    type=click.Choice(["articles", "duplicates", "deadletter"]),
    default="articles",
    show_default=True,
)
@click.option("--group", default=None, help="Read through this consumer group (acknowledging).")
@click.option(
    "--consumer", default=None, help="Consumer name within the group (default: the host name)."
)
@click.option("--count", type=int, default=None, help="Stop after this many entries.")
@click.option("--no-wait", is_flag=True, help="Stop at the end of the stream instead of waiting.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document per line.")
@click.pass_obj
def consume(
    settings: Settings,
    stream: str,
    group: str | None,
    consumer: str | None,
    count: int | None,
    no_wait: bool,
    as_json: bool,
) -> None:
    """Print stream entries, from the start or through a consumer group."""
    import socket

    from worker.publish.consumer import consume_stream

    with runtime_for(settings) as (rt, _handle):
        name = getattr(rt.keys, stream)
        reader = consume_stream(
            rt.client,
            name,
            group,
            consumer or socket.gethostname(),  # stable: a restart re-reads its own pending
            count,
            wait=not no_wait,
            deadletter=rt.keys.deadletter,
        )
        for sid, message in reader:
            click.echo(json.dumps(message, ensure_ascii=False) if as_json else _line(sid, message))


def _line(sid: str, message: dict[str, Any]) -> str:
    if "reason" in message and "kind" in message:
        return f"{sid} {message['kind']} {message['reason']} {message['url']} {message['detail']}"
    extra = f" duplicate_of={message['duplicate_of']}" if "duplicate_of" in message else ""
    revision = message.get("revision", 1)
    return f"{sid} {message['id']} r{revision} {message.get('title')} <{message['url']}>{extra}"


@main.group()
def deadletter() -> None:
    """Dead-lettered entries (list them with `consume --stream deadletter`)."""


@deadletter.command("retry")
@click.option("--reason", "reasons", multiple=True, help="Retry entries failed for this reason.")
@click.option("--all", "every_reason", is_flag=True, help="Retry whatever the reason.")
@click.option("--since", default=None, help="Dead-lettered since: 90m, 6h, 2d, or a date.")
@click.option("--dry-run", is_flag=True, help="Count what would be retried; change nothing.")
@click.pass_obj
def deadletter_retry(
    settings: Settings,
    reasons: tuple[str, ...],
    every_reason: bool,
    since: str | None,
    dry_run: bool,
) -> None:
    """Give failed entries another go once their cause is fixed (e.g. --reason http_503
    after a site's outage): the running service's sweeper fetches and extracts them again,
    attempts starting over."""
    from worker.deadletters import retry_dead_letters, since_ms

    if bool(reasons) == every_reason:
        raise click.UsageError("name the reasons to retry (--reason http_503 ...) or say --all")
    try:
        start = since_ms(since, time.time()) if since is not None else 0
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    with runtime_for(settings) as (rt, _handle):
        chosen = None if every_reason else frozenset(reasons)
        report = retry_dead_letters(rt, chosen, start, dry_run)
    verb = "would requeue" if dry_run else "requeued"
    click.echo(
        f"{verb} {report.requeued} entries ({report.dead_letters} dead letters matched; "
        f"{report.not_failed} published or failed otherwise since, or expired)"
    )


@main.group()
def feeds() -> None:
    """Manage the feed registry (takes effect at once, no restart)."""


@feeds.command("add")
@click.argument("url")
@click.option("--tag", "tags", multiple=True, help="Tag carried to every article of the feed.")
@click.option("--interval", type=float, default=None, help="Fixed poll interval in seconds.")
@click.option(
    "--discover/--no-discover",
    default=True,
    show_default=True,
    help="If URL is a web page, find the feeds it offers.",
)
@click.pass_obj
def feeds_add(
    settings: Settings, url: str, tags: tuple[str, ...], interval: float | None, discover: bool
) -> None:
    """Add a feed (or a site's feeds); each is polled and backfilled at once."""
    from worker.errors import FetchError
    from worker.feeds.discover import discover as find_feeds

    with runtime_for(settings) as (rt, _handle):
        urls = [url]
        if discover:
            try:
                urls = find_feeds(rt.fetcher, url, rt.feed_limits) or []
            except FetchError as exc:
                raise click.ClickException(
                    f"cannot fetch {url}: {exc.reason} {exc.detail}"
                ) from None
            if not urls:
                raise click.ClickException(f"no feed found at {url} (--no-discover adds it as is)")
        for found in urls:
            try:
                record = rt.registry.add(found, list(tags), interval)
            except FetchError as exc:
                detail = f"{exc.reason} {exc.detail}"
                raise click.ClickException(f"cannot add {found}: {detail}") from None
            click.echo(f"{record.feed_id} {record.url}")


@feeds.command("remove")
@click.argument("url_or_id")
@click.pass_obj
def feeds_remove(settings: Settings, url_or_id: str) -> None:
    """Remove a feed (by URL or id); a sitemap index's sitemaps go with it."""
    with runtime_for(settings) as (rt, _handle):
        removed = rt.registry.remove(url_or_id)
    if removed is None:
        raise click.ClickException(f"no such feed: {url_or_id}")
    record, sitemaps = removed
    click.echo(f"removed {record.feed_id} {record.url}")
    if sitemaps:
        click.echo(f"removed the {sitemaps} sitemaps this sitemap index had registered")


@feeds.command("enable")
@click.argument("url_or_id")
@click.pass_obj
def feeds_enable(settings: Settings, url_or_id: str) -> None:
    """Enable a disabled feed again (e.g. after 410 Gone); it is polled at once."""
    with runtime_for(settings) as (rt, _handle):
        record = rt.registry.set_enabled(url_or_id, True)
    if record is None:
        raise click.ClickException(f"no such feed: {url_or_id}")
    click.echo(f"enabled {record.feed_id} {record.url}")


@feeds.command("disable")
@click.argument("url_or_id")
@click.option("--reason", default="disabled by an operator")
@click.pass_obj
def feeds_disable(settings: Settings, url_or_id: str, reason: str) -> None:
    """Stop polling a feed but keep it (and its state)."""
    with runtime_for(settings) as (rt, _handle):
        record = rt.registry.set_enabled(url_or_id, False, reason)
    if record is None:
        raise click.ClickException(f"no such feed: {url_or_id}")
    click.echo(f"disabled {record.feed_id} {record.url}")


@feeds.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["new", "ok", "error", "disabled"]),
    help="Only feeds in this state (e.g. error: the failing ones).",
)
@click.option("--tag", "tags", multiple=True, help="Only feeds with this tag.")
@click.pass_obj
def feeds_list(
    settings: Settings, as_json: bool, statuses: tuple[str, ...], tags: tuple[str, ...]
) -> None:
    """List feeds with their status, last success and error, and next poll."""
    from worker.status import feed_rows

    with runtime_for(settings) as (rt, _handle):
        records = [
            record
            for record in rt.registry.all()
            if (not statuses or record.status in statuses)
            and (not tags or set(tags) & set(record.tags))
        ]
    if as_json:
        for record in records:
            click.echo(json.dumps(record.__dict__))
        return
    for row in feed_rows(records, time.time()):
        click.echo(row)


@feeds.command("import")
@click.argument("opml_file", type=click.File("r"))
@click.pass_obj
def feeds_import(settings: Settings, opml_file: Any) -> None:
    """Import feeds from an OPML file (categories become tags)."""
    from worker.feeds.opml import parse_opml

    try:
        items = parse_opml(opml_file.read())
    except (ValueError, RecursionError) as exc:  # ParseError is a SyntaxError
        raise click.ClickException(f"{opml_file.name} is not an OPML file we read: {exc}") from None
    except SyntaxError as exc:
        raise click.ClickException(f"{opml_file.name} is not XML: {exc}") from None
    with runtime_for(settings) as (rt, _handle):
        imported, refused = rt.registry.add_each((item.url, item.tags, None) for item in items)
    for why in refused:
        click.echo(f"skipped {why}", err=True)
    click.echo(f"imported {imported} feeds{f', skipped {len(refused)}' if refused else ''}")
    if refused:
        sys.exit(1)


@feeds.command("export")
@click.pass_obj
def feeds_export(settings: Settings) -> None:
    """Print every feed as OPML."""
    from worker.feeds.opml import to_opml

    with runtime_for(settings) as (rt, _handle):
        click.echo(to_opml(rt.registry.all()), nl=False)


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--check", is_flag=True, help="Exit 0 if Redis answers (and --require holds).")
@click.option(
    "--require",
    "required",
    multiple=True,
    help="With --check: a heartbeat role that must be alive on this host (io, cpu, scheduler).",
)
@click.pass_obj
def status(settings: Settings, as_json: bool, check: bool, required: tuple[str, ...]) -> None:
    """Show counters, streams, queues, leases, feeds and live processes."""
    from worker.status import collect_status, health_ok, render_status

    try:
        with runtime_for(settings, attach_only=check) as (rt, _handle):
            if check:
                sys.exit(0 if health_ok(rt, required) else 1)
            report = collect_status(rt)
    except Exception as exc:  # noqa: BLE001 - a status probe reports, it does not crash
        if check:
            sys.exit(1)
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report, indent=2) if as_json else render_status(report))


@main.command()
@click.pass_obj
def metrics(settings: Settings) -> None:
    """Print the deployment's Prometheus metrics once (what `run` and `scheduler` serve
    on NEWSWIRE_METRICS_PORT)."""
    from worker.metrics import exposition

    with runtime_for(settings, attach_only=True) as (rt, _handle):
        click.echo(exposition(rt), nl=False)


@main.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--url", default="", help="The page's address (for relative links and canonical).")
@click.option("--min-chars", type=int, default=None)
@click.pass_obj
def extract(settings: Settings, files: tuple[Path, ...], url: str, min_chars: int | None) -> None:
    """Print the article document of HTML pages (stdin, or FILEs, plain or .gz)."""
    import gzip

    from worker.extract.document import page_document
    from worker.fetch.decode import decode_html

    limit = settings.min_text_chars if min_chars is None else min_chars
    for path in files or (None,):
        raw = sys.stdin.buffer.read() if path is None else path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        page_url = url or (path.resolve().as_uri() if path else "http://localhost/")
        document = page_document(decode_html(raw, ""), page_url, limit)
        click.echo(json.dumps(document, ensure_ascii=False))


if __name__ == "__main__":
    main()
