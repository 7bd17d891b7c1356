from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from worker.dates import iso_from_text
from worker.extract.article import page_updated
from worker.extract.merge import merge_updated

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime(1995, 1, 2), max_value=datetime(2099, 12, 30), timezones=offsets
)


@given(moments)
def test_iso_text_with_any_offset_is_the_same_instant_in_utc(moment: datetime) -> None:
    expected = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert iso_from_text(moment.replace(microsecond=0).isoformat()) == expected


def test_rfc822_and_garbage() -> None:
    assert iso_from_text("Tue, 19 Nov 2019 13:03:00 +0100") == "2019-11-19T12:03:00Z"
    assert iso_from_text("yesterday, more or less") is None
    assert iso_from_text("") is None


def page(head: str, body: str = "<p>text</p>") -> str:
    return f"<html><head>{head}</head><body>{body}</body></html>"


def test_page_updated_from_each_source_in_order_of_trust() -> None:
    meta = '<meta property="article:modified_time" content="2024-05-02T10:00:00+02:00">'
    json_ld = '<script type="application/ld+json">{"dateModified": "2024-05-03T00:00:00Z"}</script>'
    og = "<meta content='2024-05-04T08:00:00Z' property='og:updated_time'/>"
    microdata = '<time itemprop="dateModified" datetime="2024-05-05">5 May</time>'
    assert page_updated(page(meta + json_ld + og)) == "2024-05-02T08:00:00Z"
    assert page_updated(page(og + json_ld)) == "2024-05-03T00:00:00Z"
    assert page_updated(page(og)) == "2024-05-04T08:00:00Z"
    assert page_updated(page("", microdata)) == "2024-05-05T00:00:00Z"
    assert page_updated(page('<meta name="date" content="2024-05-01">')) is None


def test_page_updated_skips_what_is_no_credible_date() -> None:
    stale = '<meta property="article:modified_time" content="0001-01-01T00:00:00Z">'
    future = '<meta property="og:updated_time" content="2999-01-01T00:00:00Z">'
    empty = '<script type="application/ld+json">{"dateModified": ""}</script>'
    later = '<script type="application/ld+json">{"dateModified": "2023-02-01T12:00:00Z"}</script>'
    assert page_updated(page(stale + future + empty)) is None
    assert page_updated(page(stale + later)) == "2023-02-01T12:00:00Z"
    assert page_updated(page('<meta property="article:modified_time">')) is None
    assert page_updated("dateModified at the very end") is None


def test_updated_precedence() -> None:
    published = "2024-05-01T10:00:00Z"
    assert merge_updated("2024-05-02T00:00:00Z", "2024-05-03T00:00:00Z", published) == (
        "2024-05-02T00:00:00Z"
    )
    assert merge_updated(None, "2024-05-03T00:00:00Z", published) == "2024-05-03T00:00:00Z"
    # an update before publication is a stale template date: the feed's, else none
    assert merge_updated("2020-01-01T00:00:00Z", "2024-05-03T00:00:00Z", published) == (
        "2024-05-03T00:00:00Z"
    )
    assert merge_updated("2020-01-01T00:00:00Z", None, published) is None
    assert merge_updated("2020-01-01T00:00:00Z", None, None) == "2020-01-01T00:00:00Z"


def test_years_before_1000_are_no_iso_dates() -> None:
    # strftime writes year 999 as "999": the date would break the stream's schema
    assert iso_from_text("0999-01-01T00:00:00Z") is None
    assert iso_from_text("1000-01-01T00:00:00Z") == "1000-01-01T00:00:00Z"
