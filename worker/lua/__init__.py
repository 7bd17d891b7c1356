"""Atomic multi-key operations, one Lua script each (see each file's header)."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files
from typing import Any

import redis
from redis.exceptions import NoScriptError


@cache
def source(name: str) -> str:
    """Return the text of ``<name>.lua``."""
    return (files(__package__) / f"{name}.lua").read_text()


@cache
def _sha(name: str) -> str:
    return hashlib.sha1(source(name).encode()).hexdigest()


def run_script(client: redis.Redis, name: str, keys: list[str], args: list[Any]) -> Any:
    """EVALSHA the script, loading it first if the server does not know it (a restart)."""
    try:
        return client.evalsha(_sha(name), len(keys), *keys, *args)
    except NoScriptError:
        client.script_load(source(name))
        return client.evalsha(_sha(name), len(keys), *keys, *args)
