"""The local object store (`stores/files.py`): the S3 guarantees the upload path relies on, on files."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from chalicelib.errors import BlobUploadUnknown
from chalicelib.stores import files
from chalicelib.stores.files import DOWNLOAD_PREFIX, DownloadRefused, FileObjectStore

KEY = "blobs/sha256/" + "ab" * 32


@pytest.fixture
def store(tmp_path: Path) -> FileObjectStore:
    return FileObjectStore(tmp_path / "objects")


def leftovers(store: FileObjectStore) -> list[str]:
    return sorted(p.name for p in (store.root / ".tmp").iterdir())


def test_a_failing_disk_is_an_error_not_a_fallback(store: FileObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(path: Path, data: bytes, *, sync: bool) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "_write_direct", full)
    with pytest.raises(OSError, match="No space"):
        store.put(KEY, os.urandom(files._DIRECT_MIN))
    assert not store.exists(KEY)
    assert store._direct_ok


def test_put_get_exists_delete(store: FileObjectStore) -> None:
    store.put(KEY, b"hello")
    assert store.exists(KEY)
    assert store.get(KEY) == b"hello"
    assert b"".join(store.iter_bytes(KEY)) == b"hello"
    store.delete(KEY, "uploads/x/never-written")
    assert not store.exists(KEY)
    assert leftovers(store) == []


def test_get_head_reads_at_most_the_asked_bytes(store: FileObjectStore) -> None:
    store.put(KEY, b"0123456789")
    assert store.get_head(KEY, 4) == b"0123"
    assert store.get_head(KEY, 100) == b"0123456789"
    with pytest.raises(FileNotFoundError):
        store.get_head("blobs/sha256/" + "cd" * 32, 4)


@pytest.mark.parametrize("size", [files._DIRECT_MIN, files._DIRECT_BLOCK + 4097, 2 * files._DIRECT_BLOCK])
def test_large_bodies_keep_their_exact_bytes(store: FileObjectStore, size: int) -> None:
    """Large bodies go through padded 4 KiB-aligned blocks; the file must still be exactly the data."""
    data = os.urandom(size)
    store.put(KEY, data, sha256_hex=hashlib.sha256(data).hexdigest())
    assert store.path(KEY).stat().st_size == size
    assert store.get(KEY) == data


def test_filesystem_without_o_direct_falls_back(store: FileObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: Path, data: bytes, *, sync: bool) -> None:
        path.touch()  # as if the open had worked and the write then failed
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(files, "_write_direct", refuse)
    data = os.urandom(files._DIRECT_MIN + 1)
    store.put(KEY, data)
    assert store.get(KEY) == data
    assert leftovers(store) == []
    store.put("blobs/sha256/" + "cd" * 32, data)  # no second attempt
    assert store.get("blobs/sha256/" + "cd" * 32) == data


def test_a_replaced_object_is_never_seen_half_written(store: FileObjectStore) -> None:
    """Writes go to a temporary file renamed into place: a reader holding the old file keeps it whole."""
    store.put(KEY, b"a" * 100)
    with store.path(KEY).open("rb") as old:
        store.put(KEY, b"b" * 50)
        assert old.read() == b"a" * 100
    assert store.get(KEY) == b"b" * 50


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "../outside", "blobs/../../x", "blobs/./x", ".url-key", ".tmp/x", "a//b", "a/b/", "a\\b"]
)
def test_keys_cannot_leave_the_directory(store: FileObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        store.put(key, b"x")
    with pytest.raises(ValueError, match="invalid object key"):
        store.presigned_get(key, 60)


def test_multipart_assembles_only_the_listed_parts_in_order(store: FileObjectStore) -> None:
    target = "uploads/u1/data"
    upload = store.start_multipart(target)
    second = store.upload_part(target, upload, 2, b"world")
    first = store.upload_part(target, upload, 1, b"hello ")
    store.upload_part(target, upload, 3, b"stale part of a writer that lost its lease")
    store.complete_multipart(target, upload, [(1, first), (2, second)])
    assert store.get(target) == b"hello world"
    assert list((store.root / ".multipart").iterdir()) == []


def test_multipart_with_a_wrong_tag_or_unknown_upload_is_unknown(store: FileObjectStore) -> None:
    target = "uploads/u1/data"
    upload = store.start_multipart(target)
    store.upload_part(target, upload, 1, b"x")
    with pytest.raises(BlobUploadUnknown):
        store.complete_multipart(target, upload, [(1, "0" * 16)])
    assert not store.exists(target)
    assert leftovers(store) == []
    for bad in ("0" * 32, "../../etc", upload.upper()):
        with pytest.raises(BlobUploadUnknown):
            store.upload_part(target, bad, 1, b"x")
    store.abort_multipart(target, upload)
    with pytest.raises(BlobUploadUnknown):
        store.upload_part(target, upload, 2, b"x")
    store.abort_multipart(target, upload)  # twice is fine, as on S3


def test_copy_is_a_link_that_survives_the_source(store: FileObjectStore) -> None:
    store.put("uploads/u1/data", b"assembled")
    store.copy("uploads/u1/data", KEY, 9)
    store.delete("uploads/u1/data")
    assert store.get(KEY) == b"assembled"
    with pytest.raises(FileNotFoundError):
        store.copy("uploads/u2/data", "blobs/sha256/" + "cd" * 32, 1)


def _url_parts(url: str) -> tuple[str, str, str]:
    path, _, query = url.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    return path.removeprefix(DOWNLOAD_PREFIX), params["expires"], params["signature"]


def test_download_url_is_relative_signed_and_expires(store: FileObjectStore) -> None:
    store.put(KEY, b"payload")
    url = store.presigned_get(KEY, 60)
    assert url.startswith(DOWNLOAD_PREFIX)
    key, expires, signature = _url_parts(url)
    with store.open_signed(key, expires, signature) as body:
        assert body.read() == b"payload"
    with pytest.raises(DownloadRefused, match="bad signature"):
        store.open_signed(key, str(int(expires) + 1), signature)
    with pytest.raises(DownloadRefused, match="bad signature"):
        store.open_signed("blobs/sha256/" + "cd" * 32, expires, signature)
    with pytest.raises(DownloadRefused, match="malformed"):
        store.open_signed("../" + key, expires, signature)
    with pytest.raises(DownloadRefused, match="malformed"):
        store.open_signed(key, "soon", signature)
    key, expires, signature = _url_parts(store.presigned_get(KEY, -1))
    with pytest.raises(DownloadRefused, match="expired"):
        store.open_signed(key, expires, signature)


def test_signing_key_is_kept_and_private(tmp_path: Path) -> None:
    first = FileObjectStore(tmp_path / "objects")
    first.put(KEY, b"x")
    key, expires, signature = _url_parts(first.presigned_get(KEY, 60))
    second = FileObjectStore(tmp_path / "objects")  # the WSGI adapter's instance, or after a restart
    with second.open_signed(key, expires, signature) as body:
        assert body.read() == b"x"
    assert (tmp_path / "objects" / ".url-key").stat().st_mode & 0o777 == 0o600
    other = FileObjectStore(tmp_path / "elsewhere")
    with pytest.raises(DownloadRefused):
        other.open_signed(key, str(int(time.time()) + 60), signature)


def test_clear_scratch_removes_only_leftover_temporary_files(store: FileObjectStore) -> None:
    store.put(KEY, b"kept")
    upload = store.start_multipart("uploads/u1/data")
    store.upload_part("uploads/u1/data", upload, 1, b"part")
    (store.root / ".tmp" / "crashed-write").write_bytes(b"half")
    assert store.clear_scratch() == 1
    assert leftovers(store) == []
    assert store.get(KEY) == b"kept"
    assert (store.root / ".multipart" / upload / "data").read_bytes() == b"part"  # sessions survive a restart


def test_parts_in_order_become_the_object_without_a_copy(store: FileObjectStore) -> None:
    target = "uploads/u1/data"
    upload = store.start_multipart(target)
    big = os.urandom(2 * 1024 * 1024)  # written past the page cache (O_DIRECT) where the filesystem can
    tags = [(1, store.upload_part(target, upload, 1, big)), (3, store.upload_part(target, upload, 3, b"tail"))]
    inode = (store.root / ".multipart" / upload / "data").stat().st_ino
    store.complete_multipart(target, upload, tags)
    assert store.get(target) == big + b"tail"
    assert store.path(target).stat().st_ino == inode  # renamed, not copied
    assert not (store.root / ".multipart" / upload).exists()


def test_a_short_part_may_come_before_others(store: FileObjectStore) -> None:
    """No minimum part size (`min_part_bytes` 0): a streamed body's short last part can be followed by
    another request's parts, whose bytes then start at an unaligned offset (no O_DIRECT there)."""
    assert store.min_part_bytes == 0
    target = "uploads/u2/data"
    upload = store.start_multipart(target)
    pieces = [os.urandom(3 * 1024 * 1024 + 5), b"x", os.urandom(2 * 1024 * 1024), os.urandom(7)]
    tags = [(number, store.upload_part(target, upload, number, piece)) for number, piece in enumerate(pieces, 1)]
    store.complete_multipart(target, upload, tags)
    assert store.get(target) == b"".join(pieces)


