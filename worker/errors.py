"""The exception tree. Every error carries a stable ``reason`` slug and a ``transient`` flag.

* NewswireError               reason, url, transient
  + FetchError                anything between us and the bytes of a response
    - TransientFetchError     timeout, connection_error, connection_reset, deadline_exceeded,
                              http_429, http_5xx: retried with backoff
    - PermanentFetchError     blocked_address, unsupported_scheme, invalid_url,
                              too_many_redirects, redirect_loop, body_too_large,
                              bad_content_type, empty_body, robots_disallowed,
                              http_4xx (http_404, http_410...)
    - HostBusy                host_busy: the host's politeness budget is spent; try later
                              (not a failure of the feed or entry: no attempt is counted)
  + FeedError                 not_a_feed: the body is not a feed we can read;
                              feed_error: its answer broke a poll in a way no check foresaw
  + ExtractionError           no_content: neither page nor feed gave text;
                              extraction_error: the page broke extraction or publishing

Reasons appear verbatim in dead letters, feed status and metrics, so they never change
meaning once released. The retry policy keys on ``transient``, never on message text.
"""

from __future__ import annotations

# What library code raises on input it did not expect (UnicodeError is a ValueError,
# KeyError and IndexError are LookupErrors, OverflowError an ArithmeticError): caught where
# one hostile feed or page must end as its own recorded failure, not as a crash that comes
# back at each retry. Not Redis errors, not Celery's time limits.
UNEXPECTED_DATA_ERRORS = (
    ValueError, TypeError, LookupError, ArithmeticError, RecursionError, AttributeError,
)  # fmt: skip


class NewswireError(Exception):
    """Base of all errors we record; ``reason`` is a stable slug."""

    transient: bool = False

    def __init__(
        self, reason: str, url: str = "", detail: str = "", retry_after: float | None = None
    ) -> None:
        self.reason = reason
        self.url = url
        self.detail = detail
        self.retry_after = retry_after  # seconds the server asked us to wait, if it did
        super().__init__(f"{reason}: {detail or url}")


class FetchError(NewswireError):
    """A request did not yield an acceptable response body."""


class TransientFetchError(FetchError):
    """Worth retrying later: the same request may well succeed."""

    transient = True


class PermanentFetchError(FetchError):
    """Retrying the same request will fail the same way."""


class HostBusy(TransientFetchError):
    """The host already has its share of our requests in flight or too recently."""


class FeedError(NewswireError):
    """The response is not a feed we can parse."""


class ExtractionError(NewswireError):
    """No article text could be produced."""


def http_status_error(status: int, url: str, retry_after: float | None = None) -> FetchError:
    """Map an unexpected HTTP status to the error class and reason that describe it."""
    reason = f"http_{status}"
    if status in (408, 425, 429) or status >= 500:
        return TransientFetchError(reason, url, f"HTTP {status}", retry_after)
    return PermanentFetchError(reason, url, f"HTTP {status}", retry_after)


# Feed polls count failures with these weights: a 403/404/429 is often temporary
# misconfiguration or rate limiting, so it backs off less than a hard failure.
SOFT_REASONS = frozenset({"http_403", "http_404", "http_429", "host_busy"})


def failure_weight(reason: str) -> float:
    """How much one failure of this kind adds to a feed's error score."""
    return 0.5 if reason in SOFT_REASONS else 1.0
