"""HTTP helpers for the identity suite: a Harbor-style client over `werkzeug.test.Client`.

Self-contained on purpose (the sibling helpers change under other engineers): Basic and Bearer
auth, the Harbor management API, the token service, and minimal OCI pushes.

`auth` everywhere is one of:
- a `(username, secret)` tuple: HTTP Basic;
- a `str`: a bearer token;
- `None`: anonymous.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import uuid
from typing import Any
from urllib.parse import urlencode

import jwt
from werkzeug.test import Client, TestResponse

API = "/api/v2.0"
ADMIN_PASSWORD = "Harbor12345"
ADMIN = ("admin", ADMIN_PASSWORD)
PASSWORD = "Identity-Pass1"  # satisfies Harbor's rule: 8-128 chars, lower, upper, digit
SERVICE = "harbor-registry"
ISSUER = "harbor-token-issuer"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

ROLE_IDS = {"projectAdmin": 1, "developer": 2, "guest": 3, "maintainer": 4, "limitedGuest": 5}

Auth = tuple[str, str] | str | None
_counter = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other test uses (lower-case, valid for users, projects and robots)."""
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def basic(username: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


def auth_headers(auth: Auth) -> dict[str, str]:
    if auth is None:
        return {}
    if isinstance(auth, str):
        return {"Authorization": f"Bearer {auth}"}
    return {"Authorization": basic(*auth)}


def envelope(response: TestResponse) -> dict[str, Any]:
    body = response.get_json(force=True, silent=True)
    assert isinstance(body, dict), (response.status_code, response.get_data()[:500])
    errors = body.get("errors")
    assert isinstance(errors, list) and errors, body
    entry = errors[0]
    assert isinstance(entry, dict) and isinstance(entry.get("code"), str), body
    assert isinstance(entry.get("message"), str) and entry["message"], body
    return entry


def expect_error(response: TestResponse, status: int | tuple[int, ...], code: str | tuple[str, ...]) -> dict[str, Any]:
    """The Harbor/OCI error envelope with one of `code` and one of `status`; returns the entry."""
    statuses = (status,) if isinstance(status, int) else status
    codes = (code,) if isinstance(code, str) else code
    assert response.status_code in statuses, (response.status_code, response.get_data()[:500])
    entry = envelope(response)
    assert entry["code"] in codes, (response.status_code, entry)
    return entry


def expect_status(response: TestResponse, status: int) -> TestResponse:
    assert response.status_code == status, (response.status_code, response.get_data()[:500])
    return response


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def header_of(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


def actions_in(token: str, name: str, type_: str = "repository") -> set[str]:
    """Every action the token's `access` claim grants on `type_:name`."""
    return {
        action
        for entry in claims_of(token).get("access", [])
        if entry.get("type") == type_ and entry.get("name") == name
        for action in entry.get("actions", [])
    }


class Harbor:
    """The app over HTTP, plus the multi-request flows the identity tests repeat."""

    def __init__(self, client: Client) -> None:
        self.http = client

    def clone(self) -> Harbor:
        """Another client for the same app (threads need their own)."""
        return Harbor(Client(self.http.application))

    # Raw verbs. Paths starting with "/" are absolute; others are under /api/v2.0.

    def request(
        self,
        method: str,
        path: str,
        *,
        auth: Auth = ADMIN,
        json_body: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, Any] | list[tuple[str, str]] | str | None = None,
        content_type: str | None = None,
    ) -> TestResponse:
        url = path if path.startswith("/") else f"{API}/{path}"
        all_headers = {**auth_headers(auth), **(headers or {})}
        if json_body is not None:
            data = json.dumps(json_body)
            content_type = content_type or "application/json"
        if isinstance(query, list):
            query = urlencode(query)
        return self.http.open(
            url, method=method, headers=all_headers, data=data, query_string=query, content_type=content_type
        )

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.request("GET", path, **kw)

    def head(self, path: str, **kw: Any) -> TestResponse:
        return self.request("HEAD", path, **kw)

    def post(self, path: str, **kw: Any) -> TestResponse:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> TestResponse:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> TestResponse:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> TestResponse:
        return self.request("DELETE", path, **kw)

    # Management API flows (as the administrator unless told otherwise).

    def create_user(self, username: str | None = None, password: str = PASSWORD) -> tuple[str, int]:
        name = username or unique("user")
        response = self.post(
            "users",
            json_body={"username": name, "password": password, "email": f"{name}@example.com", "realname": name},
        )
        expect_status(response, 201)
        return name, int(response.headers["Location"].rsplit("/", 1)[1])

    def create_project(
        self,
        name: str | None = None,
        *,
        public: bool = False,
        storage_limit: int | None = None,
        auth: Auth = ADMIN,
        metadata: dict[str, str] | None = None,
    ) -> tuple[str, int]:
        project = name or unique("proj")
        body: dict[str, Any] = {
            "project_name": project,
            "metadata": {"public": str(public).lower(), **(metadata or {})},
        }
        if storage_limit is not None:
            body["storage_limit"] = storage_limit
        response = self.post("projects", json_body=body, auth=auth)
        expect_status(response, 201)
        return project, int(response.headers["Location"].rsplit("/", 1)[1])

    def add_member(self, project: str, username: str, role_id: int, auth: Auth = ADMIN) -> int:
        response = self.post(
            f"projects/{project}/members",
            json_body={"role_id": role_id, "member_user": {"username": username}},
            auth=auth,
        )
        expect_status(response, 201)
        return int(response.headers["Location"].rsplit("/", 1)[1])

    def create_robot(self, body: dict[str, Any], auth: Auth = ADMIN) -> dict[str, Any]:
        response = self.post("robots", json_body=body, auth=auth)
        expect_status(response, 201)
        created = response.get_json()
        assert response.headers["Location"].endswith(f"/robots/{created['id']}")
        return created

    def project_robot(
        self, project: str, access: list[dict[str, str]], *, name: str | None = None, auth: Auth = ADMIN, **extra: Any
    ) -> dict[str, Any]:
        body = {
            "name": name or unique("bot"),
            "level": "project",
            "duration": -1,
            "permissions": [{"kind": "project", "namespace": project, "access": access}],
            **extra,
        }
        return self.create_robot(body, auth=auth)

    def usage(self, project_id: int) -> tuple[int, int]:
        """(used, hard) storage of a project, from /quotas/{id}."""
        response = expect_status(self.get(f"quotas/{project_id}"), 200)
        body = response.get_json()
        return int(body["used"]["storage"]), int(body["hard"]["storage"])

    def set_config(self, **values: Any) -> None:
        expect_status(self.put("configurations", json_body=values), 200)

    # Token service.

    def token_response(
        self, scopes: list[str], auth: Auth = ADMIN, service: str | None = SERVICE, **extra: str
    ) -> TestResponse:
        query: list[tuple[str, str]] = []
        if service is not None:
            query.append(("service", service))
        query.extend(("scope", s) for s in scopes)
        query.extend(extra.items())
        return self.get("/service/token", auth=auth, query=query)

    def token(self, scopes: list[str], auth: Auth = ADMIN, service: str | None = SERVICE) -> str:
        response = expect_status(self.token_response(scopes, auth, service), 200)
        return str(response.get_json()["token"])

    def oauth(self, form: dict[str, str]) -> TestResponse:
        return self.post(
            "/service/token", auth=None, data=urlencode(form), content_type="application/x-www-form-urlencoded"
        )

    # OCI pushes and pulls.

    def start_upload(self, repo: str, auth: Auth = ADMIN) -> TestResponse:
        return self.post(f"/v2/{repo}/blobs/uploads/", auth=auth)

    def upload_blob(self, repo: str, data: bytes, auth: Auth = ADMIN) -> TestResponse:
        """POST then a monolithic PUT; returns the failing response or the final PUT's."""
        started = self.start_upload(repo, auth)
        if started.status_code != 202:
            return started
        return self.put(
            started.headers["Location"],
            auth=auth,
            query={"digest": digest_of(data)},
            data=data,
            content_type="application/octet-stream",
        )

    def push_blob(self, repo: str, data: bytes, auth: Auth = ADMIN) -> str:
        expect_status(self.upload_blob(repo, data, auth), 201)
        return digest_of(data)

    def image(self, seed: bytes | None = None, layer: bytes | None = None) -> tuple[bytes, bytes, bytes]:
        """(config, layer, manifest) bytes of a one-layer OCI image."""
        seed = seed or os.urandom(8)
        config = canonical({"architecture": "amd64", "os": "linux", "seed": seed.hex()})
        layer = layer if layer is not None else seed + b"\x01" * 100
        manifest = canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(layer), "size": len(layer)}],
            }
        )
        return config, layer, manifest

    def put_manifest(self, repo: str, reference: str, manifest: bytes, auth: Auth = ADMIN) -> TestResponse:
        return self.put(f"/v2/{repo}/manifests/{reference}", auth=auth, data=manifest, content_type=OCI_MANIFEST)

    def push_image(
        self, repo: str, tag: str = "v1", auth: Auth = ADMIN, *, layer: bytes | None = None
    ) -> tuple[str, dict[str, int]]:
        """Push config, layer and manifest; returns (manifest digest, {digest: size} of all three)."""
        config, layer_bytes, manifest = self.image(layer=layer)
        self.push_blob(repo, config, auth)
        self.push_blob(repo, layer_bytes, auth)
        response = expect_status(self.put_manifest(repo, tag, manifest, auth), 201)
        digest = response.headers["Docker-Content-Digest"]
        assert digest == digest_of(manifest)
        sizes = {digest_of(config): len(config), digest_of(layer_bytes): len(layer_bytes), digest: len(manifest)}
        return digest, sizes

    def pull(self, repo: str, reference: str, auth: Auth = ADMIN) -> TestResponse:
        return self.get(f"/v2/{repo}/manifests/{reference}", auth=auth, headers={"Accept": OCI_MANIFEST})
