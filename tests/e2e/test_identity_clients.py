"""Users, project members and robot accounts as the real clients see them.

Everything is set up through Harbor's management API (/api/v2.0, Basic auth as admin): a private and a
public project, a developer and a guest of the private project, and project robots. Then skopeo and
podman log in as those identities against the shared `make serve` registry (Docker token auth through
/service/token) and must be allowed exactly what their role grants: pushes and pulls as the developer and
the robot, anonymous pulls from the public project only, no anonymous or guest pushes, no pulls by a
disabled robot.

No client may pick up credentials from the machine: every command runs with REGISTRY_AUTH_FILE pointing
at a file in the test's tmp dir, and anonymous skopeo commands pass --src-no-creds / --dest-no-creds.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from .support import (
    ADMIN,
    Layout,
    RegistryServer,
    assert_same_blobs,
    require_tool,
    run,
)

pytestmark = pytest.mark.e2e

API = "/api/v2.0"
DEVELOPER, GUEST = 2, 3
# What skopeo/podman print when the registry refuses them (401 or 403), in the containers/image wording.
REFUSED = re.compile(r"unauthorized|authentication required|401|insufficient_scope|denied|403", re.IGNORECASE)
# podman login's wording for a 401 on /v2/ with the credentials (or from the token service).
BAD_LOGIN = re.compile(r"invalid username/password|unauthorized|401", re.IGNORECASE)
UNAUTHORIZED = re.compile(r"unauthorized|authentication required", re.IGNORECASE)


@dataclass
class Identity:
    """Credentials a client logs in with."""

    username: str
    password: str

    @property
    def creds(self) -> str:
        return f"{self.username}:{self.password}"


@dataclass
class Robot(Identity):
    robot_id: int


@dataclass
class World:
    """What the module's setup created."""

    private: str  # project names
    public: str
    dev: Identity
    visitor: Identity
    robot: Robot
    auth_file: Path  # an empty auth file: REGISTRY_AUTH_FILE for every client command


def strong_password(prefix: str) -> str:
    """Meets Harbor's rule: 8-128 characters, an upper-case and a lower-case letter and a digit."""
    return f"{prefix}-Pw1-{secrets.token_hex(8)}"


# The management API, as admin.


def api(registry: RegistryServer, method: str, path: str, body: Any = None, *, auth: Any = None) -> requests.Response:
    return requests.request(
        method,
        registry.url + API + path,
        json=body,
        auth=auth if auth is not None else (ADMIN, registry.password),
        timeout=60,
    )


def api_ok(registry: RegistryServer, method: str, path: str, body: Any = None, status: int = 200) -> requests.Response:
    r = api(registry, method, path, body)
    assert r.status_code == status, f"{method} {API}{path} {json.dumps(body)}: {r.status_code} {r.text}"
    return r


def create_project(registry: RegistryServer, name: str, public: bool) -> None:
    api_ok(registry, "POST", "/projects", {"project_name": name, "metadata": {"public": str(public).lower()}}, 201)
    got = api_ok(registry, "GET", f"/projects/{name}").json()
    assert got["name"] == name
    assert got["metadata"].get("public") == str(public).lower(), got


def create_user(registry: RegistryServer, username: str) -> Identity:
    password = strong_password(username.capitalize())
    api_ok(registry, "POST", "/users",
           {"username": username, "password": password, "email": f"{username}@example.com",
            "realname": f"e2e {username}"}, 201)  # fmt: skip
    return Identity(username, password)


def add_member(registry: RegistryServer, project: str, username: str, role_id: int) -> None:
    api_ok(registry, "POST", f"/projects/{project}/members",
           {"role_id": role_id, "member_user": {"username": username}}, 201)  # fmt: skip
    listed = api_ok(registry, "GET", f"/projects/{project}/members").json()
    assert any(m["entity_name"] == username and m["role_id"] == role_id for m in listed), listed


