from __future__ import annotations

import logging
import socket
import time

import pytest
from celery import Celery

from worker.celery_app import warm_sender


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_broker_that_does_not_answer_leaves_the_first_send_to_connect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Warming up at process start must neither fail the process nor hold it: the
    workers' broker settings retry a connection forever."""
    celery = Celery("warm", broker=f"redis://127.0.0.1:{closed_port()}/0")
    celery.conf.broker_connection_max_retries = None
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="worker.celery_app"):
        warm_sender(celery)
    assert time.monotonic() - started < 10
    assert "could not connect to the broker" in caplog.text
