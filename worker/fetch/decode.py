"""Turn a raw response body into bytes and text under our caps.

HTTP clients and trafilatura decompress without a bound (reliability.md), so we inflate
gzip, deflate and brotli ourselves, chunk by chunk, never producing more than the cap
allows: zlib's ``max_length``, brotli's ``output_buffer_limit`` (brotli 1.2).
"""

from __future__ import annotations

import codecs
import re
import zlib
from collections.abc import Iterator

import brotli
from charset_normalizer import from_bytes

from worker.errors import PermanentFetchError

ACCEPT_ENCODING = "gzip, deflate, br"
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
        self._zlib: zlib._Decompress | None = None
        self._brotli: brotli.Decompressor | None = None
        if encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
        elif encoding == "br":
            self._brotli = brotli.Decompressor()
        elif encoding not in ("", "identity"):
            raise PermanentFetchError("unsupported_encoding", url, f"Content-Encoding {encoding}")

    def feed(self, chunk: bytes) -> bytes:
        """Return the decoded bytes of one raw chunk."""
        try:
            if self._zlib is not None:
                return self._inflate(self._zlib, chunk)
            if self._brotli is not None:
                return self._unbrotli(self._brotli, chunk)
        except (zlib.error, brotli.error) as exc:
            raise PermanentFetchError(
                "decode_error", self._url, f"bad compressed body: {exc}"
            ) from None
        return self._count(chunk)

    def _inflate(self, inflater: zlib._Decompress, chunk: bytes) -> bytes:
        out = bytearray()
        data = chunk
        while data:
            out += self._count(inflater.decompress(data, self._room()))
            data = inflater.unconsumed_tail
        return bytes(out)

    def _unbrotli(self, decompressor: brotli.Decompressor, chunk: bytes) -> bytes:
        # Past the limit, brotli keeps the rest of its output for calls with no input,
        # one limit's worth at a time, until it can take input again.
        out = bytearray(self._count(decompressor.process(chunk, output_buffer_limit=self._room())))
        while not decompressor.can_accept_more_data():
            piece = decompressor.process(b"", output_buffer_limit=self._room())
            if not piece:
                break
            out += self._count(piece)
        return bytes(out)

    def _room(self) -> int:
        """Output to ask for at most: one byte past the cap is enough to refuse the body."""
        return self._max - self._size + 1

    def _count(self, piece: bytes) -> bytes:
        self._size += len(piece)
        if self._size > self._max:
            raise PermanentFetchError(
                "body_too_large", self._url, f"body exceeds {self._max} bytes (decoded)"
            )
        return piece


def charset_of(content_type: str) -> str | None:
    """Return the charset parameter of a Content-Type header, if any."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'").lower()
    return None


def decode_html(body: bytes | memoryview, content_type: str) -> str:
    """Decode HTML bytes: BOM, then header charset, then <meta charset>, then detection."""
    head = bytes(body[:4])
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return str(body, encoding, "replace")
    for candidate in _declared_charsets(body, content_type):
        if _text_encoding(candidate):
            try:
                return str(body, candidate)
            except (UnicodeError, LookupError):
                continue  # the declaration lied; keep looking
    try:
        return str(body, "utf-8")
    except UnicodeDecodeError:
        best = from_bytes(bytes(body[:200_000])).best()
        encoding = best.encoding if best is not None else "cp1252"
        return str(body, encoding, "replace")


def _declared_charsets(body: bytes | memoryview, content_type: str) -> Iterator[str]:
    """The charsets the response declares: the header's, then (read only if needed) the
    page's <meta>."""
    if charset := charset_of(content_type):
        yield charset
    if charset := _meta_charset(body):
        yield charset


def _meta_charset(body: bytes | memoryview) -> str | None:
    match = _META_CHARSET.search(body[:4096])
    return match.group(1).decode("ascii", "ignore").lower() if match else None


def _text_encoding(name: str) -> bool:
    """Whether ``name`` is an encoding a page may declare: a text encoding Python knows
    ("base64" and "zlib" are codecs, not text encodings), and not UTF-7, which decodes
    to lone surrogates that no UTF-8 can carry (and hides markup from filters)."""
    try:
        codec = codecs.lookup(name)
    except LookupError:
        return False
    return codec.name != "utf-7" and getattr(codec, "_is_text_encoding", True)
