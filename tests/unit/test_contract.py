"""The public contract: message schemas and the AsyncAPI document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from worker.keys import Keys
from worker.publish.schema import SCHEMA_DIR, SCHEMA_FILES

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / ".cache" / "asyncapi" / "node_modules" / "@asyncapi" / "specs" / "schemas"


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES.values()))
def test_message_schemas_are_valid_json_schema(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads((SCHEMA_DIR / name).read_text()))


def test_asyncapi_document_validates_against_the_official_schema() -> None:
    schema_file = SPECS / "3.0.0-without-$id.json"
    if not schema_file.exists():
        pytest.skip("npm @asyncapi/specs not installed (make test installs it when npm exists)")
    document = yaml.safe_load((SCHEMA_DIR / "asyncapi.yaml").read_text())
    validator = jsonschema.Draft7Validator(json.loads(schema_file.read_text()))
    assert [e.message for e in validator.iter_errors(document)] == []
    broken = {**document, "operations": {"x": {"action": "shout"}}}
    assert list(validator.iter_errors(broken))  # the check can fail


def test_asyncapi_refers_to_our_schemas_and_stream_names() -> None:
    document = yaml.safe_load((SCHEMA_DIR / "asyncapi.yaml").read_text())
    files = {r.removeprefix("./") for r in refs(document) if not r.startswith("#")}
    assert files == set(SCHEMA_FILES.values())
    keys = Keys()
    addresses = {c["address"] for c in document["channels"].values()}
    assert addresses == {keys.articles, keys.duplicates, keys.deadletter}
