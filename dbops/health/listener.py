"""An HTTP server a network cannot exhaust.

A fixed number of worker threads serve connections from a bounded queue; a connection that finds
the queue full is closed at once. Each connection carries one request and has a deadline from
the moment it was accepted: a client that has not sent its whole request by then (a slow or
half-open one) is dropped, however it drips its bytes. TLS, when given, is negotiated on the
worker under the same deadline, so a stalled handshake cannot block accepting.
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

LOG = logging.getLogger("dbops.health.server")

WORKERS = 8
BACKLOG = 64
REQUEST_TIMEOUT = 10.0
"""Seconds from accepting a connection to having read its request."""

_Item = tuple[socket.socket, Any, float]


class _DeadlineReader(io.RawIOBase):
    """Reads from a socket until a deadline; after it, every read fails."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class DeadlineHandler(BaseHTTPRequestHandler):
    """A request handler whose request must arrive before the connection's deadline."""

    server: BoundedHTTPServer

    def setup(self) -> None:
        super().setup()
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self.server.deadline()))

    def begin_response(self) -> None:
        """The request is in: writing the answer gets the whole timeout again."""
        self.connection.settimeout(self.server.request_timeout)


class BoundedHTTPServer(HTTPServer):
    """HTTPServer with `workers` threads, a queue of `backlog` connections and a deadline of
    `request_timeout` seconds per connection; `tls` wraps each connection on its worker."""

    def __init__(self, address: tuple[str, int], handler: type[DeadlineHandler], *,
                 workers: int = WORKERS, backlog: int = BACKLOG,
                 request_timeout: float = REQUEST_TIMEOUT,
                 tls: ssl.SSLContext | None = None) -> None:
        self.request_queue_size = backlog
        self.request_timeout = request_timeout
        self.dropped = 0
        self._tls = tls
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=backlog)
        self._local = threading.local()
        self._workers: list[threading.Thread] = []  # a failed bind closes before they exist
        super().__init__(address, handler)
        self._workers = [threading.Thread(target=self._work, daemon=True,
                                          name=f"dbops-health-http-{n}") for n in range(workers)]
        for worker in self._workers:
            worker.start()

    def deadline(self) -> float:
        """The deadline of the connection the calling worker serves."""
        return float(self._local.deadline)

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            self._queue.put_nowait((request, client_address,
                                    time.monotonic() + self.request_timeout))
        except queue.Full:
            self.dropped += 1
            self.shutdown_request(request)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            request, address, deadline = item
            try:
                if time.monotonic() < deadline:
                    request.settimeout(deadline - time.monotonic())
                    if self._tls is not None:
                        request = self._tls.wrap_socket(request, server_side=True)
                    self._local.deadline = deadline
                    self.finish_request(request, address)
            except (OSError, ValueError) as exc:  # a client gone, a failed handshake, a timeout
                LOG.debug("connection from %s dropped: %s", address, exc)
            except Exception:  # one connection must not end a worker
                LOG.exception("serving a connection from %s failed", address)
            finally:
                self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        for _ in self._workers:
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=1)
        for worker in self._workers:
            worker.join(self.request_timeout + 1)
