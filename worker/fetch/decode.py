"""Turn a raw response body into bytes and text under our caps.

HTTP clients and trafilatura decompress without a bound (reliability.md), so we ask
only for gzip/deflate and inflate chunk by chunk with ``max_length``.
"""

from __future__ import annotations

import codecs
import re
import zlib
from collections.abc import Iterable

from charset_normalizer import from_bytes

from worker.errors import PermanentFetchError

ACCEPT_ENCODING = "gzip, deflate"
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class BoundedDecoder:
    """Inflate a Content-Encoding stream, refusing more than ``max_bytes`` of output."""

    def __init__(self, content_encoding: str, max_bytes: int, url: str) -> None:
        encoding = content_encoding.strip().lower()
        self._url = url
        self._max = max_bytes
        self._size = 0
        if encoding in ("", "identity"):
            self._zlib = None
        elif encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
        else:
            raise PermanentFetchError("unsupported_encoding", url, f"Content-Encoding {encoding}")

    def feed(self, chunk: bytes) -> bytes:
        """Return the decoded bytes of one raw chunk."""
        if self._zlib is None:
            return self._count(chunk)
        out = bytearray()
        data = chunk
        try:
            while data:
                piece = self._zlib.decompress(data, self._max - self._size + 1)
                out += self._count(piece)
                data = self._zlib.unconsumed_tail
        except zlib.error as exc:
            raise PermanentFetchError(
                "decode_error", self._url, f"bad compressed body: {exc}"
            ) from None
        return bytes(out)

    def _count(self, piece: bytes) -> bytes:
        self._size += len(piece)
        if self._size > self._max:
            raise PermanentFetchError(
                "body_too_large", self._url, f"body exceeds {self._max} bytes (decoded)"
            )
        return piece


def read_capped(chunks: Iterable[bytes], decoder: BoundedDecoder) -> bytes:
    """Join decoded chunks; the decoder raises as soon as the cap is passed."""
    return b"".join(decoder.feed(chunk) for chunk in chunks)


def charset_of(content_type: str) -> str | None:
    """Return the charset parameter of a Content-Type header, if any."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'").lower()
    return None


def decode_html(body: bytes, content_type: str) -> str:
    """Decode HTML bytes: BOM, then header charset, then <meta charset>, then detection."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body.decode(encoding, errors="replace")
    for candidate in (charset_of(content_type), _meta_charset(body)):
        if candidate and _known(candidate):
            try:
                return body.decode(candidate)
            except UnicodeDecodeError:
                continue  # the declaration lied; keep looking
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        best = from_bytes(body[:200_000]).best()
        encoding = best.encoding if best is not None else "cp1252"
        return body.decode(encoding, errors="replace")


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:4096])
    return match.group(1).decode("ascii", "ignore").lower() if match else None


def _known(encoding: str) -> bool:
    try:
        codecs.lookup(encoding)
    except LookupError:
        return False
    return True
