"""Which URLs and addresses we may fetch. Pure policy: no sockets are opened here."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from worker.errors import PermanentFetchError

ALLOWED_SCHEMES = frozenset({"http", "https"})
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT


def check_url(url: str) -> str:
    """Return the URL's host if its scheme and host are acceptable; raise otherwise."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise PermanentFetchError("invalid_url", url, str(exc)) from None
    if port == 0:
        raise PermanentFetchError("invalid_url", url, "port 0")
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise PermanentFetchError("unsupported_scheme", url, f"scheme {parts.scheme!r}")
    if not host:
        raise PermanentFetchError("invalid_url", url, "no host")
    return host


def is_public_address(address: str) -> bool:
    """Whether an IP address is globally routable (not loopback, private, link-local,
    multicast, reserved, unspecified or shared address space)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_ADDRESS_SPACE):
        return False
    return ip.is_global


def allowed_addresses(addresses: list[str], allow_private: bool) -> list[str]:
    """Filter resolved addresses by the private-network policy."""
    return [a for a in addresses if allow_private or is_public_address(a)]
