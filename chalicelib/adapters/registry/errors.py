"""What can go wrong talking to a remote registry, as typed errors a caller can act on.

Each is a `RegistryError`, so one that reaches a route is answered with a 4xx envelope, never a 500.
Messages name the remote registry's URL and what it answered, never a credential, a token or the
address the name resolved to.

    RemoteError                 (base: anything the remote registry did wrong)
     ├── RemoteUnauthorized     401/403 from the remote, or its token service refused the credentials
     ├── RemoteNotFound         404 for a repository, manifest, blob or upload
     ├── RemoteRateLimited      429 past what the client is willing to wait (carries retry_after)
     ├── RemoteUnreachable      connection refused/reset/timed out, or 5xx after every retry
     ├── RemoteDigestMismatch   bytes (or a manifest) that do not hash to the digest asked for
     └── RemoteProtocolError    an answer the distribution spec does not allow (bad JSON, no Location)
"""

from __future__ import annotations

from chalicelib.errors import ErrorCode, RegistryError, TooManyRequests


class RemoteError(RegistryError):
    """Base of every failure of a remote registry call; 400 unless a subclass says otherwise."""

    code = ErrorCode.BAD_REQUEST


class RemoteUnauthorized(RemoteError):
    """The remote refused the credentials (or their absence) for what was asked."""


class RemoteNotFound(RemoteError):
    code = ErrorCode.NOT_FOUND


class RemoteRateLimited(RemoteError, TooManyRequests):
    """429 from the remote; `retry_after` is the seconds it asked for (or a default when it did not say)."""

    code = ErrorCode.TOOMANYREQUESTS

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        TooManyRequests.__init__(self, message, retry_after=retry_after)


class RemoteUnreachable(RemoteError):
    """No usable answer: the connection failed, or the remote kept answering 5xx."""


class RemoteDigestMismatch(RemoteError):
    """Content that does not hash to the digest it was asked for (or announced): never used."""

    code = ErrorCode.DIGEST_INVALID


class RemoteProtocolError(RemoteError):
    """An answer outside the distribution spec."""
