"""Is this worker's Celery consumer still taking work? (celery#8030, #10205, kombu#2629)

After a Redis restart or a dropped connection, a worker can stay alive, heartbeating,
and never take another message (reliability.md, failure mode 1). Liveness is therefore
not enough: a worker is stalled when its queues hold messages, it has room for more, and
it has received nothing for ``stall_s``. The worker then exits, and its supervisor
(`newswire run`, or the container's restart policy) starts a fresh one; acks_late and
the ledger's leases bring back whatever it held.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from kombu import Connection

QueueDepth = Callable[[], "int | None"]


@dataclass
class ConsumptionWatch:
    """Feed it what the worker sees now and then; it says when the consumer is stalled."""

    stall_s: float
    _since: float | None = field(default=None, init=False)  # start of the current stall

    def stalled(
        self, now: float, waiting: int | None, reserved: int, capacity: int, received_at: float
    ) -> bool:
        """``waiting``: messages in the worker's queues (None: Redis did not answer);
        ``reserved``: tasks it holds; ``received_at``: when it last received one."""
        if waiting is None or waiting == 0 or reserved >= capacity:
            self._since = None  # nothing to take, no room, or no way to tell: not stalled
            return False
        start = max(self._since if self._since is not None else now, received_at)
        self._since = start
        return self.stall_s > 0 and now - start >= self.stall_s


def queue_depth(broker_url: str, queues: list[str]) -> QueueDepth | None:
    """A function counting the messages waiting in ``queues`` (None when the broker does
    not answer), or None for a broker whose queues we cannot count."""
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        return _RedisDepth(broker_url, queues)
    if broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
        return _AmqpDepth(broker_url, queues)
    return None


class _RedisDepth:
    """Celery's Redis transport keeps a queue's messages in a list of its name."""

    def __init__(self, url: str, queues: list[str]) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._queues = queues

    def __call__(self) -> int | None:
        try:
            return sum(int(self._client.llen(queue)) for queue in self._queues)
        except redis.RedisError:
            return None


class _AmqpDepth:
    """RabbitMQ says how many messages are ready in a queue when it is declared passively.
    One connection, kept between checks (a new one every heartbeat would fill the broker's
    log), opened again after any error."""

    def __init__(self, url: str, queues: list[str]) -> None:
        self._url = url
        self._queues = queues
        self._connection: Connection | None = None
        self._channel: Any = None

    def __call__(self) -> int | None:
        if self._connection is None:
            self._connection = Connection(self._url, connect_timeout=5)
        connection = self._connection
        try:
            if self._channel is None:
                self._channel = connection.channel()
            declare = self._channel.queue_declare
            return sum(declare(queue=q, passive=True).message_count for q in self._queues)
        except (OSError, *connection.connection_errors, *connection.channel_errors):
            self.close()  # broker away, or a queue not declared yet (404 closes the channel)
            return None

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None
            self._channel = None
