"""Deduplication across sources, revisions, and the race between workers."""

from __future__ import annotations

import random
import time
from collections import defaultdict

import pytest

from tests.servers.newsroom import Newsroom, Route
from tests.support import (
    article_html,
    atom,
    drain,
    feed_polled,
    messages,
    rss,
    story,
    wait_until,
)
from worker.config import Settings
from worker.replay import request_poll
from worker.runtime import Runtime
from worker.service import WorkerProcesses, WorkerSpec
from worker.workerproc import live_roles

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def light_edit(paragraphs: list[str], rng: random.Random) -> list[str]:
    """What syndication does to a wire story: a line added, a sentence gone, a word changed."""
    edited = list(paragraphs)
    edited.insert(0, rng.choice(["Updated 3 hours ago.", "By Staff Reporter", "AP —"]))
    victim = rng.randrange(1, len(edited))
    sentences = edited[victim].split(". ")
    if len(sentences) > 1:
        del sentences[rng.randrange(len(sentences))]
    edited[victim] = ". ".join(sentences)
    edited[-1] = edited[-1].replace(" the ", " a ", 1) + " Copyright the agency."
    return edited


def test_racing_workers_make_exactly_one_original_per_story(
    rt: Runtime, newsroom: Newsroom, settings: Settings
) -> None:
    extra = WorkerProcesses(settings, [WorkerSpec("cpu", "prefork", 2, name="cpu-race")])
    extra.start()
    try:
        assert wait_until(lambda: "worker-cpu" in live_roles(rt), 60)
        rng = random.Random(7)
        stamp = time.time()
        feeds: list[str] = []
        story_of: dict[str, int] = {}
        for outlet in range(4):
            items = []
            for n in range(6):
                base = story(f"race-{n}-{stamp}", 6)
                text = base if outlet % 2 == 0 else light_edit(base, rng)  # identical or edited
                url = newsroom.add(f"/o{outlet}/s{n}.html", body=article_html(f"S{n}", text))
                story_of[url] = n
                items.append({"title": f"S{n}", "link": url})
            feeds.append(newsroom.add(f"/o{outlet}/feed.xml", body=rss(items),
                                      content_type="application/rss+xml"))  # fmt: skip
        ids = [rt.registry.add(url).feed_id for url in feeds]
        for feed_id in ids:  # all at once: the same stories reach several workers together
            request_poll(rt, feed_id)
        for feed_id in ids:
            feed_polled(rt, feed_id)
        drain(rt, timeout=90)
    finally:
        extra.stop(20)
    originals: dict[int, list[str]] = defaultdict(list)
    for _sid, m in messages(rt, rt.keys.articles):
        if m["url"] in story_of:
            originals[story_of[m["url"]]].append(m["id"])
    assert {n: len(ids) for n, ids in originals.items()} == dict.fromkeys(range(6), 1)
    duplicates = [m for _sid, m in messages(rt, rt.keys.duplicates) if m["url"] in story_of]
    assert len(duplicates) == 6 * 3
    for dup in duplicates:
        assert dup["duplicate_of"] == originals[story_of[dup["url"]]][0]
        assert 0.5 <= dup["similarity"] <= 1.0


def test_a_correction_is_a_new_revision_and_a_refetch_is_not(
    rt: Runtime, newsroom: Newsroom
) -> None:
    paragraphs = story(f"correction-{time.time()}", 5)
    page = newsroom.add("/fix/a.html", body=article_html("Story", paragraphs))
    entry = {"title": "Story", "link": page, "id": "urn:fix:1", "published": "2024-05-01T10:00:00Z"}
    feed = newsroom.add(
        "/fix/feed.xml", Route(body=atom([entry]), content_type="application/atom+xml")
    )
    record = rt.registry.add(feed)

    def poll_round(polls: int) -> None:
        request_poll(rt, record.feed_id)
        feed_polled(rt, record.feed_id, polls)
        drain(rt)

    poll_round(1)
    corrected = [*paragraphs[:-1], paragraphs[-1] + " An earlier version misstated the figures."]
    newsroom.routes["/fix/a.html"] = Route(body=article_html("Story", corrected))
    entry["updated"] = "2024-05-01T12:00:00Z"
    newsroom.routes["/fix/feed.xml"] = Route(
        body=atom([entry]), content_type="application/atom+xml"
    )
    poll_round(2)
    entry["updated"] = "2024-05-01T13:00:00Z"  # touched again, text unchanged
    newsroom.routes["/fix/feed.xml"] = Route(
        body=atom([entry]), content_type="application/atom+xml"
    )
    poll_round(3)
    published = [m for _sid, m in messages(rt, rt.keys.articles) if m["url"] == page]
    assert [m["revision"] for m in published] == [1, 2]
    assert published[0]["id"] == published[1]["id"]
    assert "misstated" in published[1]["text"]
    assert newsroom.count("/fix/a.html") == 3  # fetched for each update, published twice
    assert [m for _sid, m in messages(rt, rt.keys.duplicates) if m["url"] == page] == []
