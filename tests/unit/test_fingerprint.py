from __future__ import annotations

import unicodedata
import zlib

from hypothesis import given
from hypothesis import strategies as st

from tests.support import story
from worker.dedup.fingerprint import (
    INCREMENTS,
    MINHASH_FAMILY,
    MULTIPLIERS,
    SHINGLE_WEIGHTS,
    bands,
    content_hash,
    from_hex,
    minhash,
    minhash_hex,
    nfkc_by_line,
    normalize_text,
    similarity,
)

GOLDEN = (
    "25471aff6057158b09d88fee0cc30a0f0ca13fde02b219c61d86227016a116c7"
    "619d1a0125a502a32931012b27561411230411ca0c2e1c2f319827dc234e000d"
)
words = st.lists(st.text(alphabet="abcdefghij", min_size=1, max_size=8), min_size=1, max_size=50)
# Characters NFKC changes, combines or reorders: combining marks (acute, cedilla, diaeresis,
# with different combining classes), Hangul jamo that compose into syllables, a syllable,
# compatibility forms (no-break space, ellipsis, ligature, fullwidth A, superscript two,
# an Arabic presentation form, Kelvin sign), and line and paragraph separators.
NFKC_SENSITIVE = (
    "ae \u0301\u0327\u0308\u1100\u1161\u11a8\uac00\u00a0\u2026\ufb01\uff21\u00b2"
    "\ufee7\u212a\n\r\u2028\u2029"
)


@given(words)
def test_hash_ignores_spacing_case_and_punctuation(tokens: list[str]) -> None:
    text = " ".join(tokens)
    noisy = "  " + ",\n".join(t.upper() for t in tokens) + "!"
    assert content_hash(text) == content_hash(noisy)
    assert minhash(text) == minhash(noisy)


@given(words, words)
def test_different_words_hash_differently(a: list[str], b: list[str]) -> None:
    if normalize_text(" ".join(a)) != normalize_text(" ".join(b)):
        assert content_hash(" ".join(a)) != content_hash(" ".join(b))


def test_light_edits_stay_similar_and_other_stories_do_not() -> None:
    text = " ".join(story("wire", 8))
    edited = text.replace("Reference", "Ref", 2) + " Updated at noon with new details."
    other = " ".join(story("other", 8))
    assert similarity(minhash(text), minhash(edited)) >= 0.6
    assert similarity(minhash(text), minhash(other)) < 0.3
    assert similarity(minhash(text), minhash(text)) == 1.0


def test_signature_encoding_and_bands() -> None:
    signature = minhash("one two three four five six")
    assert len(signature) == 32 and all(0 <= v < 1 << 16 for v in signature)
    assert from_hex(minhash_hex(signature)) == signature
    assert len(minhash_hex(signature)) == 128
    assert len(bands(signature)) == 16


def _reference_minhash(normalized: str) -> tuple[int, ...]:
    """Family newswire.minhash/2 written out in plain Python, one shingle at a time:
    the numpy code must compute exactly this (indexed signatures must never change)."""
    tokens = normalized.split(" ")
    if len(tokens) < 3:
        shingles = {zlib.crc32(" ".join(tokens).encode())}
    else:
        m0, m1 = SHINGLE_WEIGHTS
        words = [zlib.crc32(t.encode()) for t in tokens]
        triples = zip(words, words[1:], words[2:], strict=False)
        shingles = {(a * m0 + b * m1 + c) % 2**64 for a, b, c in triples}
    return tuple(
        min(((a * x + b) % 2**64) >> 48 for x in shingles)
        for a, b in zip(MULTIPLIERS, INCREMENTS, strict=True)
    )


@given(st.lists(st.text(alphabet="abcdé日", min_size=1, max_size=4), min_size=0, max_size=40))
def test_signature_is_the_one_indexed_signatures_were_made_with(tokens: list[str]) -> None:
    text = " ".join(tokens)
    assert minhash(text) == _reference_minhash(normalize_text(text))


def test_the_hash_family_is_pinned() -> None:
    """Constants of the family, and so every signature, must not drift (a new family
    needs a new MINHASH_FAMILY and index tag)."""
    assert MINHASH_FAMILY == "newswire.minhash/2"
    assert minhash_hex(minhash("The quick brown fox jumps over the lazy dog")) == GOLDEN


def test_a_long_text_is_hashed_in_chunks_with_the_same_result() -> None:
    tokens = [f"w{n % 9001}" for n in range(20_000)]  # > one chunk of shingles
    text = " ".join(tokens)
    assert minhash(text) == _reference_minhash(normalize_text(text))


@given(st.text(alphabet=NFKC_SENSITIVE, max_size=60) | st.text(max_size=60))
def test_nfkc_a_line_at_a_time_is_nfkc_of_the_whole_text(text: str) -> None:
    assert nfkc_by_line(text) == unicodedata.normalize("NFKC", text)


def test_a_mark_after_a_newline_stays_apart_from_the_letter_before_it() -> None:
    text = "cafe\n\u0301x\u2026"
    assert nfkc_by_line(text) == unicodedata.normalize("NFKC", text) == "cafe\n\u0301x..."
