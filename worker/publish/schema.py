"""Message schemas of the public streams: names, versions, and validation.

The JSON Schema files in ``config/schema/`` are the contract; this module names them
and validates messages against them (tests validate every message they see).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

ARTICLE_SCHEMA = "newswire.article/1"
DUPLICATE_SCHEMA = "newswire.duplicate/1"
DEADLETTER_SCHEMA = "newswire.deadletter/1"

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "config" / "schema"
SCHEMA_FILES = {
    ARTICLE_SCHEMA: "article.v1.json",
    DUPLICATE_SCHEMA: "duplicate.v1.json",
    DEADLETTER_SCHEMA: "deadletter.v1.json",
}


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Return the JSON Schema for a message schema name such as ``newswire.article/1``."""
    return dict(json.loads((SCHEMA_DIR / SCHEMA_FILES[name]).read_text()))


def validate_message(message: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless ``message`` matches its declared schema."""
    import jsonschema

    schema = load_schema(str(message.get("schema")))
    jsonschema.Draft202012Validator(schema).validate(message)


def duplicate_message(article: dict[str, Any], duplicate_of: str, similarity: float) -> dict:
    """Turn an article document into the message for the duplicates stream."""
    return {
        **article,
        "schema": DUPLICATE_SCHEMA,
        "duplicate_of": duplicate_of,
        "similarity": round(similarity, 4),
    }


def deadletter_message(
    *,
    kind: str,
    reason: str,
    detail: str,
    url: str,
    failed_at: str,
    transient: bool,
    feed_url: str | None = None,
    entry_id: str | None = None,
    attempts: int = 0,
) -> dict[str, Any]:
    """The message for the dead-letter stream: what failed, why, and how often."""
    return {
        "schema": DEADLETTER_SCHEMA,
        "kind": kind,
        "reason": reason,
        "detail": detail[:2000],
        "url": url,
        "feed_url": feed_url,
        "entry_id": entry_id,
        "attempts": attempts,
        "transient": transient,
        "failed_at": failed_at,
    }
