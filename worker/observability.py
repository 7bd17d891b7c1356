"""Logging set-up and the liveness heartbeat."""

from __future__ import annotations

import logging
import os
import socket
import sys

import redis

from worker.keys import Keys
from worker.lua import run_script

LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def setup_logging(level: str) -> None:
    """One format for every process; noisy libraries kept at WARNING."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr, force=True)
    noisy = (
        "urllib3",
        "trafilatura",
        "htmldate",
        "courlan",
        "charset_normalizer",
        "celery.worker.strategy",
        "celery.app.trace",
    )  # per-task lines: ours say more
    for name in noisy:
        logging.getLogger(name).setLevel(logging.WARNING)


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(client: redis.Redis, keys: Keys, role: str, ttl_s: int = 30) -> None:
    """Say this process is alive for ``ttl_s`` (``newswire status`` lists heartbeats)."""
    name = process_name()
    pipe = client.pipeline(transaction=True)
    pipe.set(keys.heartbeat(role, name), "1", ex=ttl_s)
    pipe.sadd(keys.heartbeats, f"{role}:{name}")
    pipe.execute()


def stop_beating(client: redis.Redis, keys: Keys, roles: list[str]) -> None:
    """Say at once that this process is gone (a command starting now must not count on it)."""
    name = process_name()
    pipe = client.pipeline(transaction=True)
    pipe.delete(*(keys.heartbeat(role, name) for role in roles))
    pipe.srem(keys.heartbeats, *(f"{role}:{name}" for role in roles))
    pipe.execute()


def live_processes(client: redis.Redis, keys: Keys) -> list[str]:
    """Every process with a live heartbeat, as "role:host:pid", sorted."""
    members = sorted(client.smembers(keys.heartbeats))
    if not members:
        return []
    beats = [keys.heartbeat(*member.split(":", 1)) for member in members]
    return list(run_script(client, "live_heartbeats", [keys.heartbeats, *beats], members))
