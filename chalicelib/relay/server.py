"""The HTTP server under the relay: werkzeug's threaded server, one thread per connection.

Why this one (numbers in the README, `python -m tests.bench relayservers`): the relay must see a
request body while it arrives, so that a multi-GB layer is hashed and written part by part in
bounded memory and the closing answer follows the last byte at once. waitress reads the whole body
(to memory or a temporary file) before it calls the application. werkzeug's server hands the WSGI
application the socket itself (`wsgi.input` is the connection's reader; chunked bodies are decoded
as they are read), and a thread per connection suits a service that blocks on S3 and DynamoDB calls.
It closes each connection after one response (no keep-alive): an upload is a few requests per
layer, and behind the ALB on AWS the client's connection is the load balancer's to keep.
"""

from __future__ import annotations

from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

# A client that sends nothing for this long is dropped (a stalled push resumes from its session).
_IDLE_SECONDS = 300


class _Handler(WSGIRequestHandler):
    timeout = _IDLE_SECONDS

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log line per request (the upload service logs what matters)."""


def build(app: Any, host: str, port: int) -> BaseWSGIServer:
    """A threaded server for `app` bound to host:port (port 0: any free port), not yet serving."""
    return make_server(host, port, app, threaded=True, request_handler=_Handler)
