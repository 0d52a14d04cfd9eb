"""Running the adapter: `start()` serves it on a thread (in-process, for tests and embedding),
`python -m chalicelib.scanner_adapter` serves it as a process."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from chalicelib.adapters.egress import EgressClient, EgressPolicy, parse_networks
from chalicelib.scanner_adapter.app import AdapterApp
from chalicelib.scanner_adapter.scan import OsvDatabase
from chalicelib.scanner_adapter.settings import AdapterSettings


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log line per request."""


@dataclass
class RunningAdapter:
    url: str  # http://host:port, what a registry registers
    app: AdapterApp
    httpd: BaseWSGIServer
    thread: threading.Thread

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.app.close()
        self.thread.join(10)


def build_app(settings: AdapterSettings, http: EgressClient | None = None) -> AdapterApp:
    """The WSGI app for these settings: loads the OSV database (it must be set and readable); scans
    pull through `http`, by default an egress client under `REGISTRY_EGRESS_ALLOW_NETWORKS`."""
    if settings.osv_database is None:
        raise ValueError("no OSV database: set REGISTRY_OSV_DATABASE to a directory or zip of OSV JSON")
    if http is None:
        networks = parse_networks(settings.egress_allow_networks.split(","))
        http = EgressClient(EgressPolicy(networks), settings.scanner_pull_timeout_seconds)
    return AdapterApp(settings, OsvDatabase(settings.osv_database), http)


def start(settings: AdapterSettings, http: EgressClient | None = None) -> RunningAdapter:
    """Serve the adapter on `settings.scanner_host:scanner_port` (port 0: a free one) on a daemon
    thread and return at once; call `close()` on the result to stop it. `http` replaces the egress
    client the scans pull through (a test records the calls with it).

        adapter = start(AdapterSettings(osv_database=path, scanner_api_key="k", scanner_port=0))
        ...  # register adapter.url with the registry
        adapter.close()
    """
    app = build_app(settings, http)
    httpd = make_server(settings.scanner_host, settings.scanner_port, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.1,), name="scanner-adapter", daemon=True)
    thread.start()
    return RunningAdapter(f"http://{settings.scanner_host}:{httpd.server_port}", app, httpd, thread)
