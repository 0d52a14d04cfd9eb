"""The local server's body gate: decide on a request body from its headers, before waitress reads it.

waitress reads a whole request body into memory (up to `inbuf_overflow`, 512 MiB here) before the
app sees the request, so an anonymous 150 MB POST to any route raised the server's memory by
340 MB before authentication refused it. This gate runs when waitress has parsed the headers:

- a route that is not a blob upload may carry at most `REGISTRY_REQUEST_BODY_MAX_BYTES`; a longer
  body (by Content-Length, or once a chunked body passes the cap) is read off the socket into a
  counter that keeps nothing, and the app answers 413;
- a blob upload body is kept only for a caller whose credentials verify: with none at all, or a
  bearer token that does not verify (a signature check, cheap enough for waitress's I/O thread),
  it is discarded too and the app answers 401. Basic credentials cost an argon2 hash (tens of ms),
  which must not run in the I/O thread: such a body is spooled to a temporary file past
  `BASIC_SPOOL_BYTES` instead of memory, and the adapter (`local/wsgi.py`) checks the credentials
  on its worker thread (`verified`) before it reads a byte of it.

The verdict reaches the adapter as a request header the gate strips from every client request
first (`ENVIRON_HEADER` in the WSGI environ); the adapter answers it with the error envelope.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from io import BytesIO
from typing import Any

TOO_LARGE = "too-large"
UNAUTHENTICATED = "unauthenticated"
UNVERIFIED = "unverified"
BASIC_SPOOL_BYTES = 1024 * 1024
# waitress turns request headers into environ keys `HTTP_<NAME>`; this one only the gate sets.
_HEADER = "X_REGISTRY_BODY_REFUSED"
ENVIRON_HEADER = f"HTTP_{_HEADER}"

_UPLOAD = re.compile(r"^/v2/.+/blobs/uploads(?:/[^/]*)?/?$")
_UPLOAD_METHODS = frozenset({"POST", "PATCH", "PUT"})

# Whether an Authorization header verifies (the access service's check); raises or returns False if not.
CredentialsCheck = Callable[[str], bool]
_installed: list[CredentialsCheck] = []


def is_upload(method: str, path: str) -> bool:
    return method in _UPLOAD_METHODS and _UPLOAD.match(path) is not None


class _Discard:
    """A waitress body buffer that counts what it is given and keeps nothing."""

    def __init__(self) -> None:
        self.received = 0

    def append(self, data: bytes) -> None:
        self.received += len(data)

    def __len__(self) -> int:
        return 0

    def getfile(self) -> BytesIO:
        return BytesIO(b"")

    def close(self) -> None:
        return None


class _Capped:
    """A chunked body's buffer: the real one until the cap, then a verdict and nothing kept."""

    def __init__(self, inner: Any, cap: int, refuse: Callable[[], None]) -> None:
        self._inner = inner
        self._cap = cap
        self._refuse = refuse
        self._size = 0
        self._over = False

    def append(self, data: bytes) -> None:
        self._size += len(data)
        if self._over:
            return
        if self._size > self._cap:
            self._over = True
            self._inner.close()
            self._refuse()
            return
        self._inner.append(data)

    def __len__(self) -> int:
        return 0 if self._over else len(self._inner)

    def getfile(self) -> Any:
        return BytesIO(b"") if self._over else self._inner.getfile()

    def close(self) -> None:
        if not self._over:
            self._inner.close()


def gate(request: Any, cap: int, credentials_ok: CredentialsCheck) -> None:
    """Judge a parsed request (a waitress HTTPRequestParser after `parse_header`)."""
    headers: dict[str, str] = request.headers
    headers.pop(_HEADER, None)  # only the gate says this
    receiver = request.body_rcv
    if receiver is None:
        return

    def refuse(verdict: str) -> None:
        headers[_HEADER] = verdict

    if is_upload(request.command, request.path):
        authorization = headers.get("AUTHORIZATION", "")
        if authorization.partition(" ")[0].lower() == "basic":
            refuse(UNVERIFIED)
            receiver.buf.overflow = BASIC_SPOOL_BYTES  # nothing is in it yet
        elif not _verifies(authorization, credentials_ok):
            refuse(UNAUTHENTICATED)
            _discard(request)
        return
    if request.chunked:
        receiver.buf = _Capped(receiver.buf, cap, lambda: refuse(TOO_LARGE))
    elif request.content_length > cap:
        refuse(TOO_LARGE)
        _discard(request)


def _verifies(authorization: str, credentials_ok: CredentialsCheck) -> bool:
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() not in ("basic", "bearer") or not credentials.strip():
        return False
    try:
        return credentials_ok(authorization)
    except Exception:
        return False


def verified(authorization: str) -> bool:
    """On a worker thread: do these credentials verify (for an UNVERIFIED upload body)?"""
    return bool(_installed) and _verifies(authorization, _installed[-1])


def _discard(request: Any) -> None:
    from waitress import receiver as waitress_receiver  # noqa: PLC0415 (the adapter imports this module without waitress)

    receiver = request.body_rcv
    receiver.buf.close()
    if request.chunked:
        request.body_rcv = waitress_receiver.ChunkedReceiver(_Discard())
    else:
        request.body_rcv = waitress_receiver.FixedStreamReceiver(request.content_length, _Discard())


def install(cap: int, credentials_ok: CredentialsCheck) -> None:
    """Judge every request waitress parses from now on (idempotent)."""
    from waitress import parser as waitress_parser  # noqa: PLC0415

    parser_class = waitress_parser.HTTPRequestParser
    original = getattr(parser_class.parse_header, "__wrapped_by_gate__", parser_class.parse_header)

    def parse_header(self: Any, header_plus: bytes) -> None:
        original(self, header_plus)
        gate(self, cap, credentials_ok)

    _installed.append(credentials_ok)

    parse_header.__wrapped_by_gate__ = original  # type: ignore[attr-defined]
    parser_class.parse_header = parse_header
