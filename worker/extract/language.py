"""Language detection for pages and feeds that do not declare their language."""

from __future__ import annotations

# py3langid's cost grows with the sample (0.8 ms for 3,000 characters, 0.4 for 1,000);
# on the 149 corpus pages that declare a language, 600, 1,000 and 3,000 characters
# agree with the declaration equally often (97%: the rest declare it wrongly).
SAMPLE_CHARS = 1000
MIN_CHARS = 40


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language (py3langid, trafilatura's own choice)."""
    sample = text[:SAMPLE_CHARS]
    if len(sample.strip()) < MIN_CHARS:
        return None
    import py3langid  # loaded on first use: its model takes about half a second

    code, _score = py3langid.classify(sample)
    return str(code)
