"""A client of the OCI distribution API (v1.1) of one remote registry: what replication and the
proxy cache need from any upstream, whatever its vendor.

Content is never trusted: a manifest is hashed before it is returned, a blob stream is hashed as it
flows and ends in RemoteDigestMismatch instead of its last chunk when the bytes do not match, so a
caller that stores a blob only after the stream ended cleanly never keeps bad bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import urllib3

from chalicelib.adapters.egress import EgressSession
from chalicelib.adapters.registry.auth import Authenticator, CredentialSource
from chalicelib.adapters.registry.errors import (
    RemoteDigestMismatch,
    RemoteError,
    RemoteNotFound,
    RemoteProtocolError,
    RemoteUnreachable,
)
from chalicelib.adapters.registry.transport import RetryPolicy, Transport, fail, read_body
from chalicelib.core.mediatypes import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, INDEXES, OCI_INDEX, OCI_MANIFEST

MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST])
# distribution refuses manifests above 4 MiB; nothing larger is read into memory.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_LIST_PAGE_BYTES = 8 * 1024 * 1024
# A referrers answer spread over more pages than this is refused: an upstream whose `Link` never
# ends must not keep a request (or a replication task) busy until its timeout.
MAX_REFERRER_PAGES = 100
DEFAULT_CHUNK_BYTES = 10 * 1024 * 1024
# How many times one chunk is resumed after the registry refused its range.
RESUMES = 3
_STREAM_BYTES = 1024 * 1024
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*rel="?next"?')
_HASHES = {"sha256": 64, "sha512": 128}


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest as the remote holds it: exact bytes (their digest is checked), type and digest."""

    media_type: str
    digest: str
    data: bytes

    @property
    def document(self) -> dict[str, Any]:
        value = json.loads(self.data)
        if not isinstance(value, dict):
            raise RemoteProtocolError("a manifest that is not a JSON object")
        return value

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEXES

    def children(self) -> list[dict[str, Any]]:
        """The manifests an index names (empty for an image manifest)."""
        return list(self.document.get("manifests") or []) if self.is_index else []

    def blobs(self) -> list[dict[str, Any]]:
        """The config and layers an image manifest names (empty for an index)."""
        if self.is_index:
            return []
        doc = self.document
        return ([doc["config"]] if isinstance(doc.get("config"), dict) else []) + list(doc.get("layers") or [])