def create_robot(registry: RegistryServer, project: str, name: str) -> Robot:
    body = {
        "name": name,
        "description": "e2e identity clients",
        "level": "project",
        "duration": -1,
        "permissions": [
            {
                "kind": "project",
                "namespace": project,
                "access": [
                    {"resource": "repository", "action": "pull"},
                    {"resource": "repository", "action": "push"},
                ],
            }
        ],
    }
    made = api_ok(registry, "POST", "/robots", body, 201).json()
    assert made["name"] == f"robot${project}+{name}", made
    assert made["secret"], made
    return Robot(made["name"], made["secret"], int(made["id"]))


def tags_as_admin(registry: RegistryServer, repo: str) -> list[str]:
    """The repository's tags; a repository that does not exist has none."""
    r = registry.http("GET", f"/v2/{repo}/tags/list")
    if r.status_code == 404:
        return []
    assert r.status_code == 200, f"GET /v2/{repo}/tags/list: {r.status_code} {r.text}"
    return list(r.json().get("tags") or [])


# skopeo.


def skopeo_env(world: World) -> dict[str, str]:
    env = dict(os.environ)
    env["REGISTRY_AUTH_FILE"] = str(world.auth_file)
    return env


def skopeo_push(registry: RegistryServer, world: World, src: Layout, repo: str, tag: str,
                creds: Identity | None) -> Any:  # fmt: skip
    auth = ["--dest-creds", creds.creds] if creds else ["--dest-no-creds"]
    return run(["skopeo", "copy", "--preserve-digests", "--retry-times", "0", "--dest-tls-verify=false", *auth,
                f"oci:{src.path}:latest", "docker://" + registry.ref(repo, tag)],
               env=skopeo_env(world), timeout=120)  # fmt: skip


def skopeo_pull(registry: RegistryServer, world: World, repo: str, tag: str, out: Path,
                creds: Identity | None) -> Any:  # fmt: skip
    auth = ["--src-creds", creds.creds] if creds else ["--src-no-creds"]
    return run(["skopeo", "copy", "--preserve-digests", "--retry-times", "0", "--src-tls-verify=false", *auth,
                "docker://" + registry.ref(repo, tag), f"oci:{out}:pulled"],
               env=skopeo_env(world), timeout=120)  # fmt: skip


def assert_ok(p: Any, what: str) -> None:
    assert p.returncode == 0, f"{what} failed (rc={p.returncode}): {' '.join(p.args)}\n{p.stdout[-3000:]}"


def assert_refused(p: Any, what: str, pattern: re.Pattern[str] = REFUSED) -> None:
    assert p.returncode != 0, f"{what} succeeded but must be refused: {' '.join(p.args)}\n{p.stdout[-3000:]}"
    assert pattern.search(p.stdout), f"{what} failed, but not with a refusal ({pattern.pattern}):\n{p.stdout[-3000:]}"


def assert_byte_exact(src: Layout, out: Path, digest: str) -> None:
    pulled = Layout(out)
    assert pulled.ref("pulled")["digest"] == digest
    assert_same_blobs(src, pulled, src.reachable(digest))


# Fixtures.


@pytest.fixture(scope="module", autouse=True)
def _skopeo() -> None:
    require_tool("skopeo")


@pytest.fixture(scope="module")
def tiny(images: dict[str, Any]) -> Layout:
    return Layout(images["dir"] / images["tiny"]["layout"])


@pytest.fixture(scope="module")
def tiny_digest(images: dict[str, Any]) -> str:
    return str(images["tiny"]["digest"])


