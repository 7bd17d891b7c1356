"""Atomic multi-key operations, one Lua script each (see each file's header)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import redis


@cache
def source(name: str) -> str:
    """Return the text of ``<name>.lua``."""
    return (files(__package__) / f"{name}.lua").read_text()


class Scripts:
    """Registered scripts for one client (EVALSHA with automatic reload)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._scripts: dict[str, Any] = {}

    def __call__(self, name: str, keys: list[str], args: list[Any]) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self._client.register_script(source(name))
        return script(keys=keys, args=args)
