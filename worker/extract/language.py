"""Language detection for pages and feeds that do not declare their language."""

from __future__ import annotations

SAMPLE_CHARS = 3000
MIN_CHARS = 40


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language (py3langid, trafilatura's own choice)."""
    sample = text[:SAMPLE_CHARS]
    if len(sample.strip()) < MIN_CHARS:
        return None
    import py3langid  # loaded on first use: its model takes about half a second

    code, _score = py3langid.classify(sample)
    return str(code)
