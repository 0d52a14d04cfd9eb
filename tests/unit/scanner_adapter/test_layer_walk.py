"""The layer walk: compression by content, whiteouts, and the caps that stop tar bombs."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from chalicelib.scanner_adapter.layers import READ, FileSystem, LayerRejected, Limits, apply_layer, normalise
from tests.scanner_fixtures import gzipped, sha256, tar_layer, zstd

WANTED = {"etc/os-release", "var/lib/dpkg/status", "a/b/keep.txt", "a/c/keep.txt", "a/b/deep/keep.txt"}


def wanted(path: str) -> str | None:
    return READ if path in WANTED else None


def walk(*layers: bytes, limits: Limits | None = None) -> FileSystem:
    filesystem = FileSystem()
    for blob in layers:
        apply_layer(filesystem, io.BytesIO(blob), sha256(blob), wanted, limits or Limits())
    return filesystem


@pytest.mark.parametrize("compress", [lambda b: b, gzipped, zstd], ids=["tar", "gzip", "zstd"])
def test_each_compression_is_read_and_the_diff_id_is_the_tar_digest(compress: object) -> None:
    tar = tar_layer({"etc/os-release": b"ID=debian\n", "usr/bin/other": b"x"})
    blob = compress(tar)  # type: ignore[operator]
    filesystem = FileSystem()
    diff_id = apply_layer(filesystem, io.BytesIO(blob), sha256(blob), wanted, Limits())
    assert diff_id == sha256(tar)
    found = filesystem.get("etc/os-release")
    assert found is not None and found.data == b"ID=debian\n" and found.diff_id == diff_id
    assert found.layer_digest == sha256(blob)
    assert filesystem.get("usr/bin/other") is None  # only wanted files are kept


def test_whiteouts_delete_files_and_directories_below() -> None:
    base = tar_layer({"a/b/keep.txt": b"1", "a/b/deep/keep.txt": b"2", "a/c/keep.txt": b"3", "etc/os-release": b"x"})
    top = tar_layer({"./a/.wh.b": b"", "etc/.wh.os-release": b""})
    filesystem = walk(gzipped(base), top)
    assert sorted(filesystem.files) == ["a/c/keep.txt"]


def test_an_opaque_directory_hides_what_is_below_but_not_its_own_layer() -> None:
    base = tar_layer({"a/b/keep.txt": b"old", "a/b/deep/keep.txt": b"old", "a/c/keep.txt": b"3"})
    top = tar_layer({"a/b/.wh..wh..opq": b"", "a/b/keep.txt": b"new"})
    filesystem = walk(base, top)
    assert {p: f.data for p, f in filesystem.files.items()} == {"a/b/keep.txt": b"new", "a/c/keep.txt": b"3"}


def test_a_later_layer_replaces_a_file_and_a_whiteout_can_be_undone() -> None:
    first = tar_layer({"etc/os-release": b"one"})
    second = tar_layer({"etc/.wh.os-release": b""})
    third = tar_layer({"etc/os-release": b"three"})
    assert walk(first, second, third).files["etc/os-release"].data == b"three"
    directory = tar_layer({"etc/os-release/": None})  # replaced by a directory
    assert "etc/os-release" not in walk(first, directory).files


def test_paths_are_normalised_and_escapes_ignored() -> None:
    assert normalise("./etc//os-release") == "etc/os-release"
    assert normalise("/var/lib/dpkg/status") == "var/lib/dpkg/status"
    assert normalise("../../etc/os-release") is None
    assert normalise("a/../../etc/os-release") is None
    filesystem = walk(tar_layer({"../etc/os-release": b"escape", "/var/lib/dpkg/status": b"ok"}))
    assert sorted(filesystem.files) == ["var/lib/dpkg/status"]


def test_too_many_entries_is_a_rejected_layer() -> None:
    bomb = tar_layer({f"f{i}": b"" for i in range(50)})
    with pytest.raises(LayerRejected, match="more than 40 file entries"):
        walk(bomb, limits=Limits(max_entries=40))


def test_too_many_unpacked_bytes_is_a_rejected_layer() -> None:
    blob = gzipped(tar_layer({"big": b"\0" * 300_000}))
    with pytest.raises(LayerRejected, match="unpack to more than 100000 bytes"):
        walk(blob, limits=Limits(max_tar_bytes=100_000))


def test_a_layer_that_inflates_past_the_ratio_is_a_rejected_layer() -> None:
    # 40 MiB of zeros gzip to ~40 KB: a ratio of ~1000, past the 16 MiB floor.
    stream = io.BytesIO()
    with gzip.GzipFile(fileobj=stream, mode="wb", mtime=0) as out, tarfile.open(fileobj=out, mode="w|") as archive:
        info = tarfile.TarInfo("zeros")
        info.size = 40 * 1024 * 1024
        archive.addfile(info, io.BytesIO(b"\0" * info.size))
    with pytest.raises(LayerRejected, match="more than 100 times its size"):
        walk(stream.getvalue())


def test_a_wanted_file_larger_than_the_cap_is_a_rejected_layer() -> None:
    with pytest.raises(LayerRejected, match="var/lib/dpkg/status is larger than 1024 bytes"):
        walk(tar_layer({"var/lib/dpkg/status": b"x" * 2000}), limits=Limits(max_file_bytes=1024))


def test_package_databases_larger_than_the_cap_together_are_a_rejected_layer() -> None:
    files = {"etc/os-release": b"x" * 600, "var/lib/dpkg/status": b"y" * 600}
    with pytest.raises(LayerRejected, match="package databases exceed 1024 bytes"):
        walk(tar_layer(files), limits=Limits(max_kept_bytes=1024))


@pytest.mark.parametrize(
    "blob",
    [
        b"this is not a tar stream at all" * 40,
        gzipped(b"not a tar") + b"",
        b"\x1f\x8b\x08\x00garbage",
        zstd(b"x" * 10)[:8],
    ],
    ids=["text", "gzip-of-text", "broken-gzip", "truncated-zstd"],
)
def test_a_blob_that_is_not_a_tar_stream_is_a_rejected_layer(blob: bytes) -> None:
    with pytest.raises(LayerRejected, match="not a readable tar stream"):
        walk(blob)


def test_a_truncated_layer_is_rejected() -> None:
    blob = gzipped(tar_layer({"etc/os-release": b"x" * 5000}))
    with pytest.raises(LayerRejected):
        walk(blob[: len(blob) // 2])
