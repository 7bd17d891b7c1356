from __future__ import annotations

import pytest

from worker.errors import PermanentFetchError
from worker.fetch.guard import allowed_addresses, check_url, is_public_address


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "192.168.1.1",
        "172.16.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.1",
        "fc00::1",
    ],
)
def test_private_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert is_public_address(address)


def test_policy_filters_unless_private_allowed() -> None:
    assert allowed_addresses(["127.0.0.1", "8.8.8.8"], allow_private=False) == ["8.8.8.8"]
    assert allowed_addresses(["127.0.0.1"], allow_private=True) == ["127.0.0.1"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "unsupported_scheme"),
        ("ftp://example.com/x", "unsupported_scheme"),
        ("gopher://example.com/", "unsupported_scheme"),
        ("javascript:alert(1)", "unsupported_scheme"),
        ("http:///nohost", "invalid_url"),
        ("http://example.com:99999/", "invalid_url"),
        ("http://example.com:0/", "invalid_url"),  # nothing listens on port 0
    ],
)
def test_bad_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(PermanentFetchError) as info:
        check_url(url)
    assert info.value.reason == reason
