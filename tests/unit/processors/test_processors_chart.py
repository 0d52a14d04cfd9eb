"""processors: CHART (Helm OCI charts), including hostile tarballs."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time

import pytest

from chalicelib.errors import NotFound
from chalicelib.processors import abstract, addition, chart
from tests.unit.processors.support import (
    CHART_CONFIG,
    HELM_CONFIG,
    HELM_LAYER,
    MIB,
    Blobs,
    desc,
    manifest,
    tarball,
)
from tests.unit.processors.support import chart as make_chart


def _pushed(tar: bytes, config: bytes | None = None, *, layer_type: str = HELM_LAYER, layer_size: int | None = None):
    config = config if config is not None else json.dumps(CHART_CONFIG).encode()
    blobs = Blobs()
    blobs.add(config)
    blobs.add(tar)
    parsed, body = manifest(desc(HELM_CONFIG, config), [desc(layer_type, tar, size=layer_size)])
    return parsed, body, blobs


def _chart(files=None, **kwargs):
    config, tar = make_chart(files)
    return _pushed(tar, config, **kwargs)


def test_chart_attributes_are_the_config_and_the_tarball_is_not_read() -> None:
    parsed, body, blobs = _chart()

    result = abstract(parsed, body, blobs)

    assert result.type == "CHART"
    assert result.extra_attrs == CHART_CONFIG
    assert result.additions == ("values.yaml", "readme.md", "dependencies")
    assert result.icon is None
    assert [digest for digest, _ in blobs.reads] == [parsed.config.digest]


def test_values_and_readme_come_from_the_top_level_files() -> None:
    parsed, body, blobs = _chart()

    values = addition("values.yaml", parsed, body, blobs)
    readme = addition("README.MD", parsed, body, blobs)

    assert (values.content_type, values.content) == ("text/plain; charset=utf-8", b"replicaCount: 2\nimage: nginx\n")
    assert (readme.content_type, readme.content) == ("text/markdown; charset=utf-8", b"# Demo\n\nA chart for tests.\n")
    assert (parsed.layers[0].digest, chart.CHART_MAX_BYTES) in blobs.reads


def test_file_names_match_case_insensitively_and_only_at_the_top() -> None:
    files = {
        "demo/charts/sub/README.md": b"nested",
        "demo/Chart.yaml": b"apiVersion: v2\nname: demo\nversion: 1.0.0\n",
        "demo/Readme.MD": b"top",
        "README.md": b"outside the chart directory",
    }
    parsed, body, blobs = _chart(files)
    assert addition("readme.md", parsed, body, blobs).content == b"top"
    # No values.yaml: empty content, as Harbor answers.
    assert addition("values.yaml", parsed, body, blobs).content == b""


def test_dependencies_from_chart_yaml_v2_keep_only_helm_fields() -> None:
    parsed, body, blobs = _chart()

    result = addition("dependencies", parsed, body, blobs)

    assert result.content_type == "application/json; charset=utf-8"
    assert json.loads(result.content) == [
        {
            "name": "redis",
            "version": "17.0.0",
            "repository": "https://charts.example.com",
            "condition": "redis.enabled",
            "tags": ["cache", "db"],
            "alias": "kv",
            "import-values": ["data", {"child": "default.data", "parent": "myimports"}],
        },
        {"name": "postgres", "version": "1.0", "repository": "oci://registry.example.com/charts", "enabled": True},
    ]


def test_dependencies_of_a_v1_chart_come_from_requirements_yaml() -> None:
    files = {
        "old/Chart.yaml": b"apiVersion: v1\nname: old\nversion: 0.1.0\ndependencies: [{name: ignored}]\n",
        "old/requirements.yaml": b"dependencies:\n  - name: mysql\n    version: 1.6.9\n    repository: '@stable'\n",
    }
    parsed, body, blobs = _chart(files)
    assert json.loads(addition("dependencies", parsed, body, blobs).content) == [
        {"name": "mysql", "version": "1.6.9", "repository": "@stable"}
    ]


def test_a_chart_without_dependencies_has_an_empty_list() -> None:
    files = {"c/Chart.yaml": b"apiVersion: v2\nname: c\nversion: 1.0.0\n"}
    parsed, body, blobs = _chart(files)
    assert json.loads(addition("dependencies", parsed, body, blobs).content) == []


def test_charts_pushed_with_the_old_layer_media_type_are_read() -> None:
    parsed, body, blobs = _chart(layer_type="application/tar+gzip")
    assert addition("values.yaml", parsed, body, blobs).content.startswith(b"replicaCount")


def test_a_symlink_named_values_yaml_is_not_followed() -> None:
    files = {"demo/Chart.yaml": b"apiVersion: v2\nname: demo\nversion: 1.0.0\n"}
    config, tar = make_chart(files, symlinks={"demo/values.yaml": "/etc/passwd"})
    parsed, body, blobs = _pushed(tar, config)
    assert addition("values.yaml", parsed, body, blobs).content == b""


def test_a_bad_chart_config_costs_the_attributes_only() -> None:
    _, tar = make_chart()
    parsed, body, blobs = _pushed(tar, b"apiVersion: v2")  # YAML, not JSON
    result = abstract(parsed, body, blobs)
    assert (result.type, result.extra_attrs) == ("CHART", {})
    assert addition("values.yaml", parsed, body, blobs).content.startswith(b"replicaCount")


def _not_found(parsed, body, blobs, name: str = "values.yaml") -> str:
    with pytest.raises(NotFound) as caught:
        addition(name, parsed, body, blobs)
    return caught.value.message


def test_a_chart_without_a_content_layer_has_no_additions_content() -> None:
    config = json.dumps(CHART_CONFIG).encode()
    blobs = Blobs()
    blobs.add(config)
    parsed, body = manifest(desc(HELM_CONFIG, config), [])
    assert "no content layer" in _not_found(parsed, body, blobs)


@pytest.mark.parametrize(
    "tar",
    [
        b"",
        b"not gzip at all",
        gzip.compress(b"gzip but not a tar" * 100),
        make_chart()[1][:200],  # truncated
        make_chart()[1][:-20],  # truncated near the end
        tarball({"demo/Chart.yaml": b"apiVersion: v2\n"}, compress=False),  # a tar that is not gzipped
    ],
    ids=["empty", "not-gzip", "not-tar", "truncated", "truncated-tail", "plain-tar"],
)
def test_unreadable_tarballs_are_not_found_never_a_crash(tar: bytes) -> None:
    parsed, body, blobs = _pushed(tar)
    _not_found(parsed, body, blobs)
    assert abstract(parsed, body, blobs).type == "CHART"


def test_a_tarball_without_chart_yaml_is_refused() -> None:
    parsed, body, blobs = _chart({"demo/values.yaml": b"a: 1\n"})
    assert "Chart.yaml" in _not_found(parsed, body, blobs)


def test_a_missing_tarball_blob_is_not_found() -> None:
    config, tar = make_chart()
    parsed, body, blobs = _pushed(tar, config)
    del blobs.data[parsed.layers[0].digest]
    _not_found(parsed, body, blobs)


def test_a_tarball_declared_over_the_limit_is_not_read() -> None:
    parsed, body, blobs = _chart(layer_size=chart.CHART_MAX_BYTES + 1)
    assert "limit" in _not_found(parsed, body, blobs)
    assert all(digest != parsed.layers[0].digest for digest, _ in blobs.reads)


def test_a_gzip_bomb_stops_at_the_unpacked_limit() -> None:
    # ~200 MiB of zeros as one member before Chart.yaml: a few hundred KB compressed.
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo("demo/zeros.bin")
        info.size = 200 * MIB
        archive.addfile(info, _Zeros(info.size))
        chart_yaml = b"apiVersion: v2\nname: demo\nversion: 1.0.0\n"
        info = tarfile.TarInfo("demo/Chart.yaml")
        info.size = len(chart_yaml)
        archive.addfile(info, io.BytesIO(chart_yaml))
    bomb = gzip.compress(raw.getvalue(), compresslevel=9)
    assert len(bomb) < chart.CHART_MAX_BYTES
    parsed, body, blobs = _pushed(bomb)

    started = time.monotonic()
    message = _not_found(parsed, body, blobs)

    assert "unpacks to more than" in message
    assert time.monotonic() - started < 10


def test_too_many_members_are_refused() -> None:
    files: dict[str, bytes | None] = {f"demo/templates/f{i}.yaml": b"" for i in range(chart.MEMBERS_MAX + 1)}
    files["demo/Chart.yaml"] = b"apiVersion: v2\n"
    parsed, body, blobs = _chart(files)
    assert "entries" in _not_found(parsed, body, blobs)


def test_a_wanted_file_over_the_file_limit_is_refused() -> None:
    files = {
        "demo/Chart.yaml": b"apiVersion: v2\nname: demo\nversion: 1.0.0\n",
        "demo/values.yaml": b"#" * (chart.FILE_MAX_BYTES + 1),
    }
    parsed, body, blobs = _chart(files)
    assert "limit" in _not_found(parsed, body, blobs)


@pytest.mark.parametrize(
    "chart_yaml",
    [
        b"apiVersion: v2\ndependencies: [unclosed\n",
        b"- a list\n- not a mapping\n",
        b"!!python/object/apply:os.system ['echo pwned']\n",
        b"\x00\x01binary",
    ],
    ids=["invalid", "list", "python-tag", "binary"],
)
def test_bad_chart_yaml_makes_dependencies_not_found(chart_yaml: bytes) -> None:
    parsed, body, blobs = _chart({"demo/Chart.yaml": chart_yaml})
    _not_found(parsed, body, blobs, "dependencies")


def test_a_yaml_alias_bomb_does_not_blow_up_the_dependencies() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    lines += ["apiVersion: v2", "dependencies:", "  - name: bomb", "    tags: *a11", "    import-values: *a11"]
    parsed, body, blobs = _chart({"demo/Chart.yaml": "\n".join(lines).encode()})

    started = time.monotonic()
    result = json.loads(addition("dependencies", parsed, body, blobs).content)

    assert result == [{"name": "bomb", "repository": ""}]
    assert time.monotonic() - started < 5


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        self._left -= size
        return b"\x00" * size


def test_corrupted_tarballs_never_raise_anything_but_not_found() -> None:
    """A fixed-seed mutation sweep: every damaged chart is read or refused, nothing else."""
    import random

    _, tar = make_chart()
    raw = gzip.decompress(tar)
    rng = random.Random(20261127)
    outcomes = {"read": 0, "refused": 0}
    for i in range(200):
        damaged = bytearray(raw if i % 2 else tar)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        blob = gzip.compress(bytes(damaged), mtime=0) if i % 2 else bytes(damaged)
        parsed, body, blobs = _pushed(blob)
        try:
            addition("dependencies", parsed, body, blobs)
            outcomes["read"] += 1
        except NotFound:
            outcomes["refused"] += 1
    assert outcomes["read"] and outcomes["refused"]
