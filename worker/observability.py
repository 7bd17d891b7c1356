"""Logging set-up and the liveness heartbeat."""

from __future__ import annotations

import logging
import os
import socket
import sys

import redis

from worker.keys import Keys

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
    """Say this process is alive (``newswire status`` lists heartbeats)."""
    client.set(keys.heartbeat(role, process_name()), "1", ex=ttl_s)
