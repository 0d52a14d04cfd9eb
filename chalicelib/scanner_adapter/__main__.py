"""`python -m chalicelib.scanner_adapter`: the built-in scanner adapter as a process.

Needs `REGISTRY_OSV_DATABASE` (a directory or zip of OSV JSON) and `REGISTRY_SCANNER_API_KEY`;
listens on `REGISTRY_SCANNER_HOST`:`REGISTRY_SCANNER_PORT` until SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType


def main() -> int:
    from pydantic import ValidationError  # noqa: PLC0415

    from chalicelib.scanner_adapter.server import start  # noqa: PLC0415
    from chalicelib.scanner_adapter.settings import AdapterSettings  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        adapter = start(AdapterSettings())
    except (ValidationError, ValueError, OSError) as failure:
        print(f"scanner adapter not started: {failure}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"scanner adapter listening on {adapter.url}", flush=True)
    stop.wait()
    adapter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
