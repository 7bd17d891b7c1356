"""Text fingerprints: an exact hash of normalized text and a near-duplicate SimHash."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from trafilatura.deduplication import content_fingerprint

_WORD = re.compile(r"\w+")


def normalize_text(text: str) -> str:
    """Reduce text to lower-case word tokens, so spacing, punctuation and case do not count."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_WORD.findall(folded))


def content_hash(text: str) -> str:
    """Exact fingerprint of the normalized text (hex, 128 bits of SHA-256)."""
    return hashlib.sha256(normalize_text(text).encode()).hexdigest()[:32]


def simhash(text: str) -> str:
    """64-bit SimHash (hex) of the text, for near-duplicate detection."""
    return content_fingerprint(text)
