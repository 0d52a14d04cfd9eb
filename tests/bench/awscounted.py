"""`make serve`'s runner with every AWS call it makes written to a log, for sections that count the
calls of work done on the server's own threads (a replication's Step Functions Tasks).

`python -m tests.bench.awscounted LOG` runs `python -m chalicelib.local` unchanged except that:
- every botocore call is recorded as `service:Operation` through `awscalls.CallCounter`'s hook on
  `BaseClient._make_api_call`, installed over the runner's own direct-to-moto DynamoDB path
  (`chalicelib/local/direct.py`) so that those calls are seen too;
- every call on the local object store (blob bytes as files) is recorded under the S3 operation the
  same call is on AWS (`S3ObjectStore`), since there the store is S3;
- each line names the thread that made the call and, when a request was being served on it, that
  request (`METHOD /path`), so a section can tell its own polling apart from the work it measures.

One JSON object per line, flushed per call: `{"call", "thread", "request"}`.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tests.bench.awscalls import CallCounter

# Local object store method -> the S3 call `S3ObjectStore` makes for it.
S3_CALLS = {
    "put": "PutObject",
    "get": "GetObject",
    "get_head": "GetObject",
    "iter_bytes": "GetObject",
    "exists": "HeadObject",
    "delete": "DeleteObjects",
    "list_objects": "ListObjectsV2",
    "list_multipart_uploads": "ListMultipartUploads",
    "start_multipart": "CreateMultipartUpload",
    "upload_part": "UploadPart",
    "complete_multipart": "CompleteMultipartUpload",
    "abort_multipart": "AbortMultipartUpload",
    "copy": "CopyObject",
}
# Threads of the local runner that do periodic work of their own (job schedules, registry health).
PERIODIC_THREADS = frozenset({"scheduler", "registry-health"})


class LoggingCounter(CallCounter):
    """Records every call, on every thread, as a line of the log."""

    def __init__(self, log_path: Path) -> None:
        super().__init__()
        self._log = log_path.open("a", encoding="utf-8")
        self._line_lock = threading.Lock()
        self.request = threading.local()

    def record(self, name: str) -> None:
        row = {"call": name, "thread": threading.current_thread().name, "request": getattr(self.request, "line", None)}
        with self._line_lock:
            self._log.write(json.dumps(row) + "\n")
            self._log.flush()


def _install(log_path: Path) -> None:
    from chalicelib.local import direct
    from chalicelib.local.wsgi import ChaliceWSGI
    from chalicelib.stores.files import FileObjectStore

    counter = LoggingCounter(log_path)
    original_direct = direct.install

    def install_direct_then_count() -> None:
        original_direct()
        counter.install()  # outermost: sees the calls the direct path answers too

    direct.install = install_direct_then_count

    for method, operation in S3_CALLS.items():
        original = getattr(FileObjectStore, method)

        def counted(self: Any, *args: Any, _original: Callable[..., Any] = original, _op: str = operation,
                    **kwargs: Any) -> Any:  # fmt: skip
            counter.record(f"s3:{_op}")
            return _original(self, *args, **kwargs)

        setattr(FileObjectStore, method, counted)

    served = ChaliceWSGI.__call__

    def labelled(self: ChaliceWSGI, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        counter.request.line = f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}"
        try:
            return served(self, environ, start_response)
        finally:
            counter.request.line = None

    ChaliceWSGI.__call__ = labelled  # type: ignore[method-assign]


def read(log_path: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The calls logged from byte `offset` on."""
    with log_path.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def breakdown(rows: list[dict[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(row["call"] for row in rows).items()))


def main() -> int:
    _install(Path(sys.argv[1]))
    from chalicelib.local.__main__ import main as serve

    return serve()


if __name__ == "__main__":
    sys.exit(main())
