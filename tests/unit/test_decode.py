from __future__ import annotations

import gzip
import tracemalloc
import zlib

import brotli
import pytest

from worker.errors import PermanentFetchError
from worker.fetch.decode import BoundedDecoder, decode_html


def chunks(data: bytes, size: int = 65_536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def read_capped(pieces: list[bytes], decoder: BoundedDecoder) -> bytes:
    """The body as the client's write callback builds it, a chunk at a time."""
    return b"".join(decoder.feed(piece) for piece in pieces)


def test_gzip_bomb_stops_at_the_cap() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000, compresslevel=9)
    assert len(bomb) < 100_000
    with pytest.raises(PermanentFetchError) as info:
        read_capped(chunks(bomb), BoundedDecoder("gzip", 1_000_000, "http://x/"))
    assert info.value.reason == "body_too_large"


def test_brotli_bomb_stops_at_the_cap_without_inflating_it() -> None:
    bomb = brotli.compress(b"\0" * 200_000_000, quality=9)
    assert len(bomb) < 10_000
    tracemalloc.start()
    try:
        with pytest.raises(PermanentFetchError) as info:
            read_capped(chunks(bomb, 1024), BoundedDecoder("br", 1_000_000, "http://x/"))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.reason == "body_too_large"
    assert peak < 4_000_000  # the bomb was never inflated past the cap


def test_every_encoding_within_cap() -> None:
    text = b"<p>hello</p>" * 100_000  # 1.2 MB: brotli's output comes in several limits
    for encoding, packed in [
        ("gzip", gzip.compress(text)),
        ("deflate", zlib.compress(text)),
        ("br", brotli.compress(text)),
    ]:
        assert read_capped(chunks(packed, 100), BoundedDecoder(encoding, 2 << 20, "u")) == text


def test_body_at_exactly_the_cap_passes() -> None:
    text = b"a" * 50_000
    for encoding, packed in [
        ("", text),
        ("gzip", gzip.compress(text)),
        ("br", brotli.compress(text)),
    ]:
        assert read_capped(chunks(packed, 7), BoundedDecoder(encoding, 50_000, "u")) == text
        with pytest.raises(PermanentFetchError):
            read_capped(chunks(packed, 7), BoundedDecoder(encoding, 49_999, "u"))


def test_identity_cap_and_unknown_encoding() -> None:
    with pytest.raises(PermanentFetchError):
        read_capped(chunks(b"x" * 2000, 100), BoundedDecoder("", 1000, "u"))
    with pytest.raises(PermanentFetchError) as info:
        BoundedDecoder("zstd", 1000, "u")
    assert info.value.reason == "unsupported_encoding"


def test_corrupt_brotli_is_a_decode_error() -> None:
    with pytest.raises(PermanentFetchError) as info:
        read_capped([b"\xff\xff\xff\xff garbage"], BoundedDecoder("br", 1000, "u"))
    assert info.value.reason == "decode_error"


def test_corrupt_gzip_is_a_decode_error() -> None:
    with pytest.raises(PermanentFetchError) as info:
        read_capped([b"\x1f\x8b\x08\x00garbage-garbage"], BoundedDecoder("gzip", 1000, "u"))
    assert info.value.reason == "decode_error"


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("café".encode("latin-1"), "text/html; charset=iso-8859-1", "café"),
        (b'<meta charset="windows-1251">' + "Пример".encode("cp1251"), "text/html", "Пример"),
        ("\ufeffhello".encode("utf-8"), "text/html; charset=latin-1", "hello"),
        ("naïve".encode(), "text/html; charset=ascii", "naïve"),  # the header lies
    ],
)
def test_charset_precedence(body: bytes, content_type: str, expected: str) -> None:
    assert expected in decode_html(body, content_type)


def test_invalid_utf8_does_not_crash() -> None:
    assert decode_html(b"<p>ok \xff\xfe\xfa end</p>", "text/html")


@pytest.mark.parametrize("charset", ["base64", "zlib", "rot13", "undefined", "punycode", "utf-7"])
def test_a_declared_charset_that_is_no_text_encoding_is_ignored(charset: str) -> None:
    body = b"<html><p>plain +2AA- text</p></html>"
    meta = body.replace(b"<html>", f'<html><meta charset="{charset}">'.encode())
    for page, declared in ((body, f"text/html; charset={charset}"), (meta, "text/html")):
        html = decode_html(page, declared)
        assert "plain +2AA- text" in html  # as UTF-8: UTF-7 would give a lone surrogate
        html.encode()