@pytest.fixture(scope="module")
def world(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> World:
    """The projects, users, memberships and robot; unique names so the shared server may hold others."""
    suffix = secrets.token_hex(3)
    private, public = f"idc-private-{suffix}", f"idc-public-{suffix}"
    create_project(registry, private, public=False)
    create_project(registry, public, public=True)
    dev = create_user(registry, f"dev-{suffix}")
    visitor = create_user(registry, f"visitor-{suffix}")
    add_member(registry, private, dev.username, DEVELOPER)
    add_member(registry, private, visitor.username, GUEST)
    robot = create_robot(registry, private, f"ci{suffix}")
    d = tmp_path_factory.mktemp("identity-auth")
    auth_file = d / "auth.json"
    auth_file.write_text('{"auths": {}}\n')
    return World(private, public, dev, visitor, robot, auth_file)


@pytest.fixture(scope="module")
def private_image(registry: RegistryServer, world: World, tiny: Layout) -> str:
    """A tag in the private project, pushed by the admin: the repository the refusal tests aim at."""
    repo = f"{world.private}/admin-tiny"
    assert_ok(skopeo_push(registry, world, tiny, repo, "v1", Identity(ADMIN, registry.password)), "admin push")
    return repo


@pytest.fixture(scope="module")
def public_image(registry: RegistryServer, world: World, tiny: Layout) -> str:
    repo = f"{world.public}/tiny"
    assert_ok(skopeo_push(registry, world, tiny, repo, "v1", Identity(ADMIN, registry.password)), "admin push")
    return repo


# 1 + 2: skopeo with a developer's and a robot's credentials.


def test_setup_visible_through_the_api(registry: RegistryServer, world: World) -> None:
    robot = api_ok(registry, "GET", f"/robots/{world.robot.robot_id}").json()
    assert robot["name"] == world.robot.username
    assert robot["disable"] is False
    assert robot["permissions"][0]["namespace"] == world.private
    assert {a["action"] for a in robot["permissions"][0]["access"]} == {"pull", "push"}
    # The developer sees the private project with their role; the guest too, as a guest.
    for who, role in ((world.dev, DEVELOPER), (world.visitor, GUEST)):
        r = api(registry, "GET", f"/projects/{world.private}", auth=(who.username, who.password))
        assert r.status_code == 200, r.text
        assert r.json()["current_user_role_id"] == role, r.json()


def test_skopeo_developer_push_pull_private(
    registry: RegistryServer, world: World, tiny: Layout, tiny_digest: str, tmp_path: Path
) -> None:
    repo = f"{world.private}/dev-tiny"
    assert_ok(skopeo_push(registry, world, tiny, repo, "v1", world.dev), "skopeo push as the developer")
    assert "v1" in tags_as_admin(registry, repo)
    assert registry.get_manifest(repo, "v1").content == tiny.blob(tiny_digest)
    assert_ok(skopeo_pull(registry, world, repo, "v1", tmp_path / "out", world.dev), "skopeo pull as the developer")
    assert_byte_exact(tiny, tmp_path / "out", tiny_digest)


def test_skopeo_robot_push_pull_private(
    registry: RegistryServer, world: World, tiny: Layout, tiny_digest: str, tmp_path: Path
) -> None:
    assert "$" in world.robot.username and "+" in world.robot.username
    repo = f"{world.private}/robot-tiny"
    assert_ok(skopeo_push(registry, world, tiny, repo, "v1", world.robot), "skopeo push as the robot")
    assert "v1" in tags_as_admin(registry, repo)
    assert_ok(skopeo_pull(registry, world, repo, "v1", tmp_path / "out", world.robot), "skopeo pull as the robot")
    assert_byte_exact(tiny, tmp_path / "out", tiny_digest)


# 3: podman login (isolated auth file), push, pull.


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory, podman_env: dict[str, str]) -> Iterator[Callable[..., Any]]:
    require_tool("podman")
    root = tmp_path_factory.mktemp("identity-podman")
    runroot = tempfile.mkdtemp(prefix="e2e-idpod-")  # podman refuses a --runroot longer than 50 characters
    env = dict(podman_env)
    (root / "auth.json").write_text('{"auths": {}}\n')  # podman stats REGISTRY_AUTH_FILE before any command
    env["REGISTRY_AUTH_FILE"] = str(root / "auth.json")
    base = ["podman", "--root", str(root / "root"), "--runroot", runroot, "--tmpdir", str(root / "tmp"),
            "--storage-driver", "vfs", "--events-backend", "file", "--cgroup-manager", "cgroupfs"]  # fmt: skip

    def podman(*args: str) -> Any:
        return run([*base, *args], env=env, timeout=180)

    podman.auth_file = root / "auth.json"  # type: ignore[attr-defined]
    yield podman
    shutil.rmtree(runroot, ignore_errors=True)


