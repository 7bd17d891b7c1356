"""Settings: the one place that reads configuration files and the environment.

Precedence, highest first: explicit overrides (CLI flags, tests), ``NEWSWIRE_*``
environment variables, the YAML file (``config/newswire.yaml`` or ``NEWSWIRE_CONFIG``),
then the defaults below. Nothing else in the package reads ``os.environ``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = Path("config/newswire.yaml")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process may use, the default number of extraction processes: those
    it may run on (its affinity: a container's cpuset), at most its cgroup's CPU quota
    rounded up (``docker run --cpus 2``: cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``).
    ``os.cpu_count()`` counts the host's: in a container given 2 of 64 CPUs it would
    start 64 extraction processes of ~240 MiB each."""
    if hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count() or 1
    quota = _cpu_quota(cgroup_root)
    return max(1, min(count, math.ceil(quota)) if quota else count)


def _cpu_quota(root: Path) -> float | None:
    """CPUs' worth of time the cgroup may use per period; None: no quota (or no cgroup)."""
    try:
        if (root / "cpu.max").exists():
            quota, period = (root / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


_CONFIG_FILE_OVERRIDE: list[Path | None] = [None]


class Settings(BaseSettings):
    """Every tunable of the service; see config/newswire.yaml for the commented defaults."""

    model_config = SettingsConfigDict(env_prefix="NEWSWIRE_", extra="ignore")

    # Redis and the broker
    redis_url: str | None = None
    broker_url: str | None = None
    data_dir: Path = Path(".newswire")
    redis_socket_timeout_s: float = 10.0

    # Names
    stream_prefix: str = "news"
    key_prefix: str = "newswire"

    # Stream retention: MAXLEN (approximate) and/or MINID by age
    stream_maxlen: int = 1_000_000
    stream_retention_days: float | None = None

    # Fetching
    allow_private_hosts: bool = False
    user_agent: str | None = None  # default: newswire/<version> (+<contact_url>)
    contact_url: str = "https://github.com/newswire/newswire"
    respect_robots_txt: bool = True
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    fetch_deadline_s: float = 30.0
    max_page_bytes: int = 5 * 1024 * 1024
    max_feed_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5

    # Politeness, shared by all workers through Redis
    host_concurrency: int = 2
    host_delay_s: float = 1.0
    host_wait_s: float = 5.0  # longest in-thread wait for a host slot before deferring

    # Polling
    feeds_file: Path | None = Path("config/feeds.yaml")
    poll_interval_s: float = 900.0
    min_poll_interval_s: float = 60.0
    max_poll_interval_s: float = 86_400.0
    max_backoff_s: float = 7 * 86_400.0
    unconditional_poll_every: int = 20  # every Nth poll ignores ETag/Last-Modified
    redirects_before_move: int = 3  # polls that must see the same 301/308 to move a feed
    poll_lease_s: float = 300.0
    poll_batch: int = 20  # feeds per poll task
    # Most sitemaps one sitemap index registers, its newest first: a big site's index lists
    # every archive sitemap back to its first year (up to 50,000), and each would be
    # backfilled.
    sitemap_index_limit: int = Field(default=50, ge=0)
    poll_threads: int = 32  # threads per worker process polling a batch
    scheduler_tick_s: float = 1.0
    scheduler_batch: int = 500

    # Entry leases and the sweeper
    queued_lease_s: float = 1800.0
    # Fused path: the lease of an entry in the ingest queue, a LIST of our own where no
    # broker loses it (a lost wake-up task is ingest_stall_s's to catch): a backlog longer
    # than queued_lease_s does not come back as second copies of its entries.
    ingest_queued_lease_s: float = 21_600.0
    running_lease_s: float = 300.0
    max_attempts: int = 3
    retry_base_s: float = 10.0  # first retry of a transient page failure; doubles each time
    sweep_interval_s: float = 5.0

    # Extraction and dedup
    min_text_chars: int = 200
    min_publish_chars: int = 50
    dedup_window_days: float = 30.0
    near_dup_enabled: bool = True
    near_dup_threshold: float = 0.5  # estimated Jaccard of word 3-shingles (bench/dedup.py)
    near_dup_bucket_bits: int = 12

    # Workers
    # The article path. "fused": the extraction processes take entries from the ingest
    # queue, download their pages in threads, ``fetch_ahead`` at a time, and extract each
    # as it arrives (no page crosses a process or Redis). "split": io workers fetch and
    # hand each page over through Redis to the extraction processes: ~2.5 ms more CPU an
    # entry (README, Benchmarks), but downloads never share a process with trafilatura.
    # Feeds are polled by io workers either way.
    article_path: Literal["fused", "split"] = "fused"
    # Threads of an io worker: Celery's (poll and fetch batches) and those downloading the
    # pages of fetch batches. More runnable threads cost CPU that extraction needs (on 2
    # cores, 32/16 used ~15% more CPU per entry than 16/8); raise them for slow sites.
    io_concurrency: int = 8
    fetch_threads: int = 16  # per io worker; on the fused path, per extraction process
    fetch_batch: int = 16  # entries per fetch task (split path)
    # Fused path: pages an extraction process keeps downloading, or downloaded and
    # waiting, ahead of the one it extracts (it takes more entries from the ingest queue
    # when a quarter are done, at most as many as it has fetch threads free). The pages
    # waiting count too: at 200 ms a page and ~50 pages/s a process (trafilatura at ~15
    # ms a page), 16 left the cores idle 4.9-7.8% of a run, 24 3.5-4.5%; at 0 ms no
    # measurable change (bench/throughput.py, the cpu-time ratio less the ratio). A
    # fused task's time limit grows with it: see visibility_timeout_s.
    fetch_ahead: int = 24
    # Fused path: how long one task goes on taking entries before it finishes those in
    # hand and ends (another task takes over); keeps its time limit under the visibility
    # timeout.
    ingest_pull_s: float = 30.0
    # Fused path: entries queued and no task taking from the queue for this long (their
    # wake-up task lost: kombu can drop one, or Redis went away between the queueing and
    # the send): the sweeper wakes a task, at most once in this time.
    ingest_stall_s: float = 60.0
    extract_batch: int = 8  # fetched pages per extraction task
    max_waiting_pages: int = 256  # fetched pages waiting for extraction; fetching pauses above
    extraction_time_limit_s: float = 30.0  # per page; past it the entry is dead-lettered
    cpu_concurrency: int = Field(default_factory=available_cpus)
    # Each extraction process (its threads too) on a CPU of its own, when a worker has as
    # many of them as the CPUs it may run on (its affinity: a container's cpuset), and
    # never otherwise. Left to the scheduler, two extraction processes on two cores moved
    # between them ~190 times each in a 50 s run and now and then shared one core while
    # the other idled: the cores idled 2.6-4.6% of a run, 0.3-1.6% pinned, and the
    # processes switched context 33-42 times an entry, 20-23 pinned (bench/throughput.py,
    # runs alternated, three each at 0 and 200 ms).
    pin_extraction_cpus: bool = True
    task_time_limit_s: float = 60.0
    # Past this, the Redis broker delivers an unacknowledged task again: it must exceed
    # the longest task's time limit (checked below; a fused task's is ~830 s by default).
    visibility_timeout_s: float = 900.0
    max_tasks_per_child: int = 1000
    max_memory_per_child_kb: int = 512_000
    soft_shutdown_timeout_s: float = 20.0
    # A worker whose queues hold messages, with room for more, that receives nothing for
    # this long exits to be restarted (a consumer that did not resume after a broker
    # reconnect, celery#8030); 0 turns the check off
    consumer_stall_s: float = 120.0

    # The seed fixture: replayed once when `run` starts (idempotent: published once)
    seed_on_start: bool = True
    seeds_dir: Path = Path("seeds")

    log_level: str = "INFO"

    # Prometheus metrics of the whole deployment, served by `run` and `scheduler`
    metrics_port: int | None = None  # None: off; 0: any free port (logged)
    metrics_address: str = "127.0.0.1"  # 0.0.0.0 in a container, for the scraper

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.host_concurrency < 1:
            raise ValueError("NEWSWIRE_HOST_CONCURRENCY must be at least 1")
        if self.host_delay_s < 0:
            raise ValueError("NEWSWIRE_HOST_DELAY_S must not be negative")
        if self.min_poll_interval_s > self.max_poll_interval_s:
            raise ValueError("min_poll_interval_s must not exceed max_poll_interval_s")
        longest_task = max(
            self.task_time_limit_s,
            self.extraction_task_limits(self.extract_batch)["time_limit"],
            self.ingest_task_limits()["time_limit"] if self.article_path == "fused" else 0.0,
        )
        if self.visibility_timeout_s <= longest_task:
            raise ValueError(
                "visibility_timeout_s must exceed task_time_limit_s, "
                "extraction_time_limit_s x extract_batch + 20 s and, on the fused path, "
                "ingest_pull_s + fetch_deadline_s + extraction_time_limit_s x "
                "(fetch_ahead + 1) + 20 s (kombu#337)"
            )
        if min(self.fetch_batch, self.extract_batch, self.fetch_threads, self.fetch_ahead) < 1:
            raise ValueError(
                "fetch_batch, extract_batch, fetch_threads and fetch_ahead must be at least 1"
            )
        if self.ingest_pull_s <= 0:
            raise ValueError("ingest_pull_s must be positive (a fused task would take nothing)")
        if self.ingest_stall_s <= 0:
            raise ValueError("ingest_stall_s must be positive")
        if self.ingest_queued_lease_s < self.queued_lease_s:
            raise ValueError("ingest_queued_lease_s must not be shorter than queued_lease_s")
        if self.running_lease_s <= self.fetch_deadline_s:
            raise ValueError("running_lease_s must exceed fetch_deadline_s")
        return self

    def extraction_task_limits(self, pages: int) -> dict[str, float]:
        """Celery's soft and hard limits for one extraction task of ``pages`` pages: a
        backstop behind the per-page limit (worker/extract/timeout.py), for a C call that
        never yields."""
        soft = self.extraction_time_limit_s * pages + 10
        return {"soft_time_limit": soft, "time_limit": soft + 10}

    def ingest_task_limits(self) -> dict[str, float]:
        """Limits of one fused task: it takes entries for ``ingest_pull_s``, then extracts
        what it has in hand (at most ``fetch_ahead`` pages and the one under way), whose
        downloads end within the fetch deadline."""
        limits = self.extraction_task_limits(self.fetch_ahead + 1)
        extra = self.ingest_pull_s + self.fetch_deadline_s
        return {name: seconds + extra for name, seconds in limits.items()}

    @property
    def effective_user_agent(self) -> str:
        from worker import __version__

        return self.user_agent or f"newswire/{__version__} (+{self.contact_url})"

    @property
    def effective_broker_url(self) -> str | None:
        return self.broker_url or self.redis_url

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file()
        if path is not None and path.exists():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)


