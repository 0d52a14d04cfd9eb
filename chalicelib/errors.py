"""Typed errors, raised anywhere and mapped to the wire exactly once (in `api/edge.py`).

Every wire code is registered once in `ErrorCode` with its HTTP status and default message, the
way distribution's `errcode.Register` does. Domain code raises `RegistryError` subclasses; it never
builds a response.

    RegistryError(code, message, detail)
     ├── BlobUnknown            BLOB_UNKNOWN           404
     ├── BlobUploadUnknown      BLOB_UPLOAD_UNKNOWN    404
     ├── BlobUploadInvalid      BLOB_UPLOAD_INVALID    400
     ├── RangeInvalid           BLOB_UPLOAD_INVALID    416 (carries the current upload offset)
     ├── DigestInvalid          DIGEST_INVALID         400
     ├── ManifestUnknown        MANIFEST_UNKNOWN       404
     ├── ManifestInvalid        MANIFEST_INVALID       400
     ├── ManifestBlobUnknown    MANIFEST_BLOB_UNKNOWN  400
     ├── NameInvalid            NAME_INVALID           400
     ├── NameUnknown            NAME_UNKNOWN           404
     ├── TagInvalid             TAG_INVALID            400
     ├── SizeInvalid            SIZE_INVALID           400
     ├── PayloadTooLarge        SIZE_INVALID           413
     ├── PaginationInvalid      PAGINATION_NUMBER_INVALID 400
     ├── Unsupported            UNSUPPORTED            405/415
     ├── Conflict               CONFLICT               409 (a concurrent writer won; safe to retry)
     ├── Unauthorized           UNAUTHORIZED           401 (carries the WWW-Authenticate challenge)
     ├── Denied                 DENIED                 403 (on /v2) / Forbidden FORBIDDEN 403 (on /api)
     ├── QuotaExceeded          DENIED                 403 (Harbor's quota message)
     ├── BadRequest             BAD_REQUEST            400 (management API input)
     │    └── EgressRefused       BAD_REQUEST            400 (an outbound address the egress policy refuses)
     ├── NotFound               NOT_FOUND              404 (management API)
     │    └── ProjectNotFound                            (401 to an anonymous caller: see api/mgmt/_edge.py)
     ├── TooManyRequests        TOOMANYREQUESTS        429 (sign-ins throttled; carries Retry-After)
     ├── Precondition           PRECONDITION           412
     ├── ReferencedByOthers     VIOLATE_FOREIGN_KEY_CONSTRAINT 412 (an index references the artifact)
     └── PolicyViolation        PROJECTPOLICYVIOLATION 412 (the pull gate refused a vulnerable artifact)
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class ErrorCode(Enum):
    """A wire error code with its HTTP status and the spec's message."""

    BLOB_UNKNOWN = (404, "blob unknown to registry")
    BLOB_UPLOAD_INVALID = (400, "blob upload invalid")
    BLOB_UPLOAD_UNKNOWN = (404, "blob upload unknown to registry")
    DIGEST_INVALID = (400, "provided digest did not match uploaded content")
    MANIFEST_BLOB_UNKNOWN = (400, "manifest references a manifest or blob unknown to registry")
    MANIFEST_INVALID = (400, "manifest invalid")
    MANIFEST_UNKNOWN = (404, "manifest unknown to registry")
    NAME_INVALID = (400, "invalid repository name")
    NAME_UNKNOWN = (404, "repository name not known to registry")
    SIZE_INVALID = (400, "provided length did not match content length")
    TAG_INVALID = (400, "manifest tag did not match URI")
    UNAUTHORIZED = (401, "authentication required")
    DENIED = (403, "requested access to the resource is denied")
    UNSUPPORTED = (405, "the operation is unsupported")
    TOOMANYREQUESTS = (429, "too many requests")
    PAGINATION_NUMBER_INVALID = (400, "invalid number of results requested")
    # Harbor's codes, used by /api/v2.0.
    FORBIDDEN = (403, "forbidden")
    PRECONDITION = (412, "precondition failed")
    NOT_FOUND = (404, "resource not found")
    BAD_REQUEST = (400, "bad request")
    CONFLICT = (409, "conflict")
    UNKNOWN = (500, "internal server error")
    # Harbor's pull gate (a project's "prevent vulnerable images from running" policy).
    PROJECTPOLICYVIOLATION = (412, "the pull is refused by the project's policy")
    # Harbor's answer to deleting an artifact an index still references.
    VIOLATE_FOREIGN_KEY_CONSTRAINT = (412, "the deleting artifact is referenced by others")

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def message(self) -> str:
        return self.value[1]


