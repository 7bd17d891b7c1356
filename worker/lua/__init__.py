"""Atomic multi-key operations, one Lua script each (see each file's header).

A script shares a function with others through a line ``-- include: <name>``, replaced
by the text of ``<name>.lua`` when the script is loaded (Redis scripts cannot import).
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib.resources import files
from typing import Any

import redis
from redis.exceptions import NoScriptError

_INCLUDE = re.compile(r"^-- include: (\w+)$", re.M)


@cache
def source(name: str) -> str:
    """Return the text of ``<name>.lua``, its includes replaced by their text."""
    text = (files(__package__) / f"{name}.lua").read_text()
    return _INCLUDE.sub(lambda match: source(match.group(1)), text)


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
