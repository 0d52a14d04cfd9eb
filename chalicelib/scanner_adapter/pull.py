"""Pulling the image to scan from the registry named in the scan request, the way Trivy does.

- Authorization from the scan request: `Basic <b64 user:secret>` is exchanged for a token at the
  realm the registry's `/v2/` 401 names (the Docker token flow, scope `repository:<repo>:pull`);
  `Bearer <token>` is used as given; empty means anonymous.
- The manifest is fetched by digest and checked against it; blobs are streamed and checked
  against their digests while the layer walk reads them.
- Blob answers redirect (307 to object storage): at most 5 hops are followed, each through the
  egress policy, and `Authorization` is dropped when a hop leaves the registry's host (a presigned
  URL must not receive the registry credential, and rejects it anyway).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any
from urllib.parse import quote, urlencode, urljoin, urlsplit

import urllib3.exceptions

from chalicelib.adapters.egress import AnswerTooLarge, EgressClient

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class PullFailed(Exception):
    """The image could not be pulled as asked (the message says which step failed)."""


class RegistryPuller:
    def __init__(self, http: EgressClient, registry_url: str, authorization: str, verify: bool) -> None:
        scheme, _, credential = authorization.strip().partition(" ")
        if authorization.strip() and scheme not in ("Basic", "Bearer"):
            raise PullFailed("registry.authorization must be empty, Basic or Bearer")
        self._http = http
        self._base = registry_url.rstrip("/")
        self._scheme, self._credential = scheme, credential.strip()
        self._verify = verify
        self._header: dict[str, str] | None = None

    def manifest(self, repository: str, digest: str) -> tuple[str, dict[str, Any], bytes]:
        """(media type, parsed manifest, raw bytes) of an image manifest, verified against `digest`."""
        url = f"{self._base}/v2/{repository}/manifests/{quote(digest, safe=':')}"
        headers = {"Accept": ", ".join(MANIFEST_TYPES + INDEX_TYPES)}
        answer = self._get(repository, url, headers, MAX_MANIFEST_BYTES)
        if answer[0] != 200:
            raise PullFailed(f"manifest {digest}: the registry answered {answer[0]}")
        body = answer[2]
        _check_digest(digest, body)
        try:
            document = json.loads(body)
        except ValueError:
            raise PullFailed(f"manifest {digest} is not JSON") from None
        media_type = document.get("mediaType") if isinstance(document, dict) else None
        media_type = media_type or answer[1]
        if media_type in INDEX_TYPES:
            raise PullFailed("an image index is scanned through its images, not as a whole")
        if media_type not in MANIFEST_TYPES or not isinstance(document.get("layers"), list):
            raise PullFailed(f"{media_type or 'this artifact'} is not an image manifest this scanner reads")
        return media_type, document, body

    @contextmanager
    def blob(self, repository: str, digest: str) -> Iterator[IO[bytes]]:
        """The blob as a stream; leaving the block reads it to the end and raises PullFailed if its
        bytes do not hash to `digest`."""
        url = f"{self._base}/v2/{repository}/blobs/{quote(digest, safe=':')}"
        headers = self._auth(repository)
        try:
            for _hop in range(MAX_REDIRECTS + 1):
                with self._http.open("GET", url, headers, self._verify) as response:
                    if response.status in _REDIRECTS and response.headers.get("Location"):
                        target = urljoin(url, response.headers["Location"])
                        if urlsplit(target).netloc != urlsplit(url).netloc:
                            headers = {}
                        url = target
                        continue
                    if response.status != 200:
                        raise PullFailed(f"blob {digest}: the registry answered {response.status}")
                    verifying = _Verifying(response, digest)
                    yield verifying  # type: ignore[misc]
                    verifying.finish()
                    return
        except (urllib3.exceptions.HTTPError, OSError) as failure:
            raise PullFailed(f"blob {digest}: {type(failure).__name__}") from None
        raise PullFailed(f"blob {digest}: more than {MAX_REDIRECTS} redirects")

    def _get(self, repository: str, url: str, headers: dict[str, str], max_bytes: int) -> tuple[int, str, bytes]:
        try:
            answer = self._http.request(
                "GET", url, {**headers, **self._auth(repository)}, self._verify, max_bytes=max_bytes
            )
        except AnswerTooLarge:
            raise PullFailed("the registry's answer is larger than a manifest may be") from None
        except (urllib3.exceptions.HTTPError, OSError) as failure:
            raise PullFailed(f"the registry cannot be reached: {type(failure).__name__}") from None
        return answer.status, answer.header("Content-Type") or "", answer.body

    def _auth(self, repository: str) -> dict[str, str]:
        """The Authorization header for this repository, after the registry's challenge."""
        if self._header is None:
            self._header = self._negotiate(repository)
        return self._header

    def _negotiate(self, repository: str) -> dict[str, str]:
        if not self._scheme:
            return {}
        if self._scheme == "Bearer":
            return {"Authorization": f"Bearer {self._credential}"}
        try:
            ping = self._http.request("GET", f"{self._base}/v2/", {}, self._verify, max_bytes=64 * 1024)
        except (urllib3.exceptions.HTTPError, OSError, AnswerTooLarge) as failure:
            raise PullFailed(f"the registry cannot be reached: {type(failure).__name__}") from None
        challenge = ping.header("WWW-Authenticate") or ""
        if ping.status != 401 or not challenge.lower().startswith("bearer"):
            return {"Authorization": f"Basic {self._credential}"}
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.pop("realm", "")
        query = {"service": params.get("service", ""), "scope": f"repository:{repository}:pull"}
        try:
            answer = self._http.request(
                "GET",
                urljoin(self._base + "/", realm) + "?" + urlencode(query),
                {"Authorization": f"Basic {self._credential}"},
                self._verify,
                max_bytes=64 * 1024,
            )
        except (urllib3.exceptions.HTTPError, OSError, AnswerTooLarge) as failure:
            raise PullFailed(f"the token service cannot be reached: {type(failure).__name__}") from None
        if answer.status != 200:
            raise PullFailed(f"the token service refused the scan credentials ({answer.status})")
        try:
            document = json.loads(answer.body)
            token = document.get("token") or document.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise PullFailed("the token service answered no token")
        return {"Authorization": f"Bearer {token}"}


def _check_digest(digest: str, data: bytes) -> None:
    algorithm, _, expected = digest.partition(":")
    if algorithm not in ("sha256", "sha512") or hashlib.new(algorithm, data).hexdigest() != expected:
        raise PullFailed(f"the content does not match {digest}")


class _Verifying:
    """A blob stream hashed as it is read; `finish` reads the rest and compares."""

    def __init__(self, response: Any, digest: str) -> None:
        algorithm, _, self._expected = digest.partition(":")
        if algorithm not in ("sha256", "sha512"):
            raise PullFailed(f"unsupported digest {digest}")
        self._response = response
        self._hash = hashlib.new(algorithm)
        self._digest = digest

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._response.read(size if size >= 0 else None)
        self._hash.update(data)
        return data

    def readable(self) -> bool:
        return True

    def finish(self) -> None:
        while self.read(1024 * 1024):
            pass
        if self._hash.hexdigest() != self._expected:
            raise PullFailed(f"blob {self._digest} does not match its digest")