class RegistryError(Exception):
    """Base of every error that reaches a client; `status` may differ from the code's default."""

    code: ErrorCode = ErrorCode.UNKNOWN
    status: int | None = None

    def __init__(self, message: str | None = None, detail: Any = None, *, status: int | None = None) -> None:
        self.message = message or self.code.message
        self.detail = detail
        if status is not None:
            self.status = status
        super().__init__(self.message)

    @property
    def http_status(self) -> int:
        return self.status or self.code.status

    def headers(self) -> dict[str, str]:
        """Extra response headers this error needs (416 carries the upload's Range)."""
        return {}


class BlobUnknown(RegistryError):
    code = ErrorCode.BLOB_UNKNOWN


class BlobUploadUnknown(RegistryError):
    code = ErrorCode.BLOB_UPLOAD_UNKNOWN


class BlobUploadInvalid(RegistryError):
    code = ErrorCode.BLOB_UPLOAD_INVALID


class RangeInvalid(RegistryError):
    """An out-of-order or overlapping chunk: 416 with the range the registry really holds."""

    code = ErrorCode.BLOB_UPLOAD_INVALID
    status = 416

    def __init__(self, message: str, *, location: str, offset: int) -> None:
        super().__init__(message, {"offset": offset})
        self.location = location
        self.offset = offset

    def headers(self) -> dict[str, str]:
        return {"Location": self.location, "Range": f"0-{max(self.offset - 1, 0)}", "Content-Length": "0"}


class DigestInvalid(RegistryError):
    code = ErrorCode.DIGEST_INVALID


class ManifestUnknown(RegistryError):
    code = ErrorCode.MANIFEST_UNKNOWN


class ManifestInvalid(RegistryError):
    code = ErrorCode.MANIFEST_INVALID


class ManifestBlobUnknown(RegistryError):
    code = ErrorCode.MANIFEST_BLOB_UNKNOWN


class NameInvalid(RegistryError):
    code = ErrorCode.NAME_INVALID


class NameUnknown(RegistryError):
    code = ErrorCode.NAME_UNKNOWN


class TagInvalid(RegistryError):
    code = ErrorCode.TAG_INVALID


class SizeInvalid(RegistryError):
    code = ErrorCode.SIZE_INVALID


class PayloadTooLarge(RegistryError):
    code = ErrorCode.SIZE_INVALID
    status = 413


class PaginationInvalid(RegistryError):
    code = ErrorCode.PAGINATION_NUMBER_INVALID


class Unsupported(RegistryError):
    code = ErrorCode.UNSUPPORTED


class Conflict(RegistryError):
    code = ErrorCode.CONFLICT


class NotFound(RegistryError):
    code = ErrorCode.NOT_FOUND


class ProjectNotFound(NotFound):
    """No project of that name or id: the management edge tells an anonymous caller only to log
    in, as it does for a private project, so the answer cannot reveal which names exist."""


class TooManyRequests(RegistryError):
    code = ErrorCode.TOOMANYREQUESTS

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class BadRequest(RegistryError):
    code = ErrorCode.BAD_REQUEST


class EgressRefused(BadRequest):
    """An outbound URL the egress policy refuses (`adapters/egress.py`). One message for every
    refused address, so the answer never tells an internal host or port from another."""

    def __init__(self) -> None:
        super().__init__("the target address is not allowed: it must be a public http(s) address")


class Unauthorized(RegistryError):
    """401; `challenge` is the WWW-Authenticate value the client needs to log in."""

    code = ErrorCode.UNAUTHORIZED

    def __init__(self, message: str | None = None, detail: Any = None, *, challenge: str | None = None) -> None:
        super().__init__(message, detail)
        self.challenge = challenge

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.challenge} if self.challenge else {}


class Denied(RegistryError):
    code = ErrorCode.DENIED


class Forbidden(RegistryError):
    code = ErrorCode.FORBIDDEN


class QuotaExceeded(RegistryError):
    code = ErrorCode.DENIED


class Precondition(RegistryError):
    code = ErrorCode.PRECONDITION


class ReferencedByOthers(RegistryError):
    code = ErrorCode.VIOLATE_FOREIGN_KEY_CONSTRAINT


class PolicyViolation(RegistryError):
    code = ErrorCode.PROJECTPOLICYVIOLATION
