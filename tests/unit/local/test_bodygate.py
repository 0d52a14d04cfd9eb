"""The local server's body gate (issue 9, finding 8), driven through waitress's own request parser:
a body the route may not take is read off the wire into a counter that keeps nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from waitress.adjustments import Adjustments
from waitress.parser import HTTPRequestParser

from chalicelib.local import bodygate

CAP = 64 * 1024
BODY = 4 * 1024 * 1024


@pytest.fixture(autouse=True)
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(HTTPRequestParser, "parse_header", HTTPRequestParser.parse_header)  # undone after
    bodygate.install(CAP, lambda header: header == "Bearer good")
    yield


def _parse(method: str, path: str, size: int, *headers: str, chunked: bool = False) -> Any:
    parser = HTTPRequestParser(Adjustments(inbuf_overflow=512 * 1024**2))
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = "\r\n".join([f"{method} {path} HTTP/1.1", "Host: x", framing, *headers]) + "\r\n\r\n"
    stream = [head.encode()]
    block = b"x" * (256 * 1024)
    sent = 0
    while sent < size:
        piece = block[: size - sent]
        stream.append(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        sent += len(piece)
    if chunked:
        stream.append(b"0\r\n\r\n")
    for piece in stream:
        rest = piece
        while rest and not parser.completed:
            rest = rest[parser.received(rest) :]
    assert parser.completed and parser.error is None
    return parser


def _kept(parser: Any) -> int:
    return len(parser.get_body_stream().read())


@pytest.mark.parametrize("chunked", [False, True])
def test_a_long_body_on_a_route_that_is_no_upload_is_not_kept(chunked: bool) -> None:
    parser = _parse("POST", "/api/v2.0/projects", BODY, chunked=chunked)
    assert parser.headers["X_REGISTRY_BODY_REFUSED"] == bodygate.TOO_LARGE
    assert _kept(parser) == 0


def test_a_body_within_the_cap_is_kept() -> None:
    parser = _parse("PUT", "/v2/library/app/manifests/v1", CAP)
    assert "X_REGISTRY_BODY_REFUSED" not in parser.headers
    assert _kept(parser) == CAP


@pytest.mark.parametrize("authorization", [None, "Bearer forged", "Bearer", "Digest x", "Bearer  "])
def test_an_upload_without_usable_credentials_is_not_kept(authorization: str | None) -> None:
    headers = [f"Authorization: {authorization}"] if authorization else []
    parser = _parse("PATCH", "/v2/library/app/blobs/uploads/0123abcd", BODY, *headers)
    assert parser.headers["X_REGISTRY_BODY_REFUSED"] == bodygate.UNAUTHENTICATED
    assert _kept(parser) == 0


def test_an_upload_with_a_token_that_verifies_is_kept_whatever_its_size() -> None:
    parser = _parse(
        "PUT", "/v2/library/app/blobs/uploads/0123abcd?digest=sha256:00", BODY, "Authorization: Bearer good"
    )
    assert "X_REGISTRY_BODY_REFUSED" not in parser.headers
    assert _kept(parser) == BODY


def test_an_upload_with_basic_credentials_waits_on_disk_for_their_check() -> None:
    """argon2 must not run on waitress's I/O thread: the body goes to a temporary file, and the
    adapter checks the credentials on its worker thread before reading it."""
    parser = _parse("PATCH", "/v2/library/app/blobs/uploads/0123abcd", BODY, "Authorization: Basic YTpi")
    assert parser.headers["X_REGISTRY_BODY_REFUSED"] == bodygate.UNVERIFIED
    assert parser.body_rcv.buf.overflowed  # spooled to a file, not held in memory
    assert _kept(parser) == BODY
    assert bodygate.verified("Bearer good") and not bodygate.verified("Basic YTpi")


def test_a_client_cannot_send_the_verdict_itself() -> None:
    parser = _parse("POST", "/api/v2.0/projects", 10, "X-Registry-Body-Refused: too-large")
    assert "X_REGISTRY_BODY_REFUSED" not in parser.headers
    assert _kept(parser) == 10


def test_the_app_answers_a_refused_body_with_413_and_the_envelope() -> None:
    from io import BytesIO

    from chalice import Chalice

    from chalicelib.local.wsgi import ChaliceWSGI

    app = Chalice("gate")

    @app.route("/api/v2.0/projects", methods=["POST"])
    def create() -> dict[str, Any]:  # pragma: no cover - must not run
        raise AssertionError("the handler ran")

    seen: list[str] = []
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v2.0/projects", "wsgi.input": BytesIO(b""),
               "CONTENT_LENGTH": "0", bodygate.ENVIRON_HEADER: bodygate.TOO_LARGE}  # fmt: skip
    body = b"".join(ChaliceWSGI(app)(environ, lambda status, headers: seen.append(status)))
    assert seen == ["413 Payload Too Large"]
    assert b'"code": "SIZE_INVALID"' in body


def test_the_adapter_drops_an_unverified_upload_body_before_reading_it() -> None:
    from io import BytesIO

    from chalice import Chalice

    from chalicelib.local.wsgi import ChaliceWSGI

    app = Chalice("gate")
    bodies: list[bytes] = []

    @app.route("/v2/{name}/blobs/uploads/{upload}", methods=["PATCH"], content_types=["*/*"])
    def patch(name: str, upload: str) -> dict[str, Any]:
        bodies.append(app.current_request.raw_body)
        return {}

    for authorization, expected in [("Basic YTpi", b""), ("Bearer good", b"layer")]:
        environ = {"REQUEST_METHOD": "PATCH", "PATH_INFO": "/v2/lib/blobs/uploads/u1", "wsgi.input": BytesIO(b"layer"),
                   "CONTENT_LENGTH": "5", "HTTP_AUTHORIZATION": authorization,
                   bodygate.ENVIRON_HEADER: bodygate.UNVERIFIED}  # fmt: skip
        b"".join(ChaliceWSGI(app)(environ, lambda status, headers: None))
        assert bodies.pop() == expected
