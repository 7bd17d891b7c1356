"""Is this worker's Celery consumer still taking work? (celery#8030, #10205, kombu#2629)

After a Redis restart or a dropped connection, a worker can stay alive, heartbeating,
and never take another message (reliability.md, failure mode 1). Liveness is therefore
not enough: a worker is stalled when its queues hold messages, it has room for more, and
it has received nothing for ``stall_s``. The worker then exits, and its supervisor
(`newswire run`, or the container's restart policy) starts a fresh one; acks_late and
the ledger's leases bring back whatever it held.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
