"""The page hand-off between the fetch and extract stages, on a server of its own: pages
stay out of the append-only file, and a restart loses them without losing the entry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import fetched_entries, wait_until
from worker import pipeline
from worker.config import Settings
from worker.redis import EmbeddedServer
from worker.runtime import Runtime

pytestmark = pytest.mark.integration


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer.start(tmp_path)
    yield server
    server.stop()


def runtime_on(server: EmbeddedServer, settings: Settings) -> Runtime:
    own = settings.model_copy(update={"redis_url": server.url, "data_dir": server.data_dir})
    return Runtime.build(own, server.url)


def aof_bytes(server: EmbeddedServer) -> bytes:
    return b"".join(p.read_bytes() for p in (server.data_dir / "redis").rglob("*.aof"))


def test_a_handed_page_is_not_written_to_the_append_only_file(
    own_server: EmbeddedServer, settings: Settings
) -> None:
    rt = runtime_on(own_server, settings)
    [entry_id] = fetched_entries(rt, 1)
    marker = f"bp-{entry_id}"
    assert rt.ledger.pages_waiting() == 1
    start = rt.ledger.start(entry_id, "extract", with_page=True)
    assert start.page is not None and marker in start.page.html  # there for the extract stage

    aof = aof_bytes(own_server)
    assert entry_id.encode() in aof  # the claim and the stages are persisted
    assert marker.encode() not in aof  # the page is not
    assert pipeline.extract_stage(rt, entry_id).detail == "article"
    # the published article is; appendfsync everysec may postpone the write while an
    # fsync is under way (up to 2 s), so wait for it
    assert wait_until(lambda: marker.encode() in aof_bytes(own_server), timeout=10)
    rt.close()


def test_after_a_restart_the_page_is_gone_and_the_entry_is_fetched_again(
    tmp_path: Path, settings: Settings
) -> None:
    server = EmbeddedServer.start(tmp_path)
    rt = runtime_on(server, settings)
    [entry_id] = fetched_entries(rt, 1)
    rt.close()
    server.stop()

    server = EmbeddedServer.start(tmp_path)
    try:
        rt = runtime_on(server, settings)
        assert rt.ledger.pages_waiting() == 0  # nothing counts as waiting that is not there
        result = pipeline.extract_stage(rt, entry_id)
        assert (result.next, result.detail) == ("retry", "page hand-off missing")
        assert rt.client.zscore(rt.keys.inflight, entry_id) is not None  # the sweeper's
        rt.close()
    finally:
        server.stop()
