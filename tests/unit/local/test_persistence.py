"""The embedded runner's journal and snapshots (`local/persistence.py`, `local/journal.py`).

Each "process" here is a fresh moto (`mock_aws`) restored from the data dir, as a restart of
`make serve` is; a crash is a process that stops without `close` (nothing saved at the end).
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.config import Settings
from chalicelib.local import journal, moto_patches
from chalicelib.local.emulator import Emulator, table_properties
from chalicelib.local.journal import JournalDamaged, frame, read_frames
from chalicelib.local.persistence import Persistence, durable_on_exit, uninstall
from chalicelib.stores.files import FileObjectStore

REGION = "us-east-1"
ADD_ONE: dict[str, Any] = {"UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}
TABLE = "registry"


class Process:
    """One run of the runner's state handling: moto, restored from `data_dir`, journaling."""

    def __init__(self, data_dir: Path, **options: Any) -> None:
        moto_patches.apply()
        self.mock = Emulator(Settings(table_name=TABLE, aws_region=REGION))
        self.mock.start()
        self.persistence = Persistence(data_dir, REGION, **options)
        try:
            self.restored = self.persistence.restore()
        except BaseException:
            self.mock.stop()
            raise
        self.mock.create_resources()  # as the runner does: journaled on a first start, a no-op after
        self.db = self.mock.client("dynamodb")

    def put(self, pk: str, sk: str, **attrs: Any) -> None:
        item = {"pk": {"S": pk}, "sk": {"S": sk}, **attrs}
        self.db.put_item(TableName=TABLE, Item=item)

    def items(self) -> list[dict[str, Any]]:
        pages = self.db.get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True)
        return sorted((i for page in pages for i in page["Items"]), key=lambda i: (i["pk"]["S"], i["sk"]["S"]))

    def crash(self) -> None:
        """Stop without saving anything (what SIGKILL leaves: the journal as it is on disk)."""
        uninstall()
        self.mock.stop()

    def stop(self) -> None:
        self.persistence.close()
        uninstall()
        self.mock.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"
    uninstall()  # a test that fails midway leaves no journal behind for the next one's moto


def test_every_kind_of_write_survives_a_crash_exactly(data_dir: Path) -> None:
    assert [k["AttributeName"] for k in table_properties()["KeySchema"]] == ["pk", "sk"]
    first = Process(data_dir)
    first.put("a", "1", n={"N": "1"}, blob={"B": b"\x00\xffbytes"}, nested={"M": {"b": {"B": b"\x01"}}})
    first.put("a", "2")
    first.db.update_item(
        TableName=TABLE, Key={"pk": {"S": "a"}, "sk": {"S": "1"}},
        UpdateExpression="ADD n :one SET tags = list_append(if_not_exists(tags, :empty), :t)",
        ExpressionAttributeValues={":one": {"N": "1"}, ":empty": {"L": []}, ":t": {"L": [{"S": "x"}]}},
    )  # fmt: skip
    first.db.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "t"}, "sk": {"S": "1"}}}},
            {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "a"}, "sk": {"S": "2"}}}},
            {"ConditionCheck": {"TableName": TABLE, "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
                                "ConditionExpression": "attribute_exists(pk)"}},
        ]
    )  # fmt: skip
    first.db.batch_write_item(
        RequestItems={
            TABLE: [{"PutRequest": {"Item": {"pk": {"S": "b"}, "sk": {"S": str(i)}}}} for i in range(30)][:25]
        }
    )
    with pytest.raises(ClientError):  # a failed condition writes nothing and journals nothing
        first.db.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "sk": {"S": "1"}},
                          ConditionExpression="attribute_not_exists(pk)")  # fmt: skip
    first.db.delete_item(TableName=TABLE, Key={"pk": {"S": "b"}, "sk": {"S": "0"}})
    before = first.items()
    first.crash()

    second = Process(data_dir)
    try:
        assert second.restored == len(before) == 1 + 1 + 24
        assert second.items() == before
        row = next(i for i in before if i["sk"]["S"] == "1" and i["pk"]["S"] == "a")
        assert row["n"] == {"N": "2"} and row["blob"] == {"B": b"\x00\xffbytes"}
        assert row["nested"] == {"M": {"b": {"B": b"\x01"}}}
    finally:
        second.stop()


