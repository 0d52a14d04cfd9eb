"""The push command's small parsers: image references, sizes, `USER:PASSWORD`, the Range header."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import requests

from chalicelib.cli.__main__ import _size
from chalicelib.cli.credentials import CredentialError, Credentials, parse_creds
from chalicelib.cli.references import (
    ArchiveReference,
    LayoutReference,
    ReferenceError,
    RemoteReference,
    parse,
)
from chalicelib.cli.registry import _range_end, with_query


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000/team/app:v1", RemoteReference("127.0.0.1:5000", "team/app", "v1")),
        ("docker://registry.example.com/team/app", RemoteReference("registry.example.com", "team/app", "latest")),
        ("localhost/a/b@sha256:" + "a" * 64, RemoteReference("localhost", "a/b", "sha256:" + "a" * 64)),
        ("oci:./layout:v2", LayoutReference(Path("layout"), "v2")),
        ("oci:/tmp/layout", LayoutReference(Path("/tmp/layout"), None)),
        (
            "docker-archive:app.tar:docker.io/library/app:v1",
            ArchiveReference(Path("app.tar"), "docker.io/library/app:v1"),
        ),
        ("docker-archive:app.tar", ArchiveReference(Path("app.tar"), None)),
    ],
)
def test_references(text: str, expected: object) -> None:
    assert parse(text) == expected


def test_a_digest_reference_knows_it_is_one() -> None:
    digest = parse("localhost/a@sha256:" + "b" * 64)
    assert isinstance(digest, RemoteReference) and digest.is_digest
    assert str(digest) == "localhost/a@sha256:" + "b" * 64
    tag = parse("localhost/a:v1")
    assert isinstance(tag, RemoteReference) and not tag.is_digest and str(tag) == "localhost/a:v1"


@pytest.mark.parametrize(
    "text",
    ["team/app:v1", "registry.example.com", "example.com/Team/app", "localhost/a@sha256:", "oci:", "h.io/a:-x"],
)
def test_bad_references(text: str) -> None:
    with pytest.raises(ReferenceError):
        parse(text)


@pytest.mark.parametrize(
    ("text", "size"), [("4194304", 4194304), ("4MiB", 4194304), ("512KiB", 524288), ("5MB", 5_000_000)]
)
def test_sizes(text: str, size: int) -> None:
    assert _size(text) == size


@pytest.mark.parametrize("text", ["0", "-1", "4 TiB", "lots", ""])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        _size(text)


def test_creds_flag() -> None:
    assert parse_creds("robot$team+ci:pa:ss") == Credentials("robot$team+ci", "pa:ss")
    with pytest.raises(CredentialError):
        parse_creds("no-colon")
    assert "pa:ss" not in repr(parse_creds("u:pa:ss"))


def _response(range_header: str | None) -> requests.Response:
    response = requests.Response()
    if range_header is not None:
        response.headers["Range"] = range_header
    return response


@pytest.mark.parametrize(
    ("header", "held"), [("0-4194303", 4194304), ("bytes=0-9", 10), ("0-0", 0), (None, 0), ("junk", 0)]
)
def test_range_end(header: str | None, held: int) -> None:
    assert _range_end(_response(header)) == held


def test_with_query_keeps_what_the_location_carries() -> None:
    """A relay Location may carry its own query (containerd adds `ns=`): the digest is added to it."""
    url = with_query("https://uploads.example.com/v2/a/blobs/uploads/x?_state=abc", digest="sha256:1")
    assert url == "https://uploads.example.com/v2/a/blobs/uploads/x?_state=abc&digest=sha256%3A1"


def test_a_compressed_docker_save_is_refused_with_the_fix(tmp_path: Path) -> None:
    import gzip

    from chalicelib.cli.sources import SourceError, open_source

    archive = tmp_path / "app.tar.gz"
    archive.write_bytes(gzip.compress(b"not read"))
    with pytest.raises(SourceError, match="gunzip it first"):
        open_source(parse(f"docker-archive:{archive}"))
