"""Metrics (CloudWatch EMF lines on stdout) for pushes, pulls, bytes and errors, as Lambda emits them."""

from __future__ import annotations

import json

REPO = "library/observed"


def _emf_lines(captured: str) -> list[dict]:
    lines = [json.loads(line) for line in captured.splitlines() if line.startswith('{"_aws"')]
    return [line for line in lines if line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Registry"]


def test_requests_emit_one_emf_line_each_with_their_metrics(registry, monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    capsys.readouterr()
    registry.push_image(REPO, "v1")
    assert registry.get(f"/v2/{REPO}/manifests/v1").status_code == 200
    assert registry.get(f"/v2/{REPO}/manifests/missing").status_code == 404
    lines = _emf_lines(capsys.readouterr().out)
    names = [m["Name"] for line in lines for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert "BytesUploaded" in names
    assert "ManifestPushes" in names
    assert "ManifestPulls" in names
    assert "ClientErrors" in names
    pushes = [line for line in lines if "ManifestPushes" in line]
    assert len(pushes) == 1 and pushes[0]["ManifestPushes"] == [1.0]


def test_nothing_is_printed_when_metrics_are_disabled(registry, monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    capsys.readouterr()
    for tag in range(120):  # past Powertools' 100-value batch
        registry.get(f"/v2/{REPO}/manifests/t{tag}")
    assert _emf_lines(capsys.readouterr().out) == []