def config_file() -> Path | None:
    """Return the YAML file settings are read from (explicit, NEWSWIRE_CONFIG, or default)."""
    if _CONFIG_FILE_OVERRIDE[0] is not None:
        return _CONFIG_FILE_OVERRIDE[0]
    env = os.environ.get("NEWSWIRE_CONFIG")
    if env:
        return Path(env)
    return DEFAULT_CONFIG_FILE


def use_config_file(path: Path | None) -> None:
    """Point every later load_settings() at ``path`` (the CLI's --config)."""
    _CONFIG_FILE_OVERRIDE[0] = path
    if path is not None:
        # Child processes (workers started by `run`) must read the same file.
        os.environ["NEWSWIRE_CONFIG"] = str(path)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from overrides, environment and the YAML file."""
    return Settings(**overrides)


# glibc gives each of a worker's many threads its own malloc arena, and after the first
# ~200 KB page is freed it raises its mmap threshold, so later page buffers land in (and
# fragment) the heap: an io worker grew from 150 to 280 MB over 6,000 pages. A fixed
# threshold and two arenas keep it flat at ~100 MB (bench/throughput.py). Worker processes
# get these unless the environment sets them; glibc reads them once, at process start.
WORKER_MALLOC_ENVIRONMENT = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "65536"}


def child_environment(settings: Settings) -> dict[str, str]:
    """Environment for a child process that must run with exactly these settings."""
    env = {**WORKER_MALLOC_ENVIRONMENT, **os.environ}
    for name in sorted(settings.model_fields_set | {"redis_url", "data_dir"}):
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, Path):
            value = str(value.resolve())
        env[f"NEWSWIRE_{name.upper()}"] = str(value)
    return env


class FeedSpec(BaseModel):
    """One feed of the feeds file: its URL, or a mapping of url, tags and interval_s."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a default

    url: str
    tags: list[str] = Field(default_factory=list)
    interval_s: PositiveFloat | None = None


class FeedsFileError(Exception):
    """The feeds file cannot be read, or does not hold a list of feeds."""


def read_feeds_file(path: Path) -> tuple[list[FeedSpec], list[str]]:
    """The feeds ``path`` lists, and what is wrong with each item that is not one."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise FeedsFileError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("feeds") or [], list):
        raise FeedsFileError(f"{path}: expected a mapping with a 'feeds' list")
    specs: list[FeedSpec] = []
    problems: list[str] = []
    for position, item in enumerate(data.get("feeds") or [], 1):
        try:
            specs.append(FeedSpec.model_validate({"url": item} if isinstance(item, str) else item))
        except ValidationError as exc:
            reasons = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'item'}: {e['msg']}" for e in exc.errors()
            )
            problems.append(f"{path}: feed {position} ({item!r}): {reasons}")
    return specs, problems
