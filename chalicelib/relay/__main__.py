"""`python -m chalicelib.relay`: the upload relay on its own (the container on AWS).

Reads the same settings as the app (table, bucket, `REGISTRY_RELAY_URL`, the shared key from
`REGISTRY_RELAY_KEY` or `REGISTRY_RELAY_KEY_PARAMETER`) and listens on `REGISTRY_RELAY_HOST`:
`REGISTRY_RELAY_PORT`. SIGTERM stops accepting; requests in flight end with the process, and what
they acknowledged is already in DynamoDB and the object store.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType


def main() -> int:
    from chalicelib import wiring  # noqa: PLC0415
    from chalicelib.config import get_settings  # noqa: PLC0415
    from chalicelib.relay import server  # noqa: PLC0415
    from chalicelib.relay.app import RelayApp  # noqa: PLC0415

    settings = get_settings()
    if settings.relay_url is None or (settings.relay_key is None and settings.relay_key_parameter is None):
        print("no relay: set REGISTRY_RELAY_URL and REGISTRY_RELAY_KEY (or _PARAMETER)", file=sys.stderr)
        return 1
    wiring.services()  # clients and the key are built before the first request
    httpd = server.build(RelayApp(wiring.services), settings.relay_host, settings.relay_listen_port)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    serving = threading.Thread(target=httpd.serve_forever, name="relay", daemon=True)
    serving.start()
    print(f"relay listening on http://{settings.relay_host}:{httpd.server_port} for {settings.relay_url}", flush=True)
    stop.wait()
    httpd.shutdown()
    httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
