"""A loopback HTTP server for tests: static routes, hostile behaviours, and a request log."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Behaviour = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Route:
    """A canned response; ``behaviour`` (if set) writes the response itself."""

    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    behaviour: Behaviour | None = None


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    at: float
    peer: int = 0  # the client's port: one per connection


class QuietServer(ThreadingHTTPServer):
    """Hostile behaviours break connections on purpose: no tracebacks for that."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class Newsroom:
    """Serve routes on 127.0.0.1 (or another loopback address) on a free port."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.fallback: Callable[[str], Route | None] | None = None  # gets path and query
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd = QuietServer((host, 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def add(self, path: str, route: Route | None = None, **kwargs: Any) -> str:
        """Serve ``path``; returns its absolute URL."""
        self.routes[path] = route or Route(**kwargs)
        return self.url(path)

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for hit in self.hits if hit.path == path)

    def requests_to(self, path: str) -> list[Hit]:
        with self.lock:
            return [hit for hit in self.hits if hit.path == path]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        room = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with room.lock:
                    room.hits.append(
                        Hit(
                            path,
                            {k.lower(): v for k, v in self.headers.items()},
                            time.time(),
                            self.client_address[1],
                        )
                    )
                    room.in_flight += 1
                    room.max_in_flight = max(room.max_in_flight, room.in_flight)
                route = room.routes.get(path)
                if route is None and room.fallback is not None:
                    route = room.fallback(self.path)  # with the query: pages differ by it
                try:
                    self._serve(route)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with room.lock:
                        room.in_flight -= 1

            def _serve(self, route: Route | None) -> None:
                if route is None:
                    self.send_error(404)
                    return
                if route.delay_s:
                    time.sleep(route.delay_s)
                if route.behaviour is not None:
                    route.behaviour(self)
                    return
                self.send_response(route.status)
                if route.content_type:
                    self.send_header("Content-Type", route.content_type)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


# Behaviours of hostile servers ---------------------------------------------------------


def endless_body(handler: BaseHTTPRequestHandler) -> None:
    """200 text/html, chunked, never ending."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = b"<p>" + b"x" * 65_536 + b"</p>"
    while True:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))


def slow_drip(handler: BaseHTTPRequestHandler) -> None:
    """200 text/html, one byte every half second."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    for _ in range(100_000):
        handler.wfile.write(b"x")
        handler.wfile.flush()
        time.sleep(0.5)


def connection_reset(handler: BaseHTTPRequestHandler) -> None:
    """Abort the connection with a TCP RST before answering."""
    linger = struct.pack("ii", 1, 0)  # on, 0 s: close() sends RST
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    handler.close_connection = True
    for stream in (handler.rfile, handler.wfile):
        stream.close()
    handler.connection.close()


def hang(handler: BaseHTTPRequestHandler) -> None:
    """Accept and never answer."""
    time.sleep(60)


def http_date(timestamp: float) -> str:
    return formatdate(timestamp, usegmt=True)
