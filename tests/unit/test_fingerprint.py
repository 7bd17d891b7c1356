from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from tests.support import story
from worker.dedup.fingerprint import (
    bands,
    content_hash,
    from_hex,
    minhash,
    minhash_hex,
    normalize_text,
    similarity,
)

words = st.lists(st.text(alphabet="abcdefghij", min_size=1, max_size=8), min_size=1, max_size=50)


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
    """The signature as first defined (one blake2b-512 per distinct word 3-shingle, the
    column minima of its 32 16-bit values): indexed signatures must never change."""
    tokens = normalized.split(" ")
    count = max(len(tokens) - 3 + 1, 1)
    shingles = {" ".join(tokens[i : i + 3]) for i in range(count)}
    digests = [hashlib.blake2b(s.encode(), digest_size=64).digest() for s in shingles]
    return tuple(
        min(int.from_bytes(d[2 * i : 2 * i + 2], "little") for d in digests) for i in range(32)
    )


@given(st.lists(st.text(alphabet="abcdé日", min_size=1, max_size=4), min_size=0, max_size=40))
def test_signature_is_the_one_indexed_signatures_were_made_with(tokens: list[str]) -> None:
    text = " ".join(tokens)
    assert minhash(text) == _reference_minhash(normalize_text(text))
