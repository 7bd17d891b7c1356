"""Dates from feeds and pages, as the stream contract writes them: ISO 8601 UTC with a Z."""

from __future__ import annotations

import calendar
import time
from typing import Any

from feedparser.datetimes import _parse_date


def iso_from_struct(parsed: time.struct_time | None) -> str | None:
    """A UTC ``struct_time`` (feedparser's ``*_parsed``) as ISO 8601 UTC."""
    if not parsed:
        return None
    try:
        utc = time.gmtime(calendar.timegm(parsed))
    except (OverflowError, ValueError):
        return None
    if not 1000 <= utc.tm_year <= 9999:  # %Y writes 999, not 0999: no longer ISO 8601
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", utc)


def iso_from_text(value: Any) -> str | None:
    """A date as sites write it (RFC 822, ISO 8601 / W3CDTF with any offset, and the other
    forms feedparser reads in XML feeds) as ISO 8601 UTC; None when it is no date."""
    if not value:
        return None
    return iso_from_struct(_parse_date(str(value).strip()))
