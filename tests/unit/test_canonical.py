"""Canonical URLs: idempotent, tracking parameters never survive, distinct articles stay apart."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from hypothesis import example, given
from hypothesis import strategies as st

from worker.dedup.canonical import canonical_url, same_site, url_id

TRACKING = ["utm_source", "utm_medium", "utm_campaign", "fbclid", "gclid", "mc_eid", "yclid"]
segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
hosts = st.builds(lambda a, b: f"{a}.{b}.com", segment, segment)
paths = st.lists(segment, min_size=0, max_size=4).map(lambda parts: "/" + "/".join(parts))
params = st.lists(
    st.tuples(st.sampled_from(["id", "page", "q", "story", "lang"]), segment), max_size=3
)


def build(host: str, path: str, query: list[tuple[str, str]]) -> str:
    qs = "&".join(f"{k}={v}" for k, v in query)
    return f"https://{host}{path}" + (f"?{qs}" if qs else "")


@given(hosts, paths, params)
def test_canonicalization_is_idempotent(host: str, path: str, query: list[tuple[str, str]]) -> None:
    once = canonical_url(build(host, path, query))
    assert canonical_url(once) == once


@given(hosts, paths, params, st.lists(st.sampled_from(TRACKING), min_size=1, max_size=4), segment)
def test_tracking_parameters_never_survive(
    host: str, path: str, query: list[tuple[str, str]], trackers: list[str], value: str
) -> None:
    url = build(host, path, query + [(t, value) for t in trackers]) + "#comments"
    canonical = canonical_url(url)
    names = {k for k, _ in parse_qsl(urlsplit(canonical).query)}
    assert not names & set(TRACKING)
    assert "#" not in canonical
    assert canonical == canonical_url(build(host, path, query))


@given(hosts, paths, paths)
def test_different_articles_stay_different(host: str, path_a: str, path_b: str) -> None:
    a, b = f"https://{host}{path_a}", f"https://{host}{path_b}"
    if path_a.rstrip("/") != path_b.rstrip("/"):
        assert url_id(a) != url_id(b)


@given(hosts, paths, params, st.sampled_from([
    "https://amp.{h}{p}", "https://m.{h}{p}", "https://{h}{p}/amp", "https://{h}/amp{p}",
    "http://www.{h}{p}?amp=1", "https://mobile.{h}{p}/", "https://www.{h}{p}#x",
]))  # fmt: skip
@example("m.0.com", "/", [], "https://amp.{h}{p}")  # the AMP page of a mobile host
def test_amp_and_mobile_variants_are_the_same_article(
    host: str, path: str, query: list[tuple[str, str]], variant: str
) -> None:
    url = build(host, path, query)
    sep = "&" if "?" in variant else "?"
    qs = "&".join(f"{k}={v}" for k, v in query)
    other = variant.format(h=host, p=path) + (f"{sep}{qs}" if qs and "#" not in variant else "")
    if "#" in variant and qs:
        other = f"https://www.{host}{path}?{qs}#x"
    assert url_id(other) == url_id(url)


@given(st.lists(st.sampled_from(["a", "b", "amp", "m", "news", "2024", "x.html"]), max_size=5),
       st.sampled_from(["", "?id=1", "?amp=1&id=2", "#top"]))  # fmt: skip
def test_idempotent_on_awkward_paths(segments: list[str], suffix: str) -> None:
    once = canonical_url("https://M.Example.com/" + "/".join(segments) + suffix)
    assert canonical_url(once) == once


def test_amp_cache_and_amp_html() -> None:
    assert (
        canonical_url("https://example-com.cdn.ampproject.org/c/s/example.com/news/a.amp.html")
        == "https://example.com/news/a.html"
    )
    assert canonical_url("https://example.com/news/a?outputType=amp&id=3") == (
        "https://example.com/news/a?id=3"
    )


def test_noise_is_removed() -> None:
    assert (
        canonical_url("HTTPS://Example.COM:443/News/Story/?b=2&a=1&utm_source=tw#top")
        == "https://example.com/News/Story?a=1&b=2"
    )
    assert canonical_url("http://example.com:80") == "http://example.com/"


def test_same_site() -> None:
    assert same_site("https://www.example.com/a", "https://example.com/b")
    assert not same_site("https://evil.example.org/a", "https://example.com/b")
