"""Text fingerprints: an exact hash of the normalized text, and a MinHash signature for
near duplicates.

MinHash over word 3-shingles estimates the Jaccard similarity of two texts; chosen over
SimHash by measurement (bench/dedup.py): on light edits of real articles (sentences
dropped, words changed, lines added) 64-bit SimHash distances overlap those of unrelated
stories, while MinHash separates them. Bands of 2 values (32 bits) find candidates
(LSH), and the low bytes of all 32 values estimate their similarity.

The hash family is ``MINHASH_FAMILY`` (signatures of two families cannot be compared):
each word is hashed once (CRC-32 of its UTF-8), a shingle's 64-bit value combines its
three word hashes (w0 * M0 + w1 * M1 + w2 mod 2**64), and value k of the signature is
the minimum over the shingles of the top 16 bits of (A_k * shingle + B_k) mod 2**64
(multiply-shift hashing), all constants derived from the family's name. Done in numpy,
this costs a third of one blake2b digest per shingle (family 1) on the same articles.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib

import numpy as np

_WORD = re.compile(r"\w+")
SIGNATURE_SIZE = 32  # minimum values, 16 bits each
BAND_ROWS = 2  # values per LSH band: 16 bands of 32 bits
SHINGLE = 3
MINHASH_FAMILY = "newswire.minhash/2"
MINHASH_INDEX_TAG = "mh2"  # the near-duplicate index's keys, one set per family
# Shingles hashed at a time: the working array (32 x 8 bytes a shingle) stays at 32 KiB,
# under the workers' malloc mmap threshold (64 KiB), so it comes from the heap; at 4096
# it was mapped and faulted in afresh at each call: 0.21 against 0.14 ms an article.
_CHUNK = 128


def _constant(label: str) -> int:
    """A 64-bit constant of the hash family, derived from its name (never from an RNG)."""
    digest = hashlib.blake2b(f"{MINHASH_FAMILY}:{label}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


SHINGLE_WEIGHTS = (_constant("m0") | 1, _constant("m1") | 1)
MULTIPLIERS = tuple(_constant(f"a{k}") | 1 for k in range(SIGNATURE_SIZE))
INCREMENTS = tuple(_constant(f"b{k}") for k in range(SIGNATURE_SIZE))
_M0, _M1 = (np.uint64(w) for w in SHINGLE_WEIGHTS)
_A = np.array(MULTIPLIERS, dtype=np.uint64)
_B = np.array(INCREMENTS, dtype=np.uint64)
_TOP_16 = np.uint64(48)
_NONE = np.iinfo(np.uint64).max


def normalize_text(text: str) -> str:
    """Reduce text to lower-case word tokens, so spacing, punctuation and case do not count."""
    folded = nfkc_by_line(text).casefold()
    return " ".join(_WORD.findall(folded))


def nfkc_by_line(text: str) -> str:
    """NFKC, a line at a time where the text is not NFKC already. One character that fails
    NFKC's quick check sends a whole string through its slow path: 1.9 ms for a
    53,000-character article with an ellipsis in it. A newline is never changed and never
    combines with its neighbours, so lines normalized apart give the same result."""
    if unicodedata.is_normalized("NFKC", text):
        return text
    return "\n".join([unicodedata.normalize("NFKC", line) for line in text.split("\n")])


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
    tokens = normalized.encode().split(b" ")
    shingles = _shingle_values(tokens)
    lowest = np.full(SIGNATURE_SIZE, _NONE, dtype=np.uint64)
    work = np.empty((min(len(shingles), _CHUNK), SIGNATURE_SIZE), dtype=np.uint64)
    for start in range(0, len(shingles), _CHUNK):
        chunk = shingles[start : start + _CHUNK, None]
        values = work[: len(chunk)]
        np.multiply(chunk, _A, out=values)
        values += _B
        np.minimum(lowest, values.min(axis=0), out=lowest)
    # the top 16 bits of the lowest value are the lowest top 16 bits (a shift keeps order)
    return tuple((lowest >> _TOP_16).tolist())


def _shingle_values(tokens: list[bytes]) -> np.ndarray:
    """The 64-bit value of each word 3-shingle (a repeated shingle repeats its value,
    which leaves the minima alone); a text of fewer words is one shingle."""
    if len(tokens) < SHINGLE:
        return np.array([zlib.crc32(b" ".join(tokens))], dtype=np.uint64)
    words = np.fromiter(map(zlib.crc32, tokens), dtype=np.uint64, count=len(tokens))
    return words[:-2] * _M0 + words[1:-1] * _M1 + words[2:]


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
