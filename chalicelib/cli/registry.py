"""A small OCI distribution client: authentication challenges, manifests, blobs, upload sessions.

Authentication follows the registry's `WWW-Authenticate` answer to the first request: `Basic`
sends the credentials on every request; `Bearer` fetches a token from the challenge's realm for
the scopes this client was made for (GET with Basic credentials, or the OAuth2 refresh-token POST
when the credentials are an identity token), keeps it, and fetches a new one when a request is
refused again. Credentials and tokens go only to the registry's own host: an upload `Location`
on another host (an upload relay) carries its own capability, and a blob GET's redirect to object
storage must not see them (requests drops `Authorization` on a cross-host redirect).
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from chalicelib.cli.credentials import Credentials

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_CHALLENGE_PARAM_RE = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
_CONNECT_TIMEOUT, _READ_TIMEOUT = 10, 300


class RegistryResponseError(RuntimeError):
    """A registry answer other than the one the protocol step expects."""

    def __init__(self, what: str, response: requests.Response) -> None:
        self.status = response.status_code
        self.code = ""
        message = response.text[:300]
        try:
            errors = response.json().get("errors") or []
            if errors:
                self.code, message = str(errors[0].get("code", "")), str(errors[0].get("message", ""))
        except (ValueError, AttributeError):
            pass
        super().__init__(f"{what}: HTTP {self.status} {self.code} {message}".rstrip())


@dataclass(frozen=True)
class UploadSession:
    """A started upload (`location` absolute) and the chunk bounds the registry advertised."""

    location: str
    max_chunk: int | None
    min_chunk: int | None


class RegistryClient:
    """One registry host, with the credentials and the scopes one copy needs there."""

    def __init__(
        self,
        host: str,
        credentials: Credentials,
        scopes: Iterable[str],
        *,
        plain_http: bool = False,
        verify_tls: bool = True,
        connections: int = 8,
    ) -> None:
        self.host = host
        self.base_url = f"{'http' if plain_http else 'https'}://{host}"
        self._credentials = credentials
        self._scopes = list(dict.fromkeys(scopes))
        self._session = requests.Session()
        self._session.verify = verify_tls
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=connections)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._lock = threading.Lock()
        self._authorization: str | None = None
        self._basic = False

    def add_scopes(self, scopes: Iterable[str]) -> None:
        """Ask for these scopes too (repositories to mount from): the next token carries them."""
        with self._lock:
            wanted = [s for s in scopes if s not in self._scopes]
            if wanted:
                self._scopes += wanted
                if not self._basic:
                    self._authorization = None

    def url(self, path: str) -> str:
        return urljoin(self.base_url, path)

    # Requests with the authentication dance.

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send; on a 401 from this host answer its challenge once and send again.

        Bodies are bytes (never a stream), so the second send repeats the first exactly.
        """
        url = self.url(url)
        kwargs.setdefault("timeout", (_CONNECT_TIMEOUT, _READ_TIMEOUT))
        used = self._authorization
        response = self._send(method, url, used, kwargs)
        if response.status_code != 401 or not self._same_host(url):
            return response
        with self._lock:
            if self._authorization == used:  # no other thread has answered it meanwhile
                self._answer(response.headers.get("WWW-Authenticate", ""))
            used = self._authorization
        response.close()
        return self._send(method, url, used, kwargs)

    def _send(self, method: str, url: str, authorization: str | None, kwargs: dict[str, Any]) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if authorization and self._same_host(url):
            headers["Authorization"] = authorization
        try:
            return self._session.request(method, url, headers=headers, **kwargs)
        finally:
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}

    def _same_host(self, url: str) -> bool:
        return urlsplit(url).netloc == self.host

    def _answer(self, challenge: str) -> None:
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic" and not self._credentials.anonymous:
            pair = f"{self._credentials.username}:{self._credentials.password}".encode()
            self._authorization = "Basic " + base64.b64encode(pair).decode()
            self._basic = True
        elif scheme == "bearer":
            self._authorization = f"Bearer {self._token(dict(_CHALLENGE_PARAM_RE.findall(challenge)))}"

    def _token(self, params: dict[str, str]) -> str:
        realm = params.pop("realm", "")
        if not realm:
            raise RuntimeError(f"{self.host}: Bearer challenge without a realm")
        service = params.get("service", "")
        scopes = self._scopes or ([params["scope"]] if params.get("scope") else [])
        creds = self._credentials
        if creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token, "service": service}
            form |= {"client_id": "registry-push", "scope": " ".join(scopes)}
            response = self._session.post(realm, data=form, timeout=(_CONNECT_TIMEOUT, 60))
        else:
            query = [("service", service), *(("scope", s) for s in scopes)]
            auth = None if creds.anonymous else (creds.username, creds.password)
            response = self._session.get(realm, params=query, auth=auth, timeout=(_CONNECT_TIMEOUT, 60))
        if response.status_code != 200:
            raise RegistryResponseError(f"token from {realm}", response)
        body = response.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RuntimeError(f"the token endpoint {realm} answered without a token")
        return str(token)

    # Manifests and blobs.

    def get_manifest(self, repository: str, reference: str) -> tuple[str, bytes]:
        """(media type, exact bytes) of a manifest or index."""
        response = self.request(
            "GET", f"/v2/{repository}/manifests/{reference}", headers={"Accept": ", ".join(MANIFEST_TYPES)}
        )
        if response.status_code != 200:
            raise RegistryResponseError(f"GET manifest {repository}:{reference}", response)
        return response.headers.get("Content-Type", "").split(";")[0].strip(), response.content

    def put_manifest(self, repository: str, reference: str, media_type: str, data: bytes) -> str:
        response = self.request(
            "PUT", f"/v2/{repository}/manifests/{reference}", data=data, headers={"Content-Type": media_type}
        )
        if response.status_code != 201:
            raise RegistryResponseError(f"PUT manifest {repository}:{reference}", response)
        return response.headers.get("Docker-Content-Digest", "")

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}")
        if response.status_code in (200, 404):
            return response.status_code == 200
        raise RegistryResponseError(f"HEAD blob {digest}", response)

    def read_blob(self, repository: str, digest: str, offset: int) -> Iterator[bytes]:
        """The blob's bytes from `offset` (a Range request; a registry that ignores it is skipped ahead)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = self.request("GET", f"/v2/{repository}/blobs/{digest}", headers=headers, stream=True)
        if response.status_code not in (200, 206):
            raise RegistryResponseError(f"GET blob {digest}", response)
        skip = offset if response.status_code == 200 else 0
        with response:
            for piece in response.iter_content(1 << 20):
                if skip >= len(piece):
                    skip -= len(piece)
                    continue
                yield piece[skip:]
                skip = 0

    # Upload sessions.

    def start_upload(self, repository: str, digest: str, mount_from: str | None) -> UploadSession | None:
        """POST with `mount=` (and `from=` when given): None when the registry mounted the blob,
        else the session it opened instead (a failed mount opens one, so trying costs nothing)."""
        query = {"mount": digest} | ({"from": mount_from} if mount_from else {})
        response = self.request("POST", f"/v2/{repository}/blobs/uploads/", params=query)
        if response.status_code == 201:
            return None
        if response.status_code != 202 or "Location" not in response.headers:
            raise RegistryResponseError(f"POST upload {repository}", response)
        return UploadSession(
            location=urljoin(response.url, response.headers["Location"]),
            max_chunk=_positive_int(response.headers.get("OCI-Chunk-Max-Length")),
            min_chunk=_positive_int(response.headers.get("OCI-Chunk-Min-Length")),
        )

    def patch(self, location: str, data: bytes, offset: int) -> tuple[str, int]:
        """Send one chunk at `offset`; the next Location and the registry's new end offset."""
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(data) - 1}",
        }
        response = self.request("PATCH", location, data=data, headers=headers)
        if response.status_code != 202:
            raise RegistryResponseError(f"PATCH {offset}-{offset + len(data) - 1}", response)
        return urljoin(location, response.headers.get("Location", location)), _range_end(response)

    def upload_offset(self, location: str) -> tuple[str, int]:
        """GET the session: its Location and how many bytes it holds (from `Range: 0-<last>`)."""
        response = self.request("GET", location)
        if response.status_code != 204:
            raise RegistryResponseError("GET upload status", response)
        return urljoin(location, response.headers.get("Location", location)), _range_end(response)

    def finish(self, location: str, digest: str) -> None:
        response = self.request("PUT", with_query(location, digest=digest), data=b"")
        if response.status_code != 201:
            raise RegistryResponseError(f"PUT upload {digest}", response)

    def cancel(self, location: str) -> None:
        self.request("DELETE", location).close()


def with_query(url: str, **params: str) -> str:
    """`url` with `params` added to whatever query it already carries."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _range_end(response: requests.Response) -> int:
    """Bytes held according to `Range: 0-<last>` (a missing header means none)."""
    value = response.headers.get("Range", "").removeprefix("bytes=").strip()
    first, _, last = value.partition("-")
    if not first.isdigit() or not last.isdigit() or value == "0-0":
        # Registries answer "0-0" both for nothing and for one byte held: read as nothing, so at
        # worst one byte is sent again (and refused with 416 if the session did hold it).
        return 0
    return int(last) + 1


def _positive_int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and int(value) > 0 else None
