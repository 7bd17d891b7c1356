from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.dedup.fingerprint import content_hash, normalize_text, simhash

words = st.lists(st.text(alphabet="abcdefghij", min_size=1, max_size=8), min_size=1, max_size=50)


@given(words)
def test_hash_ignores_spacing_case_and_punctuation(tokens: list[str]) -> None:
    text = " ".join(tokens)
    noisy = "  " + ",\n".join(t.upper() for t in tokens) + "!"
    assert content_hash(text) == content_hash(noisy)


@given(words, words)
def test_different_words_hash_differently(a: list[str], b: list[str]) -> None:
    if normalize_text(" ".join(a)) != normalize_text(" ".join(b)):
        assert content_hash(" ".join(a)) != content_hash(" ".join(b))


def test_simhash_is_close_for_light_edits() -> None:
    base = " ".join(f"word{i} token{i % 7} sentence{i % 13}" for i in range(300))
    edited = base.replace("word5 ", "changed ", 1)
    a, b = int(simhash(base), 16), int(simhash(edited), 16)
    assert bin(a ^ b).count("1") <= 6