def test_a_torn_index_line_is_ignored(store: FileObjectStore) -> None:
    target = "uploads/u1/data"
    upload = store.start_multipart(target)
    first = store.upload_part(target, upload, 1, b"whole ")
    with (store.root / ".multipart" / upload / "index").open("a") as index:
        index.write("2 deadbeef 6")  # a crash in the middle of noting a part
    second = store.upload_part(target, upload, 3, b"part")
    store.complete_multipart(target, upload, [(1, first), (3, second)])
    assert store.get(target) == b"whole part"


def test_expire_staging_follows_the_bucket_lifecycle_rules(store: FileObjectStore) -> None:
    store.put("uploads/old/chunk-1", b"a")
    store.put("uploads/live/chunk-1", b"b")
    store.put(KEY, b"blob")
    stale = store.start_multipart("uploads/stale/data")
    store.upload_part("uploads/stale/data", stale, 1, b"p")
    live = store.start_multipart("uploads/live/data")
    store.upload_part("uploads/live/data", live, 1, b"p")
    three_days_ago = time.time() - 3 * 86400
    os.utime(store.path("uploads/old/chunk-1"), (three_days_ago, three_days_ago))
    os.utime(store.root / ".multipart" / stale, (three_days_ago, three_days_ago))

    assert store.expire_staging() == 2
    assert not (store.root / "uploads" / "old").exists()
    assert store.get("uploads/live/chunk-1") == b"b"
    assert store.get(KEY) == b"blob"
    assert sorted(p.name for p in (store.root / ".multipart").iterdir()) == [live]
    assert store.expire_staging() == 0


