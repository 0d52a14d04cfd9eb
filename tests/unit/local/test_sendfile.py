"""waitress with `chalicelib.local.sendfile` installed: file responses go out with `os.sendfile`, and
every byte arrives, in order, whatever buffer comes before or after the file on the connection."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import waitress
from waitress.channel import HTTPChannel

from chalicelib.local import sendfile

SIZE = 9 * 1024 * 1024 + 123  # more than one sendfile call and the socket buffer


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, bytes, list[int]]]:
    """A waitress server on a free port whose app sends a file (`?start=`, `&length=`) or a small body;
    yields (port, the file's bytes, the sizes sendfile moved)."""
    data = os.urandom(SIZE)
    path = tmp_path / "blob"
    path.write_bytes(data)
    moved: list[int] = []
    real_sendfile = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        sent = real_sendfile(out_fd, in_fd, offset, count)
        moved.append(sent)
        return sent

    monkeypatch.setattr(HTTPChannel, "_flush_some", HTTPChannel._flush_some)  # restored afterwards
    monkeypatch.setattr(os, "sendfile", counting)
    sendfile.install()

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/small":
            start_response("200 OK", [("Content-Length", "5")])
            return [b"small"]
        query = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if p)
        start = int(query.get("start", 0))
        length = int(query.get("length", SIZE - start))
        body = path.open("rb")
        body.seek(start)
        start_response("200 OK", [("Content-Length", str(length))])
        return environ["wsgi.file_wrapper"](body, 1024 * 1024)  # type: ignore[no-any-return]

    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield int(server.effective_port), data, moved
    finally:
        server.close()
        thread.join(timeout=10)


def test_a_file_goes_out_whole_with_sendfile(served: tuple[int, bytes, list[int]]) -> None:
    port, data, moved = served
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def small() -> None:
        """A buffered response on the same connection. Besides checking that the connection goes on,
        it orders the counts: the server sends it only after its last `sendfile` for the file before
        returned and was counted, which the client's reading the file's last byte does not promise."""
        connection.request("GET", "/small")
        assert connection.getresponse().read() == b"small"

    connection.request("GET", "/file")
    response = connection.getresponse()
    body = response.read()
    assert response.status == 200 and len(body) == SIZE
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    small()
    assert sum(moved) == SIZE  # every byte of the file went through sendfile
    # A file from an offset.
    connection.request("GET", "/file?start=1000")
    assert connection.getresponse().read() == data[1000:]
    small()
    assert sum(moved) == SIZE + SIZE - 1000
    # A span in the middle (a Range request): exactly Content-Length bytes from the position.
    connection.request("GET", "/file?start=5000000&length=3000000")
    assert connection.getresponse().read() == data[5_000_000:8_000_000]
    small()
    assert sum(moved) == SIZE + SIZE - 1000 + 3_000_000


def test_a_client_leaving_mid_download_leaves_the_server_serving(served: tuple[int, bytes, list[int]]) -> None:
    port, data, _moved = served
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.recv(65536)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/file")
    assert connection.getresponse().read() == data