class Throttle:
    """Holds a stream to `bytes_per_second` on average (Harbor's per-task `speed`, in KB/s):
    after each chunk it sleeps until the bytes so far are no ahead of the rate."""

    def __init__(self, bytes_per_second: int, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._rate = bytes_per_second
        self._clock = clock
        self._sleep = sleep
        self._start: float | None = None
        self._total = 0

    def consumed(self, count: int) -> None:
        now = self._clock()
        if self._start is None:
            self._start = now
        self._total += count
        due = self._start + self._total / self._rate
        if due > now:
            self._sleep(due - now)


class BlobStream:
    """A blob's bytes as they arrive, hashed on the way; iterate it to the end. The last step
    raises RemoteDigestMismatch instead of finishing when the bytes (or their number) are not the
    blob asked for."""

    def __init__(
        self, response: urllib3.BaseHTTPResponse, digest: str, size: int | None, throttle: Throttle | None = None
    ) -> None:
        self._response = response
        self.digest = digest
        self.size = size
        self._hash = _hasher(digest)
        self._throttle = throttle

    def __iter__(self) -> Iterator[bytes]:
        received = 0
        try:
            for chunk in self._response.stream(_STREAM_BYTES):
                received += len(chunk)
                if self.size is not None and received > self.size:
                    raise RemoteDigestMismatch(f"blob {self.digest}: more bytes than its size")
                self._hash.update(chunk)
                if self._throttle is not None:
                    self._throttle.consumed(len(chunk))
                yield chunk
        except urllib3.exceptions.HTTPError as exc:
            raise RemoteUnreachable(f"blob {self.digest}: the download broke ({type(exc).__name__})") from None
        finally:
            self._response.release_conn()
        if self.size is not None and received != self.size:
            raise RemoteDigestMismatch(f"blob {self.digest}: {received} bytes arrived, {self.size} expected")
        if f"{self._hash.name}:{self._hash.hexdigest()}" != self.digest:
            raise RemoteDigestMismatch(f"blob {self.digest}: the bytes do not match the digest")

    def close(self) -> None:
        self._response.release_conn()


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Per-registry knobs: retries, the blob chunk size, a download speed limit in KB/s (0: none).
    Timeouts and TLS verification belong to the `EgressSession` (`catalog.session_for`)."""

    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    speed_kb: int = 0
    retry: RetryPolicy = RetryPolicy()  # noqa: RUF009 (frozen, so one shared default is safe)


class RegistryClient:
    """The distribution API of one registry at `base_url` (scheme://host[:port], no /v2)."""

    def __init__(
        self,
        base_url: str,
        credentials: CredentialSource,
        session: EgressSession,
        *,
        options: ClientOptions = ClientOptions(),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self._clock, self._sleep = clock, sleep
        self._transport = Transport(
            base_url, session, Authenticator(credentials, self._fetch_token, clock), options.retry, sleep
        )

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def token_requests(self) -> int:
        return self._transport.auth.token_requests

    def _fetch_token(self, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        # The realm is another URL (often another host): it goes through the egress policy too.
        response = self._transport.call("GET", url, headers=headers, authenticate=False)
        return response.status, read_body(response, MAX_LIST_PAGE_BYTES)

    # --- the registry itself ---

    def ping(self) -> None:
        """GET /v2/ with the credentials: returns when the registry accepts them, else raises."""
        response = self._transport.call("GET", "/v2/")
        if response.status != 200:
            raise fail(response, "ping")
        read_body(response, MAX_LIST_PAGE_BYTES)

    def catalog(self, page_size: int = 1000) -> Iterator[str]:
        """Every repository name, following `Link: <...>; rel="next"` page after page."""
        for page in self._pages(f"/v2/_catalog?n={page_size}", ("registry:catalog:*",), "catalog"):
            yield from page.get("repositories") or []

    def tags(self, repository: str, page_size: int = 1000) -> Iterator[str]:
        path = f"/v2/{repository}/tags/list?n={page_size}"
        for page in self._pages(path, (_pull(repository),), f"tags of {repository}"):
            yield from page.get("tags") or []

    def _pages(self, path: str, scopes: tuple[str, ...], what: str) -> Iterator[dict[str, Any]]:
        url: str | None = path
        while url is not None:
            response = self._transport.call("GET", url, scopes)
            if response.status != 200:
                raise fail(response, what)
            link = response.headers.get("Link", "")
            yield _json(read_body(response, MAX_LIST_PAGE_BYTES), what)
            found = next_link(link)
            url = self._transport.url(found) if found else None

    # --- manifests ---

    def head_manifest(self, repository: str, reference: str) -> Descriptor | None:
        """The descriptor of a tag or digest (None when absent). HEAD does not count against
        Docker Hub's pull limit, so this is how a cached copy is revalidated."""
        response = self._transport.call(
            "HEAD", _manifest_path(repository, reference), (_pull(repository),), {"Accept": MANIFEST_ACCEPT}
        )
        read_body(response, 0)
        if response.status == 404:
            return None
        if response.status != 200:
            raise fail(response, f"manifest {repository}:{reference}")
        digest = response.headers.get("Docker-Content-Digest") or (reference if ":" in reference else "")
        media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
        return Descriptor(media_type, digest, int(response.headers.get("Content-Length") or 0))

    def pull_manifest(self, repository: str, reference: str) -> Manifest:
        """HEAD first, then GET by the digest the HEAD named, so the bytes are checked against an
        exact digest even when the tag moves between the two calls."""
        head = self.head_manifest(repository, reference)
        if head is None:
            raise RemoteNotFound(f"manifest {repository}:{reference}: not found")
        return self.get_manifest(repository, head.digest or reference)

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        what = f"manifest {repository}:{reference}"
        response = self._transport.call(
            "GET", _manifest_path(repository, reference), (_pull(repository),), {"Accept": MANIFEST_ACCEPT}
        )
        if response.status != 200:
            raise fail(response, what)
        announced = response.headers.get("Docker-Content-Digest")
        data = read_body(response, MAX_MANIFEST_BYTES)
        expected = reference if ":" in reference else announced
        algorithm = expected.split(":", 1)[0] if expected and expected.split(":", 1)[0] in _HASHES else "sha256"
        digest = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
        if expected and digest != expected:
            raise RemoteDigestMismatch(f"{what}: the manifest does not match its digest")
        media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
        embedded = _json(data, what).get("mediaType")
        if isinstance(embedded, str) and embedded:
            media_type = embedded
        return Manifest(media_type, digest, data)

    def push_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """PUT a manifest by tag or digest; its digest. A manifest with a `subject` on a registry
        without the referrers API is also listed in the subject's fallback tag (`<alg>-<hex>`)."""
        what = f"manifest {repository}:{reference}"
        response = self._transport.call(
            "PUT",
            _manifest_path(repository, reference),
            (_push(repository),),
            {"Content-Type": manifest.media_type},
            body=manifest.data,
        )
        if response.status not in (200, 201, 202):
            raise fail(response, what)
        handled = response.headers.get("OCI-Subject")
        read_body(response, MAX_LIST_PAGE_BYTES)
        subject = manifest.document.get("subject")
        if isinstance(subject, dict) and not handled and isinstance(subject.get("digest"), str):
            self._add_to_fallback_index(repository, subject["digest"], manifest)
        return manifest.digest

    def delete_manifest(self, repository: str, digest: str) -> None:
        self._delete(_manifest_path(repository, digest), repository, f"manifest {repository}@{digest}")

    def delete_tag(self, repository: str, tag: str) -> None:
        """DELETE by tag (OCI 1.1). distribution 2.8 refuses it (UNSUPPORTED), which is reported as is."""
        self._delete(_manifest_path(repository, tag), repository, f"tag {repository}:{tag}")

    def _delete(self, path: str, repository: str, what: str) -> None:
        response = self._transport.call("DELETE", path, (f"repository:{repository}:delete",))
        if response.status not in (200, 202, 204):
            raise fail(response, what)
        read_body(response, MAX_LIST_PAGE_BYTES)

    # --- referrers ---

    def referrers(self, repository: str, digest: str, artifact_type: str | None = None, *,
                  fallback: bool = True) -> list[dict[str, Any]]:  # fmt: skip
        """The descriptors of the manifests whose `subject` is `digest`: the referrers API, or the
        fallback tag `<alg>-<hex>` when the registry has no such API (it answers 404 there).
        Without `fallback` that 404 is raised as RemoteNotFound (a proxy answers it as it came)."""
        path = f"/v2/{repository}/referrers/{digest}"
        if artifact_type:
            path += "?" + urlencode({"artifactType": artifact_type})
        response = self._transport.call("GET", path, (_pull(repository),), {"Accept": OCI_INDEX})
        content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
        if response.status == 200 and content_type == OCI_INDEX:
            found: list[dict[str, Any]] = []
            filtered = bool(response.headers.get("OCI-Filters-Applied"))
            link = response.headers.get("Link", "")
            found.extend(_json(read_body(response, MAX_MANIFEST_BYTES), "referrers").get("manifests") or [])
            pages = 1
            while following := next_link(link):
                pages += 1
                if pages > MAX_REFERRER_PAGES:
                    raise RemoteProtocolError(
                        f"referrers of {repository}@{digest}: more than {MAX_REFERRER_PAGES} pages"
                    )
                page = self._transport.call("GET", self._transport.url(following), (_pull(repository),))
                if page.status != 200:
                    raise fail(page, f"referrers of {repository}@{digest}")
                link = page.headers.get("Link", "")
                found.extend(_json(read_body(page, MAX_MANIFEST_BYTES), "referrers").get("manifests") or [])
            return _by_type(found, artifact_type) if not filtered else found
        if response.status not in (200, 404) or (response.status == 404 and not fallback):
            raise fail(response, f"referrers of {repository}@{digest}")
        read_body(response, MAX_MANIFEST_BYTES)
        if not fallback:  # a 200 that is not an image index
            raise RemoteProtocolError(f"referrers of {repository}@{digest}: the answer is not an image index")
        try:
            index = self.get_manifest(repository, _fallback_tag(digest))
        except RemoteNotFound:
            return []
        return _by_type(index.children(), artifact_type)

    def _add_to_fallback_index(self, repository: str, subject: str, manifest: Manifest) -> None:
        tag = _fallback_tag(subject)
        try:
            index = self.get_manifest(repository, tag).document
        except RemoteNotFound:
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        entries = [entry for entry in index.get("manifests") or [] if entry.get("digest") != manifest.digest]
        doc = manifest.document
        entry: dict[str, Any] = {"mediaType": manifest.media_type, "digest": manifest.digest}
        entry["size"] = len(manifest.data)
        artifact_type = doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
        if artifact_type:
            entry["artifactType"] = artifact_type
        if doc.get("annotations"):
            entry["annotations"] = doc["annotations"]
        index["manifests"] = [*entries, entry]
        data = json.dumps(index, separators=(",", ":")).encode()
        self.push_manifest(repository, tag, Manifest(OCI_INDEX, "sha256:" + hashlib.sha256(data).hexdigest(), data))

    # --- blobs ---

    def blob_exists(self, repository: str, digest: str) -> int | None:
        """The blob's size when the repository has it, else None."""
        response = self._transport.call(
            "HEAD", f"/v2/{repository}/blobs/{digest}", (_pull(repository),), follow_redirects=True
        )
        read_body(response, 0)
        if response.status == 404:
            return None
        if response.status != 200:
            raise fail(response, f"blob {repository}@{digest}")
        return int(response.headers.get("Content-Length") or 0)

    def pull_blob(self, repository: str, digest: str, size: int | None = None) -> BlobStream:
        """Stream a blob (redirects to storage followed, without the registry's credentials)."""
        _hasher(digest)  # refuse an algorithm that cannot be verified before any byte moves
        response = self._transport.call(
            "GET", f"/v2/{repository}/blobs/{digest}", (_pull(repository),), follow_redirects=True
        )
        if response.status != 200:
            raise fail(response, f"blob {repository}@{digest}")
        length = response.headers.get("Content-Length")
        announced = int(length) if length and length.isdigit() else None
        if size is not None and announced is not None and announced != size:
            response.release_conn()
            raise RemoteDigestMismatch(f"blob {repository}@{digest}: {announced} bytes announced, {size} expected")
        throttle = Throttle(self.options.speed_kb * 1024, self._clock, self._sleep) if self.options.speed_kb else None
        return BlobStream(response, digest, size if size is not None else announced, throttle)

    def read_blob(self, repository: str, digest: str, size: int | None = None) -> bytes:
        """A whole (small) blob, returned only once verified."""
        return b"".join(self.pull_blob(repository, digest, size))

    def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Cross-repository mount; True when mounted (201). A 202 means the registry opened an
        upload instead: that session is cancelled and False returned, so the caller copies."""
        query = urlencode({"mount": digest, "from": source})
        response = self._transport.call(
            "POST", f"/v2/{repository}/blobs/uploads/?{query}", (_push(repository), _pull(source))
        )
        location = response.headers.get("Location")
        status = response.status
        if status not in (201, 202):
            raise fail(response, f"mount of {digest} into {repository}")
        read_body(response, MAX_LIST_PAGE_BYTES)
        if status == 202 and location:
            cancel = self._transport.call("DELETE", location, (_push(repository),))
            read_body(cancel, MAX_LIST_PAGE_BYTES)
        return status == 201

    def push_blob(self, repository: str, digest: str, size: int, data: bytes | BlobStream) -> None:
        """Monolithic upload: POST for a session, then one PUT carrying every byte."""
        location, _ = self._start_upload(repository)
        response = self._transport.call(
            "PUT",
            _with_query(location, digest=digest),
            (_push(repository),),
            {"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            body=data if isinstance(data, bytes) else iter(data),
        )
        self._finished(response, repository, digest)

    def push_blob_chunked(
        self, repository: str, digest: str, size: int, read: Callable[[int], bytes], chunk_bytes: int | None = None
    ) -> int:
        """Chunked upload: PATCHes of `chunk_bytes` (raised to the registry's OCI-Chunk-Min-Length,
        lowered to its OCI-Chunk-Max-Length), then a PUT with the digest. `read(n)` returns the next
        at most n bytes. A PATCH whose answer was lost is not sent twice: when the registry refuses
        the repeated range (416), it is asked how much it holds and only the rest is sent.
        Returns how many chunks the blob was cut into."""
        location, limits = self._start_upload(repository)
        chunk = max(chunk_bytes or self.options.chunk_bytes, limits[0])
        if limits[1]:
            chunk = min(chunk, limits[1])
        offset = chunks = 0
        while offset < size:
            data = read(min(chunk, size - offset))
            if not data:
                raise RemoteProtocolError(f"blob {digest}: the source ended at {offset} of {size} bytes")
            location = self._patch(repository, digest, location, offset, data)
            offset += len(data)
            chunks += 1
        response = self._transport.call(
            "PUT", _with_query(location, digest=digest), (_push(repository),), {"Content-Length": "0"}, body=b""
        )
        self._finished(response, repository, digest)
        return chunks

    def _patch(self, repository: str, digest: str, location: str, offset: int, data: bytes) -> str:
        """Send `data` (which starts at `offset`) until the registry holds all of it; the next Location."""
        held = offset
        for _ in range(RESUMES + 1):
            part = data[held - offset :]
            if not part:
                return location
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{held}-{offset + len(data) - 1}",
                "Content-Length": str(len(part)),
            }
            response = self._transport.call("PATCH", location, (_push(repository),), headers, body=part)
            if response.status == 416:
                read_body(response, MAX_LIST_PAGE_BYTES)
                held = self._upload_offset(repository, location)
                if not offset <= held <= offset + len(data):
                    raise RemoteProtocolError(f"blob {digest}: the registry holds {held} bytes, {offset} were sent")
                continue
            if response.status != 202:
                raise fail(response, f"chunk of {digest} into {repository}")
            location = self._transport.url(response.headers.get("Location") or location)
            read_body(response, MAX_LIST_PAGE_BYTES)
            return location
        raise RemoteProtocolError(f"blob {digest}: the registry kept refusing the range at {held}")

    def _upload_offset(self, repository: str, location: str) -> int:
        """How many bytes an upload session holds (`Range: 0-<last>` of a GET on it)."""
        response = self._transport.call("GET", location, (_push(repository),))
        if response.status not in (200, 204):
            raise fail(response, f"upload status in {repository}")
        last = (response.headers.get("Range") or "").rpartition("-")[2]
        read_body(response, MAX_LIST_PAGE_BYTES)
        return int(last) + 1 if last.isdigit() else 0

    def _start_upload(self, repository: str) -> tuple[str, tuple[int, int]]:
        response = self._transport.call("POST", f"/v2/{repository}/blobs/uploads/", (_push(repository),))
        if response.status != 202:
            raise fail(response, f"upload into {repository}")
        location = response.headers.get("Location")
        headers = response.headers
        limits = (_int(headers.get("OCI-Chunk-Min-Length")), _int(headers.get("OCI-Chunk-Max-Length")))
        read_body(response, MAX_LIST_PAGE_BYTES)
        if not location:
            raise RemoteProtocolError(f"upload into {repository}: no Location")
        return self._transport.url(location), limits

    def _finished(self, response: urllib3.BaseHTTPResponse, repository: str, digest: str) -> None:
        if response.status != 201:
            raise fail(response, f"upload of {digest} into {repository}")
        read_body(response, MAX_LIST_PAGE_BYTES)


def next_link(header: str) -> str | None:
    """The target of `rel="next"` in a Link header (None on the last page)."""
    match = _LINK_NEXT.search(header or "")
    return match[1] if match else None


def _pull(repository: str) -> str:
    return f"repository:{repository}:pull"


def _push(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def _manifest_path(repository: str, reference: str) -> str:
    return f"/v2/{repository}/manifests/{quote(reference, safe=':')}"


def _fallback_tag(digest: str) -> str:
    return digest.replace(":", "-", 1)[:128]


def _by_type(descriptors: list[dict[str, Any]], artifact_type: str | None) -> list[dict[str, Any]]:
    return [d for d in descriptors if not artifact_type or d.get("artifactType") == artifact_type]


def _hasher(digest: str) -> Any:
    algorithm, _, encoded = digest.partition(":")
    if _HASHES.get(algorithm) != len(encoded):
        raise RemoteError(f"digest {digest!r} cannot be verified (sha256 and sha512 are supported)")
    return hashlib.new(algorithm)


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise RemoteProtocolError(f"{what}: the answer is not JSON") from None
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"{what}: the answer is not a JSON object")
    return value


def _int(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
