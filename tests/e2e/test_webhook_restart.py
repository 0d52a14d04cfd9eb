"""A webhook delivery survives a restart of `make serve`: the first attempt fails, the server is
stopped (SIGTERM) during the backoff, and after the restart the delivery goes on from attempt 2
(durable delivery on the local Step Functions, chalicelib/local/__main__.py `_resume_webhooks`)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.functional.jobs.test_webhooks import Receiver

from .support import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

API = "/api/v2.0"


def _push_tiny_image(server: RegistryServer, repo: str, tag: str) -> str:
    """A config blob and a manifest without layers, through the raw /v2 API; returns its digest."""
    config = b"{}"
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    scope = f"repository:{repo}:pull,push"
    blob = server.http("POST", f"/v2/{repo}/blobs/uploads/", scope, params={"digest": config_digest}, data=config,
                       headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert blob.status_code == 201, blob.text
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": 2},
        "layers": [],
    }).encode()  # fmt: skip
    put = server.http("PUT", f"/v2/{repo}/manifests/{tag}", scope, data=manifest,
                      headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})  # fmt: skip
    assert put.status_code == 201, put.text
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def _wait(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_webhook_delivery_survives_a_restart(tmp_path: Path) -> None:
    receiver = Receiver()
    receiver.default_status = 500
    data = tmp_path / "data"
    # A 5 s first backoff: time to stop the server between attempt 1 and attempt 2.
    # The receiver is on 127.0.0.1, which the egress policy refuses unless allowed.
    env = {"REGISTRY_WEBHOOK_BACKOFF_SECONDS": "5", "REGISTRY_WEBHOOK_POLICY_CACHE_SECONDS": "0",
           "REGISTRY_EGRESS_ALLOW_NETWORKS": "127.0.0.1/32"}  # fmt: skip
    first = RegistryServer(data, tmp_path / "server-1.log", **env).start()
    try:
        policy = {"name": "hook", "enabled": True, "event_types": ["PUSH_ARTIFACT"],
                  "targets": [{"type": "http", "address": receiver.url}]}  # fmt: skip
        created = first.http("POST", f"{API}/projects/library/webhook/policies", json=policy)
        assert created.status_code == 201, created.text
        policy_id = int(created.headers["Location"].rsplit("/", 1)[-1])
        digest = _push_tiny_image(first, "library/hooked", "v1")
        _wait("the first attempt", lambda: receiver.requests)
        first.stop()  # SIGTERM during the backoff: moto's execution dies with the process
        assert len(receiver.requests) == 1
        receiver.default_status = 200

        second = RegistryServer(data, tmp_path / "server-2.log", password=first.password, **env).start()
        try:
            # Resumed once the job engine is up, which may be just after the server answers.
            _wait(
                "the resume",
                lambda: "resumed 1 interrupted webhook deliveries" in second.log_text(second.started_at_offset),
            )
            executions = f"{API}/projects/library/webhook/policies/{policy_id}/executions"

            def ended() -> dict[str, Any] | None:
                (execution,) = second.http("GET", executions).json()
                return execution if execution["status"] != "Running" else None

            execution = _wait("the resumed delivery", ended)
            assert execution["status"] == "Success", execution
            (task,) = second.http("GET", f"{executions}/{execution['id']}/tasks").json()
            assert (task["status"], task["run_count"]) == ("Success", 2)
            assert len(receiver.requests) == 2
            document = json.loads(receiver.requests[1]["body"])
            assert document["event_data"]["resources"][0]["digest"] == digest
        finally:
            second.stop()
    finally:
        receiver.close()
