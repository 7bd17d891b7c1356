from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from worker.fetch.robots import Robots, robots_allow


def test_a_pacing_line_python_cannot_read_does_not_break_the_rest() -> None:
    # urllib.robotparser raised ValueError on these, failing every page of the site for
    # the day the text stays cached
    text = "User-agent: *\nCrawl-delay: \u00b2\nRequest-rate: \u00b2/1\nDisallow: /private\n"
    assert not robots_allow(text, "https://news.example/private/a.html")
    assert robots_allow(text, "https://news.example/world/a.html")


class RedisAwayOnce(Robots):
    """The first lookup fails as if Redis went away mid-call; later ones find the text."""

    def __init__(self) -> None:
        super().__init__(None, None, None)  # type: ignore[arg-type]  # never reached
        self.lookups = 0

    def _shared_text(self, origin: str) -> str:
        self.lookups += 1
        if self.lookups == 1:
            time.sleep(0.3)  # the other threads are waiting for this lookup by now
            raise RuntimeError("Redis away")
        return "User-agent: *\nDisallow: /private/\n"


def test_threads_waiting_for_a_lookup_that_broke_look_for_themselves() -> None:
    """Only a fetch error is the answer for every page of the origin; a lookup that broke
    otherwise is not, and its waiters must not fail with it."""
    robots = RedisAwayOnce()
    start = threading.Barrier(4)

    def check(_: int) -> str:
        start.wait()
        try:
            robots.check("https://news.example/world/a.html")
        except RuntimeError as exc:
            return str(exc)
        return "allowed"

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(check, range(4)))
    assert outcomes == ["Redis away", "allowed", "allowed", "allowed"]
