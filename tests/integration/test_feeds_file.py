"""The feeds file (config/feeds.yaml): what it lists is registered at start, what is
wrong with it is logged, and nothing in it keeps the scheduler from polling."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from tests.support import wait_until
from worker.runtime import Runtime
from worker.scheduler import load_feeds_file, run_scheduler

pytestmark = pytest.mark.integration

MIXED = """\
feeds:
  - https://good.example.com/rss.xml
  - url: https://tagged.example.org/atom.xml
    tags: [world, politics]
    interval_s: 600
  - ftp://files.example.com/feed.xml
  - tags: [no-url]
  - url: https://soon.example.com/feed
    interval_s: soon
  - url: https://typo.example.com/feed
    intervall_s: 300
  - 42
  - "https://surrogate.example.com/\\ud800"
"""


def test_items_that_are_not_feeds_are_skipped_and_explained(
    own_rt: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(MIXED)
    with caplog.at_level(logging.ERROR, logger="worker.scheduler"):
        assert load_feeds_file(own_rt, path) == 2

    good = own_rt.registry.find("https://good.example.com/rss.xml")
    tagged = own_rt.registry.find("https://tagged.example.org/atom.xml")
    assert good is not None and good.tags == [] and good.interval_s is None
    assert tagged is not None and tagged.tags == ["world", "politics"]
    assert tagged.interval_s == 600
    assert len(own_rt.registry.all()) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 6, errors
    for expected in (
        "ftp://files.example.com/feed.xml: unsupported_scheme",
        "feed 4 ({'tags': ['no-url']}): url: Field required",
        "feed 5",
        "interval_s: Input should be a valid number",
        "feed 6",
        "intervall_s: Extra inputs are not permitted",
        "feed 7 (42): item: Input should be a valid dictionary",
        "surrogate.example.com/\\ud800': UnicodeEncodeError",
    ):
        assert any(expected in error for error in errors), (expected, errors)


@pytest.mark.parametrize(
    "content",
    [
        MIXED,
        "feeds: {not: a list}\n",
        "feeds: [https://a.example.com/feed\n",  # not YAML
        "- https://a.example.com/feed\n",  # a list, not a mapping
        "\udcff",  # not UTF-8
    ],
    ids=["bad-items", "not-a-list", "not-yaml", "not-a-mapping", "not-utf8"],
)
def test_the_scheduler_polls_whatever_is_wrong_with_the_feeds_file(
    own_rt: Runtime, tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    feed = own_rt.registry.add("https://registered.example.net/feed.xml")  # due at once
    stop = threading.Event()
    scheduler = threading.Thread(target=run_scheduler, args=(own_rt, stop, path), daemon=True)
    with caplog.at_level(logging.ERROR, logger="worker.scheduler"):
        scheduler.start()
        try:
            claimed = wait_until(
                lambda: own_rt.client.hget(own_rt.keys.feed(feed.feed_id), "poll_token"), 10
            )
        finally:
            stop.set()
            scheduler.join(10)
    assert claimed, "the scheduler never claimed the due feed"
    assert not scheduler.is_alive()
    assert any("feeds file" in r.getMessage() for r in caplog.records), "nothing was logged"
