"""Upload capabilities: what lets the relay accept a session's bytes without an Authorization header.

The app's upload POST authorises the push (auth, RBAC, quota) and then hands out a `Location` on the
relay's host. containerd and docker drop `Authorization` on a Location that names another host, and
containerd re-encodes and extends its query string, so the proof that the POST was authorised
travels in a path segment: `<expiry>.<mac>`, where `mac` is an HMAC-SHA256, keyed with a secret the
app and the relay share, over the session id, the repository and the expiry. Changing any of the
three (another session, another repository, a later expiry) breaks the MAC; the relay compares it
in constant time and refuses an expired one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_FORMAT = re.compile(r"(\d{1,12})\.([A-Za-z0-9_-]{43})")
_CONTEXT = b"registry-upload-capability-v1"


def mint(key: bytes, upload_id: str, repository: str, expires_at: int) -> str:
    """The path segment that grants writes to `upload_id` in `repository` until `expires_at`."""
    return f"{expires_at}.{_mac(key, upload_id, repository, expires_at)}"


def verify(key: bytes, capability: str, upload_id: str, repository: str, now: float) -> bool:
    """True when `capability` was minted with `key` for this session and repository and is unexpired."""
    found = _FORMAT.fullmatch(capability)
    if found is None:
        return False
    expires_at = int(found[1])
    expected = _mac(key, upload_id, repository, expires_at)
    # Compare first, whatever the expiry says, so the time taken tells nothing about the MAC.
    valid = hmac.compare_digest(expected, found[2])
    return valid and expires_at > now


def _mac(key: bytes, upload_id: str, repository: str, expires_at: int) -> str:
    message = b"\n".join([_CONTEXT, upload_id.encode(), repository.encode(), str(expires_at).encode()])
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# The session URL on the relay: the upload URL of the OCI API with the capability as a last segment.
_UPLOAD_PATH = re.compile(r"/v2/(?P<name>.+)/blobs/uploads/(?P<upload>[A-Za-z0-9_-]{1,64})/(?P<capability>[^/]+)/?")


def upload_url(base_url: str, key: bytes, repository: str, upload_id: str, expires_at: int) -> str:
    """The absolute session URL on the relay at `base_url` (what the upload POST puts in Location)."""
    capability = mint(key, upload_id, repository, expires_at)
    return f"{base_url.rstrip('/')}/v2/{repository}/blobs/uploads/{upload_id}/{capability}"


def parse_upload_path(path: str) -> tuple[str, str, str] | None:
    """(repository, upload id, capability) of a relay session path, or None for any other path."""
    found = _UPLOAD_PATH.fullmatch(path)
    return (found["name"], found["upload"], found["capability"]) if found else None