class _DiskLog:
    """Records, in order, the fsyncs (of files and directories) and renames the store makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str]] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: int) -> None:
            self.events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
            real_fsync(fd)

        def replace(src: str | Path, dst: str | Path) -> None:
            self.events.append(("rename", str(dst)))
            real_replace(src, dst)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)

    def synced_before_and_named_after(self, target: Path) -> bool:
        """The new file's bytes were synced before its rename to `target`, and `target`'s directory after."""
        renamed = self.events.index(("rename", str(target)))
        before, after = self.events[:renamed], self.events[renamed + 1 :]
        file_synced = any(kind == "fsync" and "/.tmp/" in path for kind, path in before)
        return file_synced and ("fsync", str(target.parent)) in after


@pytest.mark.parametrize("size", [10, files._DIRECT_MIN])
def test_a_put_is_on_disk_with_its_name_before_it_returns(
    store: FileObjectStore, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    disk = _DiskLog(monkeypatch)
    store.put(KEY, os.urandom(size))
    assert disk.synced_before_and_named_after(store.path(KEY)), disk.events
    # The directories created for the key are durable in their parents too.
    assert ("fsync", str(store.root / "blobs")) in disk.events, disk.events


def test_staged_parts_and_their_assembly_and_copies_are_synced(
    store: FileObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = store.start_multipart("uploads/u1/data")
    disk = _DiskLog(monkeypatch)
    etag = store.upload_part("uploads/u1/data", upload, 1, b"part one")
    staging = store.root / ".multipart" / upload
    data, index = ("fsync", str(staging / "data")), ("fsync", str(staging / "index"))
    # The part's bytes, then the index line that names them, then the entries of both files.
    assert data in disk.events and index in disk.events, disk.events
    assert disk.events.index(data) < disk.events.index(index) < disk.events.index(("fsync", str(staging)))
    store.complete_multipart("uploads/u1/data", upload, [(1, etag)])
    target = store.path("uploads/u1/data")
    assert ("fsync", str(target.parent)) in disk.events[disk.events.index(("rename", str(target))) :]
    store.copy("uploads/u1/data", KEY, 8)
    assert ("fsync", str(store.path(KEY).parent)) in disk.events[disk.events.index(("rename", str(store.path(KEY)))) :]


def test_an_assembly_that_copies_parts_is_synced_before_its_rename(
    store: FileObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = store.start_multipart("uploads/u2/data")
    store.upload_part("uploads/u2/data", upload, 1, b"a writer that lost its lease")
    etag = store.upload_part("uploads/u2/data", upload, 1, b"the winner")
    disk = _DiskLog(monkeypatch)
    store.complete_multipart("uploads/u2/data", upload, [(1, etag)])
    assert disk.synced_before_and_named_after(store.path("uploads/u2/data")), disk.events
    assert store.get("uploads/u2/data") == b"the winner"


def test_without_sync_nothing_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileObjectStore(tmp_path / "objects", sync=False)
    disk = _DiskLog(monkeypatch)
    store.put(KEY, b"x")
    store.put("blobs/sha256/" + "cd" * 32, os.urandom(files._DIRECT_MIN))
    assert [e for e in disk.events if e[0] == "fsync"] == []
