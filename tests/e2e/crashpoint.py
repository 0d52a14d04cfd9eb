"""`python -m tests.e2e.crashpoint`: the local runner (`make serve`'s command) that kills itself
with SIGKILL right after a chosen write is in the journal and on disk, before the call that made
it returns: the window between the journal append and the response to the client.

The write is the first whose journal record contains the text in the file named by
`CRASHPOINT_MARKER_FILE` (read on every write; no file, no kill). Test-only: nothing in the
registry knows about it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from chalicelib.local import __main__ as runner
from chalicelib.local import persistence


def _arm(marker_file: Path) -> None:
    armed = threading.local()
    record, wait = persistence.Persistence.record, persistence.Persistence.wait

    def recording(self: persistence.Persistence, backend: Any, payload: dict[str, Any]) -> int:
        sequence = record(self, backend, payload)
        try:
            marker = marker_file.read_text().strip()
        except FileNotFoundError:
            marker = ""
        if marker and marker in json.dumps(payload, default=str):
            armed.sequence = sequence
        return sequence

    def waiting(self: persistence.Persistence, sequence: int) -> None:
        wait(self, sequence)  # on disk now
        if getattr(armed, "sequence", None) is not None and sequence >= armed.sequence:
            print(f"crashpoint: journal record {armed.sequence} is on disk; SIGKILL before answering", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    persistence.Persistence.record = recording  # type: ignore[method-assign]
    persistence.Persistence.wait = waiting  # type: ignore[method-assign]


if __name__ == "__main__":
    _arm(Path(os.environ["CRASHPOINT_MARKER_FILE"]))
    sys.exit(runner.main())
