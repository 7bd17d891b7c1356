"""Text fingerprints: an exact hash of the normalized text, and a MinHash signature for
near duplicates.

MinHash over word 3-shingles estimates the Jaccard similarity of two texts; chosen over
SimHash by measurement (bench/dedup.py): on light edits of real articles (sentences
dropped, words changed, lines added) 64-bit SimHash distances overlap those of unrelated
stories, while MinHash separates them. 32 minimum values of 16 bits come from one
blake2b digest per shingle; bands of 2 values (32 bits) find candidates (LSH), and the
low bytes of all 32 values estimate their similarity.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

_WORD = re.compile(r"\w+")
SIGNATURE_SIZE = 32  # minimum values, 16 bits each
BAND_ROWS = 2  # values per LSH band: 16 bands of 32 bits
SHINGLE = 3


def normalize_text(text: str) -> str:
    """Reduce text to lower-case word tokens, so spacing, punctuation and case do not count."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_WORD.findall(folded))


def content_hash(text: str) -> str:
    """Exact fingerprint of the normalized text (hex, 128 bits of SHA-256)."""
    return _content_hash(normalize_text(text))


def minhash(text: str) -> tuple[int, ...]:
    """The MinHash signature of a text: 32 values of 16 bits."""
    return _minhash(normalize_text(text))


def fingerprints(text: str) -> tuple[str, str]:
    """(content hash, MinHash hex) of a text, normalizing it once."""
    normalized = normalize_text(text)
    return _content_hash(normalized), minhash_hex(_minhash(normalized))


def _content_hash(normalized: str) -> str:
    return hashlib.sha256(normalized.encode()).hexdigest()[:32]


def _minhash(normalized: str) -> tuple[int, ...]:
    tokens = normalized.encode().split(b" ")  # bytes: one encode, not one per shingle
    if len(tokens) < SHINGLE:
        shingles = {b" ".join(tokens)}
    else:
        shingles = set(map(b" ".join, zip(*(tokens[i:] for i in range(SHINGLE)), strict=False)))
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(s, digest_size=64).digest() for s in shingles])
    # one 64-byte digest per shingle = 32 values of 16 bits; the column minima are the
    # signature (numpy: the minimum over ~600 rows in Python costs three times as much)
    rows = np.frombuffer(digests, dtype="<u2").reshape(-1, SIGNATURE_SIZE)
    return tuple(rows.min(axis=0).tolist())


def minhash_hex(signature: tuple[int, ...]) -> str:
    """The signature as 128 hex characters (the stream field ``minhash``)."""
    return b"".join(v.to_bytes(2, "big") for v in signature).hex()


def from_hex(value: str) -> tuple[int, ...]:
    raw = bytes.fromhex(value)
    return tuple(int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2))


def bands(signature: tuple[int, ...]) -> list[int]:
    """LSH bands: consecutive pairs of values as 32-bit numbers."""
    return [(signature[i] << 16) | signature[i + 1] for i in range(0, len(signature), BAND_ROWS)]


def similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Estimated Jaccard similarity of two signatures from their low bytes (b-bit MinHash)."""
    same = sum((x & 0xFF) == (y & 0xFF) for x, y in zip(a, b, strict=True)) / len(a)
    return max((same - 1 / 256) / (1 - 1 / 256), 0.0)