def test_replay_writes_the_journaled_images_not_the_expressions(data_dir: Path) -> None:
    """A counter incremented N times comes back as N, however many times the journal is read."""
    first = Process(data_dir)
    for _ in range(5):
        first.db.update_item(TableName=TABLE, Key={"pk": {"S": "c"}, "sk": {"S": "c"}},
                             UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": {"N": "1"}})  # fmt: skip
    first.crash()
    for _ in range(2):
        again = Process(data_dir)
        assert again.items()[0]["n"] == {"N": "5"}
        again.crash()


def test_a_torn_last_record_is_cut_off_and_the_rest_kept(data_dir: Path) -> None:
    first = Process(data_dir)
    first.put("k", "1")
    first.put("k", "2")
    first.crash()
    (segment,) = sorted((data_dir / "dynamodb").glob("journal-*.log"))
    whole = segment.stat().st_size
    torn = frame(b'{"w":[["registry","x",null]]}')
    with segment.open("ab") as out:
        out.write(torn[: len(torn) // 2])  # the crash came in the middle of an append

    second = Process(data_dir)
    assert [i["sk"]["S"] for i in second.items()] == ["1", "2"]
    assert segment.stat().st_size == whole  # cut back to its last whole record
    second.put("k", "3")
    second.crash()

    third = Process(data_dir)
    try:
        assert [i["sk"]["S"] for i in third.items()] == ["1", "2", "3"]
    finally:
        third.stop()


def test_zeros_after_the_last_record_are_not_records(tmp_path: Path) -> None:
    """What a filesystem can leave after a crash past the end of the written data."""
    data = frame(b"one") + frame(b"two") + bytes(4096)
    assert read_frames(data) == ([b"one", b"two"], len(frame(b"one") + frame(b"two")))
    flipped = bytearray(frame(b"one") + frame(b"two"))
    flipped[-1] ^= 1
    assert read_frames(bytes(flipped))[0] == [b"one"]


def test_a_damaged_older_segment_refuses_to_start(data_dir: Path) -> None:
    first = Process(data_dir)
    first.put("k", "1")
    first.crash()
    second = Process(data_dir)  # a new segment: the first one is no longer the newest
    second.put("k", "2")
    second.crash()
    oldest = sorted((data_dir / "dynamodb").glob("journal-*.log"))[0]
    raw = bytearray(oldest.read_bytes())
    raw[-2] ^= 0xFF
    oldest.write_bytes(bytes(raw))
    with pytest.raises(JournalDamaged, match="damaged"):
        Process(data_dir)


def test_compaction_folds_the_journal_into_a_snapshot(data_dir: Path) -> None:
    first = Process(data_dir, compact_bytes=1024)
    for i in range(40):
        first.put("p", f"{i:03d}", body={"S": "x" * 100})
    first.db.delete_item(TableName=TABLE, Key={"pk": {"S": "p"}, "sk": {"S": "000"}})
    assert first.persistence.compact_if_due()
    segments = sorted((data_dir / "dynamodb").glob("journal-*.log"))
    assert len(segments) == 1 and segments[0].stat().st_size == 0  # the folded ones are gone
    assert not first.persistence.compact_if_due()  # nothing new: no O(table) work
    first.put("p", "new")  # after the snapshot, in the journal
    before = first.items()
    first.crash()

    second = Process(data_dir)
    try:
        assert second.items() == before
        assert second.restored == 40
    finally:
        second.stop()


def test_a_crash_between_the_snapshot_and_the_segment_deletion_replays_nothing_twice(data_dir: Path) -> None:
    first = Process(data_dir)
    first.db.update_item(TableName=TABLE, Key={"pk": {"S": "c"}, "sk": {"S": "c"}},
                         UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": {"N": "1"}})  # fmt: skip
    (segment,) = sorted((data_dir / "dynamodb").glob("journal-*.log"))
    kept = segment.read_bytes()
    first.persistence.compact()
    segment.write_bytes(kept)  # as if the crash came before the folded segment was deleted
    first.crash()
    second = Process(data_dir)
    try:
        assert second.items()[0]["n"] == {"N": "1"}
        assert not segment.exists()
    finally:
        second.stop()


def test_writes_from_many_threads_are_all_durable_and_in_order(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Group commit: concurrent writers share fsyncs; each one returns only once it is on disk."""
    first = Process(data_dir)
    syncs: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        syncs.append(fd)
        real(fd)

    def writer(n: int) -> None:
        for i in range(25):
            first.db.update_item(TableName=TABLE, Key={"pk": {"S": "ctr"}, "sk": {"S": "0"}}, **ADD_ONE)
            first.put(f"t{n}", str(i))

    monkeypatch.setattr(os, "fdatasync", counting)
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.undo()
    assert 0 < len(syncs) <= 400
    first.crash()
    second = Process(data_dir)
    try:
        items = second.items()
        assert len(items) == 8 * 25 + 1
        assert next(i for i in items if i["pk"]["S"] == "ctr")["n"] == {"N": "200"}
    finally:
        second.stop()


def test_state_files_are_private(data_dir: Path) -> None:
    first = Process(data_dir)
    first.put("secret", "hash", h={"S": "$2b$..."})
    first.stop()
    directory = data_dir / "dynamodb"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = list(directory.iterdir())
    assert {p.name for p in files} >= {"snapshot.bin"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_without_the_journal_only_a_clean_stop_saves(data_dir: Path) -> None:
    first = Process(data_dir, journal=False)
    first.put("k", "1")
    assert not list((data_dir / "dynamodb").glob("journal-*.log"))
    first.stop()
    second = Process(data_dir, journal=False)
    assert [i["sk"]["S"] for i in second.items()] == ["1"]
    second.put("k", "2")
    second.crash()  # unsafe: lost
    third = Process(data_dir)
    try:
        assert [i["sk"]["S"] for i in third.items()] == ["1"]
    finally:
        third.stop()


def test_an_unchecked_moto_version_is_refused() -> None:
    moto_patches.check_version(moto_patches.CHECKED_MOTO_VERSION)
    with pytest.raises(
        moto_patches.UncheckedMotoVersion, match=r"moto 5\.9\.0 is installed.*checked against moto 5\.2\.5"
    ):
        moto_patches.check_version("5.9.0")


def test_the_journal_writer_fails_stop(tmp_path: Path) -> None:
    """After a failed write nothing more is accepted: memory may hold what the disk does not."""
    writer = journal.Journal(tmp_path, 1)
    seq = writer.append(b"x")
    os.close(writer._fd)  # the disk goes away
    with pytest.raises(journal.JournalFailed):
        writer.wait(seq)
    with pytest.raises(journal.JournalFailed):
        writer.append(b"y")


def test_a_request_waits_for_the_disk_once_before_its_answer(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside `durable_on_exit` (the runner wraps each request in it) writes are journaled in order
    but synced together when the block ends: one fsync per request, none before."""
    first = Process(data_dir)
    syncs: list[str] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append("sync"), real(fd))[1])
    with durable_on_exit():
        for i in range(10):
            first.put("req", str(i))
        assert syncs == []
    assert syncs == ["sync"]
    first.crash()
    second = Process(data_dir)
    try:
        assert len(second.items()) == 10
    finally:
        second.stop()


def test_a_file_is_deleted_only_after_the_writes_before_it_are_durable(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Process(data_dir)
    objects = FileObjectStore(data_dir / "objects")
    objects.put("uploads/u1/chunk-1", b"staged")
    events: list[str] = []
    real_sync, real_unlink = os.fdatasync, Path.unlink
    monkeypatch.setattr(os, "fdatasync", lambda fd: (events.append("journal synced"), real_sync(fd))[1])
    monkeypatch.setattr(
        Path, "unlink", lambda self, **kw: (events.append(f"unlink {self.name}"), real_unlink(self, **kw))[1]
    )
    with durable_on_exit():
        first.put("session", "1", pending={"L": []})  # the row stops naming the chunk
        objects.delete("uploads/u1/chunk-1")
        assert events == ["journal synced", "unlink chunk-1"]
    first.stop()


def _inode(fd: int) -> int:
    return os.fstat(fd).st_ino


def _recorded_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The inodes os.fsync is called on from now on, in order."""
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(_inode(fd)), real_fsync(fd))[1])
    return synced


def test_a_file_is_synced_by_the_commit_of_the_row_that_names_it(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the journal a file write owes its fsyncs; the commit that makes the row naming the
    file durable makes them, file and directory entry, before it writes the row's record."""
    first = Process(data_dir)
    objects = FileObjectStore(data_dir / "objects")
    events: list[tuple[str, int]] = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", _inode(fd))), real_fsync(fd))[1])
    monkeypatch.setattr(os, "fdatasync", lambda fd: (events.append(("journal", 0)), real_fdatasync(fd))[1])
    with durable_on_exit():
        objects.put("blobs/sha256/ab/abcd", os.urandom(2 * 1024**2))  # O_DIRECT
        objects.put("blobs/sha256/ab/abce", b"small")  # buffered
        assert events == []  # owed, not made
        first.put("blob", "abcd")
    synced = [inode for kind, inode in events if kind == "fsync"]
    for path in (objects.path("blobs/sha256/ab/abcd"), objects.path("blobs/sha256/ab/abce")):
        assert path.stat().st_ino in synced
        assert path.parent.stat().st_ino in synced  # the entry naming it
    assert events[-1] == ("journal", 0)  # after every file
    assert len(synced) == len(set(synced))  # one fsync per inode
    first.crash()


def test_a_file_written_without_a_row_is_durable_when_the_request_ends(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Process(data_dir)
    objects = FileObjectStore(data_dir / "objects")
    synced = _recorded_fsyncs(monkeypatch)
    with durable_on_exit():
        objects.put("uploads/u2/chunk-1", b"staged")
        assert synced == []
    assert objects.path("uploads/u2/chunk-1").stat().st_ino in synced
    first.crash()


def test_without_the_journal_a_file_is_synced_before_the_write_returns(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Process(data_dir)
    first.crash()  # the journal's hooks no longer owe anything
    objects = FileObjectStore(data_dir / "objects")
    synced = _recorded_fsyncs(monkeypatch)
    objects.put("blobs/sha256/cd/cdef", b"bytes")
    assert objects.path("blobs/sha256/cd/cdef").stat().st_ino in synced


def test_an_owed_sync_keeps_no_lock_of_the_writer(data_dir: Path) -> None:
    """Parts of one upload are written under an flock on its data file; what a part owes must not
    hold that lock past the write (a duplicated descriptor would), or the next part waits forever."""
    first = Process(data_dir)
    objects = FileObjectStore(data_dir / "objects")
    upload = objects.start_multipart("uploads/u3/data")
    done: list[str] = []

    def parts() -> None:
        for number in (1, 2):
            done.append(objects.upload_part("uploads/u3/data", upload, number, os.urandom(1024**2)))

    writer = threading.Thread(target=parts, daemon=True)
    writer.start()
    writer.join(timeout=30)
    assert len(done) == 2
    first.crash()
