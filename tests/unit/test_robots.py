from __future__ import annotations

from worker.fetch.robots import robots_allow


def test_a_pacing_line_python_cannot_read_does_not_break_the_rest() -> None:
    # urllib.robotparser raised ValueError on these, failing every page of the site for
    # the day the text stays cached
    text = "User-agent: *\nCrawl-delay: \u00b2\nRequest-rate: \u00b2/1\nDisallow: /private\n"
    assert not robots_allow(text, "https://news.example/private/a.html")
    assert robots_allow(text, "https://news.example/world/a.html")
