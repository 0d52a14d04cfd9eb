"""The HTTP server under the relay: cheroot (CherryPy's WSGI server), a pool of worker threads.

Why this one (numbers in `python -m tests.bench relayservers`): the relay must see a request body
while it arrives, so that a multi-GB layer is hashed and written part by part in bounded memory and
the closing answer follows the last byte at once. waitress reads the whole body (to memory or a
temporary file) before it calls the application. cheroot and werkzeug's development server both
hand the application the socket itself (`wsgi.input` reads the connection; chunked bodies are
decoded as they are read). cheroot also keeps HTTP/1.1 connections open between requests (an
upload is a PATCH and a PUT per layer, on the same connection), where werkzeug's server closes
every connection after one answer and, before closing, waits up to 10 ms for stray body bytes:
a fresh TCP connection and that wait on every relay request of a push.

The pool bounds the uploads streamed at once (each holds up to two parts in memory); further
connections wait in the accept queue. Idle keep-alive connections are parked outside the pool, so
they do not hold a worker.
"""

from __future__ import annotations

import socket
from typing import Any

from cheroot import wsgi

# A client that sends nothing for this long is dropped (a stalled push resumes from its session).
_IDLE_SECONDS = 300
# Requests served at once; each streamed body holds at most two parts in memory.
_THREADS = 16


class _Server(wsgi.Server):
    @staticmethod
    def bind_socket(socket_: socket.socket, bind_addr: Any) -> socket.socket:
        """cheroot leaves SO_REUSEADDR off on an ephemeral port (0); a relay restarted on the port it
        got then (its Locations name it) would find it taken by the old connections' TIME_WAIT."""
        socket_.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        socket_.bind(bind_addr)
        return socket_


class RelayServer:
    """A bound server for one WSGI application: `serve_forever` in a thread, `shutdown` to stop."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self._server = _Server((host, port), app, numthreads=_THREADS, timeout=_IDLE_SECONDS,
                                   server_name="registry-relay")  # fmt: skip
        self._server.prepare()  # binds now (OSError when the port is taken), so the port is known

    @property
    def server_port(self) -> int:
        return int(self._server.bind_addr[1])

    def serve_forever(self) -> None:
        self._server.serve()

    def shutdown(self) -> None:
        """Stop accepting, end the workers (requests in flight get `shutdown_timeout` to finish)."""
        self._server.stop()

    def server_close(self) -> None:
        """The socket is closed by `shutdown`; kept so callers can treat this like a socketserver."""


def build(app: Any, host: str, port: int) -> RelayServer:
    """A server for `app` bound to host:port (port 0: any free port), not yet serving."""
    return RelayServer(app, host, port)
