"""The polling engine against loopback servers: formats, validators, schedule, failures,
redirects, politeness, and several schedulers and workers at once."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.servers.newsroom import Newsroom, Route, hang
from tests.support import article_html, articles_of, drain, feed_polled, messages, rss, story
from worker.config import Settings
from worker.dedup.canonical import url_id
from worker.errors import FetchError, HostBusy
from worker.feeds.opml import parse_opml, to_opml
from worker.feeds.parse import parse_feed
from worker.fetch.client import Fetcher
from worker.fetch.limits import FetchLimits
from worker.fetch.politeness import HostGate, Politeness
from worker.fetch.robots import Robots
from worker.replay import request_poll
from worker.runtime import Runtime
from worker.scheduler import run_scheduler
from worker.service import WorkerProcesses, WorkerSpec

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"


def poll(rt: Runtime, feed_id: str) -> None:
    record = rt.registry.get(feed_id)
    polls = record.polls if record else 0
    request_poll(rt, feed_id)
    feed_polled(rt, feed_id, polls + 1)


def feed_route(body: bytes, **headers: str) -> Route:
    return Route(body=body, content_type="application/rss+xml", headers=headers)


def test_adaptive_interval_moves_both_ways(rt: Runtime, newsroom: Newsroom) -> None:
    items: list[dict[str, str]] = []
    url = newsroom.add("/adaptive/feed.xml", feed_route(rss(items)))
    record = rt.registry.add(url)
    poll(rt, record.feed_id)  # backfill of an empty feed: default interval
    first = rt.registry.get(record.feed_id)
    assert first is not None and first.current_interval_s and first.current_interval_s > 3000
    stamp = time.time()
    for i in range(20):  # twenty new stories, just published
        link = newsroom.add(
            f"/adaptive/{i}.html", body=article_html(f"s{i}", story(f"ad{i}{stamp}"))
        )
        items.append({"title": f"s{i}", "guid": f"adaptive-{i}", "link": link})
    newsroom.routes["/adaptive/feed.xml"] = feed_route(rss(items))
    poll(rt, record.feed_id)
    busy = rt.registry.get(record.feed_id)
    assert busy is not None and busy.current_interval_s is not None
    assert busy.current_interval_s < 10  # a fast feed is polled often (min is 1 s in tests)
    for _ in range(30):  # then nothing new, poll after poll
        poll(rt, record.feed_id)
        quiet = rt.registry.get(record.feed_id)
        assert quiet is not None and quiet.current_interval_s is not None
        if quiet.current_interval_s > 10 * busy.current_interval_s:
            break
    assert quiet.current_interval_s > 10 * busy.current_interval_s
    drain(rt)


def test_unchanged_body_is_not_reparsed_when_validators_are_ignored(
    rt: Runtime, newsroom: Newsroom
) -> None:
    url = newsroom.add("/noetag/feed.xml", feed_route(rss([])))
    record = rt.registry.add(url)
    poll(rt, record.feed_id)
    poll(rt, record.feed_id)
    after = rt.registry.get(record.feed_id)
    assert after is not None and (after.parsed, after.unchanged) == (1, 1)


def test_gone_disables_and_enable_restores(rt: Runtime, newsroom: Newsroom) -> None:
    url = newsroom.add("/gone/feed.xml", Route(status=410, body=b"gone"))
    record = rt.registry.add(url)
    poll(rt, record.feed_id)
    gone = rt.registry.get(record.feed_id)
    assert gone is not None and gone.status == "disabled" and "410" in gone.disabled_reason
    assert gone.next_poll is None  # off the schedule, but kept
    newsroom.routes["/gone/feed.xml"] = feed_route(rss([]))
    rt.registry.set_enabled(url, True)
    poll(rt, record.feed_id)
    back = rt.registry.get(record.feed_id)
    assert back is not None and back.status == "ok" and back.disabled_reason == ""


def test_backoff_grows_and_soft_errors_weigh_less(rt: Runtime, newsroom: Newsroom) -> None:
    hard = rt.registry.add(newsroom.add("/hard/feed.xml", Route(status=500, body=b"x")))
    soft = rt.registry.add(newsroom.add("/soft/feed.xml", Route(status=404, body=b"x")))
    delays: dict[str, list[float]] = defaultdict(list)
    for _ in range(3):
        for feed in (hard, soft):
            started = time.time()
            poll(rt, feed.feed_id)
            record = rt.registry.get(feed.feed_id)
            assert record is not None and record.next_poll is not None
            delays[feed.feed_id].append(record.next_poll - started)
    hard_delays, soft_delays = delays[hard.feed_id], delays[soft.feed_id]
    assert hard_delays[2] > 3 * hard_delays[0]
    assert soft_delays[2] < hard_delays[2]
    final = rt.registry.get(soft.feed_id)
    assert final is not None and final.status == "error" and final.error_score == 1.5


def test_permanent_redirect_moves_feed_only_when_consistent(
    rt: Runtime, newsroom: Newsroom
) -> None:
    new_url = newsroom.add("/moved/new.xml", feed_route(rss([])))
    old_url = newsroom.add("/moved/old.xml", Route(status=301, headers={"Location": new_url}))
    temp_url = newsroom.add("/temp/old.xml", Route(status=302, headers={"Location": new_url}))
    moved, temp = rt.registry.add(old_url), rt.registry.add(temp_url)
    for i in range(3):
        poll(rt, moved.feed_id)
        poll(rt, temp.feed_id)
        record = rt.registry.get(moved.feed_id)
        assert record is not None
        assert record.url == (new_url if i == 2 else old_url)
    record = rt.registry.get(temp.feed_id)
    assert record is not None and record.url == temp_url  # 302 never moves a feed
    assert rt.registry.find(new_url) is not None


def test_retry_after_is_honoured(rt: Runtime) -> None:
    newsroom = Newsroom("127.0.0.4")  # its own host: the deferral must not slow other tests
    url = newsroom.add("/busy/feed.xml", Route(status=503, headers={"Retry-After": "7200"}))
    record = rt.registry.add(url)
    started = time.time()
    poll(rt, record.feed_id)
    after = rt.registry.get(record.feed_id)
    assert after is not None and after.next_poll is not None
    assert after.next_poll - started >= 7200
    # The whole host backs off: every worker sees the deferral in Redis.
    next_start = int(rt.client.get(rt.keys.host_next(newsroom.host)) or 0)
    assert next_start / 1000 - started > 7000
    rt.client.delete(rt.keys.host_next(newsroom.host))
    newsroom.close()


def test_skip_hours_are_respected(rt: Runtime, newsroom: Newsroom) -> None:
    now_hour = time.gmtime().tm_hour
    skipped = [(now_hour + k) % 24 for k in range(0, 4)]
    extra = "<ttl>1</ttl><skipHours>" + "".join(f"<hour>{h}</hour>" for h in skipped)
    url = newsroom.add("/skip/feed.xml", feed_route(rss([], extra=extra + "</skipHours>")))
    record = rt.registry.add(url, interval_s=5)
    poll(rt, record.feed_id)
    after = rt.registry.get(record.feed_id)
    assert after is not None and after.next_poll is not None
    assert time.gmtime(after.next_poll).tm_hour not in skipped
    assert after.next_poll - time.time() > 3600 * 2


def test_host_concurrency_and_delay_hold_across_workers(rt: Runtime, newsroom: Newsroom) -> None:
    newsroom.add("/slow.html", Route(body=b"<html><body>x</body></html>", delay_s=0.2))
    limits = FetchLimits(deadline_s=30)
    policy = Politeness(concurrency=2, delay_s=0.0, max_wait_s=30)
    # Two "workers" with their own clients and gates, sharing only Redis.
    fetchers = [Fetcher("t", True, gate=HostGate(rt.client, rt.keys, policy)) for _ in range(2)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: fetchers[i % 2].get(newsroom.url("/slow.html"), limits), range(24)))
    assert newsroom.max_in_flight == 2
    newsroom.add("/fast.html", Route(body=b"<html><body>x</body></html>"))
    paced = Politeness(concurrency=8, delay_s=0.3, max_wait_s=30)
    gate = HostGate(rt.client, rt.keys, paced)
    paced_fetchers = [Fetcher("t", True, gate=gate) for _ in range(5)]
    with ThreadPoolExecutor(5) as pool:
        list(pool.map(lambda f: f.get(newsroom.url("/fast.html"), limits), paced_fetchers))
    starts = sorted(hit.at for hit in newsroom.requests_to("/fast.html"))
    # 0.3 s apart when granted; the server sees them with a little scheduling noise
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.25


def test_json_feed_and_news_sitemap_ingest(rt: Runtime, newsroom: Newsroom) -> None:
    pages = [
        newsroom.add(f"/fmt/{i}.html", body=article_html(f"F{i}", story(f"fmt-{i}-{time.time()}")))
        for i in range(4)
    ]
    json_feed = (
        '{"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": ['
        f'{{"id": "1", "url": "{pages[0]}", "title": "One"}},'
        f'{{"id": "2", "url": "{pages[1]}", "title": "Two", "tags": ["jtag"]}}]}}'
    ).encode()
    sitemap = (
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">'
        + "".join(
            f"<url><loc>{p}</loc><news:news><news:publication_date>2024-05-0{i + 1}T10:00:00Z"
            f"</news:publication_date><news:title>Sitemap {i}</news:title>"
            f"<news:keywords>alpha, beta</news:keywords></news:news></url>"
            for i, p in enumerate(pages[2:])
        )
        + "</urlset>"
    ).encode()
    json_url = newsroom.add(
        "/fmt/feed.json", Route(body=json_feed, content_type="application/feed+json")
    )
    map_url = newsroom.add(
        "/fmt/news-sitemap.xml", Route(body=sitemap, content_type="application/xml")
    )
    for url in (json_url, map_url):
        poll(rt, rt.registry.add(url).feed_id)
    drain(rt)
    assert sorted(m["url"] for m in articles_of(rt, json_url)) == pages[:2]
    from_map = articles_of(rt, map_url)
    assert sorted(m["url"] for m in from_map) == pages[2:]
    assert all({"alpha", "beta"} <= set(m["tags"]) for m in from_map)
    record = rt.registry.find(map_url)
    assert record is not None and record.kind == "sitemap"


def test_a_sitemap_index_adds_its_sitemaps_and_skips_unusable_ones(
    rt: Runtime, newsroom: Newsroom
) -> None:
    tag = f"idx{time.time_ns()}"
    child = newsroom.add(
        f"/{tag}/child.xml",
        Route(body=b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/'
             b'sitemap/0.9"></urlset>', content_type="application/xml"),
    )  # fmt: skip
    elsewhere = f"https://other-site.example.com/{tag}.xml"
    locs = [child, f"ftp://files.example.com/{tag}.xml", "javascript:alert(1)", elsewhere]
    index = (
        '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        + "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
        + "</sitemapindex>"
    ).encode()
    index_url = newsroom.add(f"/{tag}/index.xml", Route(body=index, content_type="application/xml"))
    feed = rt.registry.add(index_url, tags=[tag])
    poll(rt, feed.feed_id)
    record = rt.registry.get(feed.feed_id)
    assert record is not None and record.status == "ok" and record.last_error == ""
    added = rt.registry.find(child)
    assert added is not None and added.tags == [tag]
    assert {f.url for f in rt.registry.all() if tag in f.url} == {index_url, child}
    assert rt.registry.find(elsewhere) is None  # an index names its own site's sitemaps


def test_a_sitemap_index_registers_only_its_newest_sitemaps(
    rt: Runtime, newsroom: Newsroom
) -> None:
    tag = f"big{time.time_ns()}"
    limit = Settings().sitemap_index_limit
    days = [f"2026-{1 + n // 28:02d}-{1 + n % 28:02d}" for n in range(limit + 10)]
    index = (
        '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        + "".join(
            f"<sitemap><loc>{newsroom.url(f'/{tag}/{day}.xml')}</loc><lastmod>{day}</lastmod>"
            "</sitemap>"
            for day in days  # oldest first, as archives usually are
        )
        + "</sitemapindex>"
    ).encode()
    index_url = newsroom.add(f"/{tag}/index.xml", Route(body=index, content_type="application/xml"))
    poll(rt, rt.registry.add(index_url).feed_id)
    registered = {f.url for f in rt.registry.all() if tag in f.url} - {index_url}
    assert registered == {newsroom.url(f"/{tag}/{day}.xml") for day in days[-limit:]}


def sitemap_index(locs: list[tuple[str, str]]) -> Route:
    """A sitemap index listing (url, lastmod) pairs."""
    body = (
        '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        + "".join(f"<sitemap><loc>{u}</loc><lastmod>{d}</lastmod></sitemap>" for u, d in locs)
        + "</sitemapindex>"
    ).encode()
    return Route(body=body, content_type="application/xml")


def test_a_sitemap_index_removes_the_sitemaps_it_no_longer_registers(
    rt: Runtime, newsroom: Newsroom
) -> None:
    """Each day's new sitemap pushes the oldest out of the index's newest; before, every
    sitemap it ever registered stayed registered and polled."""
    tag = f"roll{time.time_ns()}"
    limit = Settings().sitemap_index_limit
    days = [f"2026-{1 + n // 28:02d}-{1 + n % 28:02d}" for n in range(limit + 13)]
    url = {day: newsroom.url(f"/{tag}/{day}.xml") for day in days}
    index_url = newsroom.add(f"/{tag}/index.xml", sitemap_index([(url[d], d) for d in days[:-3]]))

    def registered() -> set[str]:
        return {f.url for f in rt.registry.all() if tag in f.url} - {index_url}

    mine = rt.registry.add(url[days[-limit - 3]])  # the operator's own, listed by the index too
    index = rt.registry.add(index_url)
    poll(rt, index.feed_id)
    assert registered() == {url[d] for d in days[-limit - 3 : -3]}
    before = rt.registry.find(url[days[-limit - 2]])
    assert before is not None and before.parent == index.feed_id
    taken_over = rt.registry.add(before.url)  # registered by the index, now the operator's
    assert taken_over.parent == ""

    newsroom.routes[f"/{tag}/index.xml"] = sitemap_index([(url[d], d) for d in days])  # 3 new
    poll(rt, index.feed_id)
    assert registered() == {url[d] for d in days[-limit:]} | {mine.url, taken_over.url}
    assert rt.registry.find(url[days[-limit - 1]]) is None  # the index's, pushed out: removed
    children = {f.url for f in rt.registry.all() if f.parent == index.feed_id}
    assert children == {url[d] for d in days[-limit:]}

    removed = rt.registry.remove(index.feed_id)  # its sitemaps go with it; the operator's stay
    assert removed is not None and removed[1] == limit
    assert registered() == {mine.url, taken_over.url}
    assert not rt.client.exists(rt.keys.feed_children(index.feed_id))


def test_a_hostile_feed_is_recorded_on_its_status_at_every_poll(
    rt: Runtime, newsroom: Newsroom
) -> None:
    """Each of these raised out of the poll (the task crashed, the feed came back at each
    lease expiry and nothing was written on its status)."""
    tag = f"hf{time.time_ns()}"
    page = newsroom.add(f"/{tag}/a.html", body=article_html("A", story(tag)))
    good_item = f"<item><title>A</title><link>{page}</link></item>".encode()
    head = b'<?xml version="1.0"?><rss version="2.0"><channel><title>h</title>'
    odd_cache = newsroom.add(
        f"/{tag}/cache.xml",
        feed_route(head + good_item + b"</channel></rss>", **{"Cache-Control": "max-age=\u00b2"}),
    )
    surrogate_item = b"<item><title>&#xD800;</title></item>"
    bad_reference = newsroom.add(f"/{tag}/ref.xml", feed_route(head + surrogate_item + b"</rss>"))
    cached = rt.registry.add(odd_cache)
    poll(rt, cached.feed_id)
    record = rt.registry.get(cached.feed_id)
    assert record is not None and (record.status, record.entries_new) == ("ok", 1)
    broken = rt.registry.add(bad_reference)
    for polls in (1, 2):
        poll(rt, broken.feed_id)
        record = rt.registry.get(broken.feed_id)
        assert record is not None and record.polls == polls and record.status == "error"
        assert record.last_error.startswith("not_a_feed: unparsable (UnicodeEncodeError")


SPEC_HOSTS = (
    b"jsonfeed.org",
    b"www.w3.org",
    b"purl.org",
    b"www.sitemaps.org",
    b"www.google.com",
    b"search.yahoo.com",
    b"backend.userland.com",
    b"web.resource.org",
    b"www.itunes.com",
    b"wellformedweb.org",
    b"madskills.com",
    b"www.georss.org",
    b"earth.google.com",
)


def _rewrite(body: bytes, room: Newsroom) -> bytes:
    """Point every absolute URL of a real feed at the loopback server (path kept); namespace
    and version URLs stay as they are."""
    base = f"http://{room.host}:{room.port}/h/".encode()

    def swap(match: re.Match[bytes]) -> bytes:
        host = match.group(1)
        return match.group(0) if host in SPEC_HOSTS else base + host + b"/"

    return re.sub(rb"https?:(?:\\?/){2}([A-Za-z0-9.-]+)/?", swap, body)


def test_real_feeds_ingest_every_linked_item_once(rt: Runtime, newsroom: Newsroom) -> None:
    stamp = time.time()
    newsroom.fallback = lambda path: (
        None if path == "/robots.txt" else Route(body=article_html(path, story(f"{path}-{stamp}")))
    )
    expected: dict[str, set[str]] = {}
    for path in sorted(FIXTURES.iterdir()):
        body = _rewrite(path.read_bytes(), newsroom)
        url = newsroom.add(f"/real/{path.name}", Route(body=body, content_type=""))
        items = parse_feed(body, url, {}).items
        expected[url] = {url_id(i.link) for i in items if i.link.startswith(("http:", "https:"))}
        poll(rt, rt.registry.add(url).feed_id)
    drain(rt, timeout=120)
    published: dict[str, set[str]] = defaultdict(set)
    for _sid, message in messages(rt, rt.keys.articles):
        if message["feed_url"] in expected:
            assert url_id(message["url"]) not in published[message["feed_url"]]  # once each
            published[message["feed_url"]].add(url_id(message["url"]))
    dead = [m for _s, m in messages(rt, rt.keys.deadletter) if m.get("feed_url") in expected]
    assert dead == []
    # Items shared by several feeds are published once, under the feed that came first.
    seen: set[str] = set()
    for url, ids in expected.items():
        assert published[url] == ids - seen, url
        seen |= ids
    assert sum(len(ids) for ids in published.values()) > 300


def test_feed_that_never_answers_does_not_hold_others(rt: Runtime, newsroom: Newsroom) -> None:
    stuck = rt.registry.add(newsroom.add("/hang/feed.xml", Route(behaviour=hang)))
    loop = rt.registry.add(
        newsroom.add("/loop/a.xml", Route(status=302, headers={"Location": "/loop/b.xml"}))
    )
    newsroom.add("/loop/b.xml", Route(status=302, headers={"Location": "/loop/a.xml"}))
    page = newsroom.add("/ok/a.html", body=article_html("ok", story(f"ok-{time.time()}")))
    good_url = newsroom.add("/ok/feed.xml", feed_route(rss([{"title": "ok", "link": page}])))
    good = rt.registry.add(good_url)
    started = time.monotonic()
    for feed in (stuck, loop, good):
        request_poll(rt, feed.feed_id)
    feed_polled(rt, good.feed_id)
    drain(rt)
    assert [m["url"] for m in articles_of(rt, good_url)] == [page]
    assert time.monotonic() - started < 3.0  # not behind the hanging feed's deadline
    feed_polled(rt, stuck.feed_id)
    feed_polled(rt, loop.feed_id)
    stuck_record, loop_record = rt.registry.get(stuck.feed_id), rt.registry.get(loop.feed_id)
    assert stuck_record is not None and stuck_record.last_error.startswith("timeout")
    assert loop_record is not None and loop_record.last_error.startswith("redirect_loop")


def test_items_without_links_and_duplicates_inside_a_feed(rt: Runtime, newsroom: Newsroom) -> None:
    page = newsroom.add("/dupes/a.html", body=article_html("dup", story(f"dupes-{time.time()}")))
    items = [
        {"title": "a", "link": page, "guid": "1"},
        {"title": "a again", "link": page, "guid": "2"},
        {"title": "no link", "guid": "3", "description": "text"},
        {"title": "relative", "link": "/dupes/a.html"},
    ]
    url = newsroom.add("/dupes/feed.xml", feed_route(rss(items)))
    record = rt.registry.add(url)
    poll(rt, record.feed_id)
    drain(rt)
    assert [m["url"] for m in articles_of(rt, url)] == [page]
    after = rt.registry.get(record.feed_id)
    assert after is not None and after.entries_skipped == 1 and after.entries_new == 1
    assert newsroom.count("/dupes/a.html") == 1


def test_robots_txt_is_honoured_for_articles(rt: Runtime, newsroom: Newsroom) -> None:
    newsroom.add(
        "/robots.txt",
        Route(body=b"User-agent: *\nDisallow: /private/\n", content_type="text/plain"),
    )
    blocked = newsroom.add(
        "/private/a.html", body=article_html("p", story(f"robots-{time.time()}"))
    )
    url = newsroom.add("/robots/feed.xml", feed_route(rss([{"title": "p", "link": blocked}])))
    poll(rt, rt.registry.add(url).feed_id)
    drain(rt)
    assert newsroom.count("/private/a.html") == 0
    [dead] = [m for _s, m in messages(rt, rt.keys.deadletter) if m["url"] == blocked]
    assert dead["reason"] == "robots_disallowed"


def test_robots_txt_waiting_for_a_busy_host_is_host_busy_not_unreachable(
    rt: Runtime, newsroom: Newsroom
) -> None:
    """The robots.txt request takes a host slot like any other: when none comes within
    the wait, the article fetch is deferred (HostBusy, no attempt spent), not failed as
    'robots_unreachable' (an attempt spent, and dead-lettered after a few)."""
    newsroom.add("/robots.txt", Route(body=b"User-agent: *\nAllow: /\n", content_type="text/plain"))
    gate = HostGate(rt.client, rt.keys, Politeness(concurrency=1, delay_s=0.0, max_wait_s=0.3))
    robots = Robots(rt.client, rt.keys, Fetcher("t", True, gate=gate))
    held = gate.acquire(newsroom.host)  # another worker's request to the host, in flight
    try:
        with pytest.raises(HostBusy):
            robots.check(newsroom.url("/a.html"))
    finally:
        rt.client.zrem(rt.keys.host_slots(newsroom.host), held)
    robots.check(newsroom.url("/a.html"))  # the slot is free: robots.txt fetched, allowed
    assert newsroom.count("/robots.txt") == 1


def _check_together(robots: Robots, urls: list[str]) -> list[str]:
    """Check ``urls`` from as many threads at once: each one's outcome (its error's reason)."""
    start = threading.Barrier(len(urls))

    def check(url: str) -> str:
        start.wait()
        try:
            robots.check(url)
        except FetchError as exc:
            return exc.reason
        return "allowed"

    with ThreadPoolExecutor(len(urls)) as pool:
        return list(pool.map(check, urls))


def test_robots_txt_is_fetched_once_for_threads_that_need_it_together(
    rt: Runtime, newsroom: Newsroom
) -> None:
    """A burst of a new site's entries occupies many fetch threads at once: one fetches
    robots.txt and the others wait for its answer, rather than each fetching it (and
    taking one of the site's politeness slots for it)."""
    newsroom.add(
        "/robots.txt",
        Route(body=b"User-agent: *\nDisallow: /private/\n", content_type="text/plain", delay_s=0.3),
    )
    robots = Robots(rt.client, rt.keys, Fetcher("t", True))
    urls = [newsroom.url(f"/private/{i}.html" if i % 2 else f"/world/{i}.html") for i in range(8)]
    outcomes = _check_together(robots, urls)
    assert outcomes == ["robots_disallowed" if i % 2 else "allowed" for i in range(8)]
    assert newsroom.count("/robots.txt") == 1


def test_a_robots_txt_failure_reaches_every_thread_that_waited_for_it(
    rt: Runtime, newsroom: Newsroom
) -> None:
    newsroom.add("/robots.txt", Route(status=503, content_type="text/plain", delay_s=0.3))
    robots = Robots(rt.client, rt.keys, Fetcher("t", True))
    outcomes = _check_together(robots, [newsroom.url(f"/world/{i}.html") for i in range(6)])
    assert outcomes == ["robots_unreachable"] * 6
    assert newsroom.count("/robots.txt") == 1
    # not cached: the next page asks again, and gets the text once the server recovers
    newsroom.add("/robots.txt", Route(body=b"User-agent: *\nAllow: /\n", content_type="text/plain"))
    robots.check(newsroom.url("/world/a.html"))
    assert newsroom.count("/robots.txt") == 2


def test_opml_round_trip_through_the_registry(rt: Runtime) -> None:
    opml = """<opml version="2.0"><head/><body><outline text="World">
      <outline text="A" xmlUrl="https://opml-a.example/rss" category="politics"/></outline>
      <outline text="B" xmlUrl="https://opml-b.example/atom"/></body></opml>"""
    for item in parse_opml(opml):
        rt.registry.add(item.url, item.tags)
    exported = parse_opml(to_opml([f for f in rt.registry.all() if "opml-" in f.url]))
    assert {(f.url, tuple(f.tags)) for f in exported} == {
        ("https://opml-a.example/rss", ("World", "politics")),
        ("https://opml-b.example/atom", ()),
    }
    for item in exported:
        rt.registry.remove(item.url)


def test_two_schedulers_and_two_workers_never_double_poll(rt: Runtime, settings: Settings) -> None:
    rooms = [Newsroom("127.0.0.2"), Newsroom("127.0.0.3")]
    extra = WorkerProcesses(settings, [WorkerSpec("io", "threads", 8)])
    extra.start()
    feed_ids = []
    for n in range(200):
        room = rooms[n % 2]
        url = room.add(f"/many/{n}.xml", feed_route(rss([])))
        feed_ids.append(rt.registry.add(url, interval_s=2.0).feed_id)
    stop = threading.Event()
    schedulers = [Runtime.build(settings, settings.redis_url or "") for _ in range(2)]
    threads = [threading.Thread(target=run_scheduler, args=(s, stop)) for s in schedulers]
    try:
        for thread in threads:
            thread.start()
        time.sleep(9)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        extra.stop(15)
        for feed_id in feed_ids:
            rt.registry.remove(feed_id)
    starts: dict[str, list[float]] = defaultdict(list)
    for room in rooms:
        for hit in room.hits:
            starts[f"{room.host}{hit.path}"].append(hit.at)
        room.close()
    assert len(starts) == 200
    assert min(len(s) for s in starts.values()) >= 2  # every feed polled again and again
    gaps = [b - a for s in starts.values() for a, b in zip(sorted(s), sorted(s)[1:], strict=False)]
    assert min(gaps) >= 1.5  # never twice within one interval (2 s, jitter 10%)
    for s in schedulers:
        s.close()


def test_autodiscovery_finds_advertised_and_common_feeds(newsroom: Newsroom) -> None:
    from worker.feeds.discover import discover

    feed = newsroom.add("/news/rss.xml", feed_route(rss([])))
    home = b'<html><head><link rel="alternate" type="application/rss+xml" href="/news/rss.xml">'
    newsroom.add("/", Route(body=home + b"</head><body>Home</body></html>"))
    bare = Newsroom("127.0.0.5")
    bare.add("/", Route(body=b"<html><body>No links here</body></html>"))
    common = bare.add("/feed.xml", feed_route(rss([])))
    fetcher, limits = Fetcher("t", True), FetchLimits(deadline_s=5)
    try:
        assert discover(fetcher, newsroom.url("/"), limits) == [feed]
        assert discover(fetcher, feed, limits) == [feed]  # a feed is its own discovery
        assert discover(fetcher, bare.url("/"), limits) == [common]
        assert discover(fetcher, bare.url("/"), limits, probe=False) == []
    finally:
        bare.close()


def test_autodiscovery_checks_a_bounded_number_of_links(newsroom: Newsroom) -> None:
    from worker.feeds.discover import MOST_CHECKED, discover

    links = "".join(f'<a href="/section{n}/rss.xml">feed {n}</a>' for n in range(500))
    newsroom.add("/", Route(body=f"<html><body>{links}</body></html>".encode()))
    for n in (0, 7):
        newsroom.add(f"/section{n}/rss.xml", feed_route(rss([])))
    fetcher = Fetcher("t", True)
    found = discover(fetcher, newsroom.url("/"), FetchLimits(deadline_s=5))
    assert found == [newsroom.url("/section0/rss.xml"), newsroom.url("/section7/rss.xml")]
    checked = sum(newsroom.count(f"/section{n}/rss.xml") for n in range(500))
    assert checked == MOST_CHECKED  # not 500 fetches, one after the other