def test_podman_login_push_pull(
    registry: RegistryServer, world: World, tiny: Layout, tiny_digest: str, podman: Any, tmp_path: Path
) -> None:
    manifest = tiny.json_blob(tiny_digest)
    image_id = manifest["config"]["digest"].split(":", 1)[1]
    assert_ok(podman("pull", "-q", f"oci:{tiny.path}:latest"), "podman pull from the layout")

    repo = f"{world.private}/podman-tiny"
    ref = registry.ref(repo, "v1")
    assert_ok(podman("tag", image_id, ref), "podman tag")

    # Without logging in, the push is refused.
    assert_refused(podman("push", "-q", "--tls-verify=false", ref), "anonymous podman push")

    p = podman("login", "--tls-verify=false", "-u", world.dev.username, "-p", world.dev.password, registry.hostport)
    assert_ok(p, "podman login as the developer")
    assert "Login Succeeded" in p.stdout, p.stdout
    auths = json.loads(podman.auth_file.read_text())["auths"]
    assert registry.hostport in auths, auths  # the login went to the isolated auth file

    digestfile = tmp_path / "digest"
    assert_ok(podman("push", "-q", "--tls-verify=false", "--digestfile", str(digestfile), ref), "podman push as dev")
    pushed = digestfile.read_text().strip()
    assert registry.get_manifest(repo, "v1").headers.get("Docker-Content-Digest") == pushed

    assert_ok(podman("rmi", "-f", image_id), "podman rmi")
    assert_ok(podman("pull", "-q", "--tls-verify=false", ref), "podman pull as the developer")
    info = json.loads(podman("image", "inspect", ref).stdout)[0]
    assert info["Id"] == image_id
    assert info["Digest"] == pushed

    # The robot logs in (its name holds `$` and `+`) and pulls.
    assert_ok(podman("logout", registry.hostport), "podman logout")
    assert_ok(podman("rmi", "-f", image_id), "podman rmi")
    p = podman("login", "--tls-verify=false", "-u", world.robot.username, "-p", world.robot.password,
               registry.hostport)  # fmt: skip
    assert_ok(p, "podman login as the robot")
    assert "Login Succeeded" in p.stdout, p.stdout
    assert_ok(podman("pull", "-q", "--tls-verify=false", ref), "podman pull as the robot")
    info = json.loads(podman("image", "inspect", ref).stdout)[0]
    assert info["Id"] == image_id
    assert info["Digest"] == pushed
    assert_ok(podman("logout", registry.hostport), "podman logout")


def test_podman_login_wrong_password_refused(registry: RegistryServer, world: World, podman: Any) -> None:
    p = podman("login", "--tls-verify=false", "-u", world.dev.username, "-p", world.dev.password + "x",
               registry.hostport)  # fmt: skip
    assert_refused(p, "podman login with a wrong password", BAD_LOGIN)


# 4: anonymous pulls.


def test_anonymous_pull_public(
    registry: RegistryServer, world: World, public_image: str, tiny: Layout, tiny_digest: str, tmp_path: Path
) -> None:
    p = skopeo_pull(registry, world, public_image, "v1", tmp_path / "out", None)
    assert_ok(p, "anonymous skopeo pull from the public project")
    assert_byte_exact(tiny, tmp_path / "out", tiny_digest)


