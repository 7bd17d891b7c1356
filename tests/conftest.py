"""Shared fixtures: a private embedded Redis, real Celery worker processes, loopback HTTP.

Nothing here touches the machine's Redis or any shared server: the embedded valkey-server runs on
a free loopback port with its own data directory, and every test serves its feeds and
pages from its own loopback HTTP server. The one exception is opt-in: the compatibility
leg ``NEWSWIRE_TEST_REDIS_URL=redis://HOST:PORT/DB make test`` runs the suite against
the server that URL names (a Redis release, where operators point NEWSWIRE_REDIS_URL).
Its database must be empty, and is emptied when the session ends (the tests leave
thousands of keys); tests of the embedded server's own behaviour (restarts, its
append-only file) still start one of their own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import settings as hypothesis_settings

from tests.servers.newsroom import Newsroom
from tests.support import wait_until
from worker.celery_app import configure
from worker.config import Settings
from worker.redis import EmbeddedServer
from worker.runtime import Runtime
from worker.service import WorkerProcesses, WorkerSpec
from worker.tasks import use_runtime
from worker.workerproc import live_roles

# CI (.ci/run) runs the property tests derandomized and without per-example deadlines:
# a red build must come from the change under test, never from a case drawn for the first
# time or from a slow moment of a shared machine. Local runs keep exploring new cases.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
hypothesis_settings.register_profile("dev")
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

TEST_SETTINGS = dict(
    allow_private_hosts=True,
    feeds_file=None,
    seed_on_start=False,
    connect_timeout_s=1.0,
    read_timeout_s=2.0,
    fetch_deadline_s=3.0,
    running_lease_s=15.0,
    queued_lease_s=30.0,
    task_time_limit_s=8.0,
    ingest_pull_s=5.0,  # fused tasks end often: their hand-offs get exercised
    visibility_timeout_s=90.0,  # above a fused task's hard limit (5 + 3 + 17 x 2 + 20 s)
    extraction_time_limit_s=2.0,
    soft_shutdown_timeout_s=5.0,
    poll_interval_s=3600.0,
    min_poll_interval_s=1.0,
    sweep_interval_s=1.0,
    retry_base_s=0.3,
    io_concurrency=8,
    cpu_concurrency=2,
    host_concurrency=8,
    host_delay_s=0.0,
    log_level="INFO",
)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's server: a private embedded one, or NEWSWIRE_TEST_REDIS_URL's."""
    if external := os.environ.get("NEWSWIRE_TEST_REDIS_URL"):
        with redis.Redis.from_url(external) as client:
            if keys := client.dbsize():
                pytest.exit(
                    f"NEWSWIRE_TEST_REDIS_URL: its database holds {keys} keys; the leg needs"
                    " an empty one (another DB number in the URL), which it empties at the end",
                    returncode=2,
                )
            yield external
            client.flushdb()
        return
    server = EmbeddedServer.start(tmp_path_factory.mktemp("redis-data"))
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def settings(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    tag = uuid.uuid4().hex[:6]
    return Settings(
        redis_url=redis_url,
        data_dir=tmp_path_factory.mktemp("data"),
        key_prefix=f"t{tag}",
        stream_prefix=f"t{tag}:news",
        **TEST_SETTINGS,
    )


@pytest.fixture(scope="session")
def rt(settings: Settings) -> Iterator[Runtime]:
    configure(settings)
    runtime = Runtime.build(settings, settings.redis_url or "")
    use_runtime(runtime)
    yield runtime
    runtime.close()


@pytest.fixture
def own_rt(rt: Runtime, settings: Settings) -> Iterator[Runtime]:
    """A deployment of its own on the session's server (keys, streams and queues): nobody
    else's feeds or processes. Celery is the session's (``rt``), so tasks it sends go to
    queues of its own on the session's server, where no worker takes them."""
    tag = uuid.uuid4().hex[:6]
    update = {"key_prefix": f"s{tag}", "stream_prefix": f"s{tag}:news"}
    runtime = Runtime.build(settings.model_copy(update=update), settings.redis_url or "")
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def workers(rt: Runtime, settings: Settings) -> Iterator[WorkerProcesses]:
    """One io (threads) and one cpu (prefork) worker process for the whole session."""
    procs = WorkerProcesses(
        settings, [WorkerSpec("io", "threads", 8), WorkerSpec("cpu", "prefork", 2)]
    )
    procs.start()
    ready = wait_until(lambda: {"worker-io", "worker-cpu"} <= live_roles(rt), timeout=60)
    assert ready, "workers did not start"
    yield procs
    procs.stop(15)


@pytest.fixture
def newsroom() -> Iterator[Newsroom]:
    room = Newsroom()
    yield room
    room.close()


@pytest.fixture
def fresh_data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