def test_anonymous_pull_private_refused(
    registry: RegistryServer, world: World, private_image: str, tmp_path: Path
) -> None:
    p = skopeo_pull(registry, world, private_image, "v1", tmp_path / "out", None)
    assert_refused(p, "anonymous skopeo pull from the private project", UNAUTHORIZED)
    # The registry's answer: 401 with a Bearer challenge; the anonymous token grants nothing there.
    r = requests.get(f"{registry.url}/v2/{private_image}/manifests/v1", timeout=30)
    assert r.status_code == 401, r.text
    assert r.headers.get("WWW-Authenticate", "").lower().startswith("bearer"), r.headers
    token = anonymous_token(registry, f"repository:{private_image}:pull")
    r = requests.get(f"{registry.url}/v2/{private_image}/manifests/v1", timeout=30,
                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert r.status_code == 401, r.text


# 5: refused pushes leave nothing behind.


def token_for(registry: RegistryServer, scope: str, auth: tuple[str, str] | None) -> str:
    challenge = requests.get(f"{registry.url}/v2/", timeout=30).headers.get("WWW-Authenticate", "")
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm")
    r = requests.get(realm, params={"service": params.get("service", ""), "scope": scope}, auth=auth, timeout=30)
    assert r.status_code == 200, f"token for {scope}: {r.status_code} {r.text}"
    return str(r.json().get("token") or r.json()["access_token"])


def anonymous_token(registry: RegistryServer, scope: str) -> str:
    return token_for(registry, scope, None)


def test_anonymous_push_public_refused(registry: RegistryServer, world: World, public_image: str, tiny: Layout) -> None:
    repo = f"{world.public}/anonymous"
    p = skopeo_push(registry, world, tiny, repo, "v1", None)
    assert_refused(p, "anonymous skopeo push to the public project", UNAUTHORIZED)
    # What the registry answered: 401 without a token and with the anonymous token.
    r = requests.post(f"{registry.url}/v2/{repo}/blobs/uploads/", timeout=30)
    assert r.status_code == 401, r.text
    token = anonymous_token(registry, f"repository:{repo}:pull,push")
    r = requests.post(f"{registry.url}/v2/{repo}/blobs/uploads/", timeout=30,
                      headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert r.status_code == 401, r.text
    assert 'error="insufficient_scope"' in r.headers.get("WWW-Authenticate", ""), r.headers
    assert tags_as_admin(registry, repo) == []
    assert tags_as_admin(registry, public_image) == ["v1"]  # the admin's image is untouched


def test_guest_push_private_refused(
    registry: RegistryServer, world: World, private_image: str, tiny: Layout, tmp_path: Path
) -> None:
    repo = f"{world.private}/visitor"
    p = skopeo_push(registry, world, tiny, repo, "v1", world.visitor)
    assert_refused(p, "skopeo push as the guest")
    # Overwriting an existing tag is refused as well.
    p = skopeo_push(registry, world, tiny, private_image, "visitor", world.visitor)
    assert_refused(p, "skopeo push of a new tag as the guest")
    # What the registry answered: the guest's token grants pull only, and a push with it is refused.
    token = token_for(registry, f"repository:{repo}:pull,push", (world.visitor.username, world.visitor.password))
    r = requests.post(f"{registry.url}/v2/{repo}/blobs/uploads/", timeout=30,
                      headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert r.status_code in (401, 403), r.text
    if r.status_code == 401:
        assert "insufficient_scope" in r.headers.get("WWW-Authenticate", ""), r.headers
    else:
        assert "DENIED" in r.text, r.text
    assert tags_as_admin(registry, repo) == []
    assert tags_as_admin(registry, private_image) == ["v1"]
    # The guest may still pull.
    assert_ok(skopeo_pull(registry, world, private_image, "v1", tmp_path / "out", world.visitor), "guest pull")


# 6: a disabled robot.


def test_disabled_robot_cannot_pull(registry: RegistryServer, world: World, private_image: str, tmp_path: Path) -> None:
    robot = create_robot(registry, world.private, f"off{secrets.token_hex(3)}")
    assert_ok(skopeo_pull(registry, world, private_image, "v1", tmp_path / "before", robot), "robot pull")

    view = api_ok(registry, "GET", f"/robots/{robot.robot_id}").json()
    assert view["disable"] is False
    view["disable"] = True
    api_ok(registry, "PUT", f"/robots/{robot.robot_id}", view)
    assert api_ok(registry, "GET", f"/robots/{robot.robot_id}").json()["disable"] is True

    p = skopeo_pull(registry, world, private_image, "v1", tmp_path / "after", robot)
    assert_refused(p, "skopeo pull as the disabled robot", UNAUTHORIZED)
    # No token either.
    challenge = requests.get(f"{registry.url}/v2/", timeout=30).headers.get("WWW-Authenticate", "")
    realm = dict(re.findall(r'(\w+)="([^"]*)"', challenge))["realm"]
    r = requests.get(realm, params={"scope": f"repository:{private_image}:pull"},
                     auth=(robot.username, robot.password), timeout=30)  # fmt: skip
    assert r.status_code == 401, f"token for a disabled robot: {r.status_code} {r.text}"
    # The other robot is unaffected.
    assert_ok(skopeo_pull(registry, world, private_image, "v1", tmp_path / "other", world.robot), "robot pull")
