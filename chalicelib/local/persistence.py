"""Durable DynamoDB state for the embedded runner: a write-ahead journal and snapshots under
`REGISTRY_DATA_DIR/dynamodb/` (directory 0700, files 0600: they hold password hashes, webhook auth
headers and the like).

Every DynamoDB write of the process reaches moto's `DynamoDBBackend` (the app's requests, the
event worker, job Tasks, bootstrap, all through the in-process mock), so that is where it is
journaled: `install` registers the journal as the write observer of `moto_patches`, whose one
wrapper per backend method serialises moto's calls (PutItem, UpdateItem, DeleteItem,
TransactWriteItems and the table operations are observed; BatchWriteItem is a loop of PutItem and
DeleteItem in moto). The wrapper applies the write under moto's write lock, queues a record of its
*effect* (the resulting image of every item it touched, or its deletion) in the same lock, so the
journal's order is the order writes were applied, and returns to the caller only once that record
is on disk (group commit, `journal.py`). A request waits once instead, before its answer is sent
(`durable_on_exit`, around the WSGI app), and a file is deleted only once the writes before it
are on disk (`barrier`). Replaying images needs no condition, clock or counter
evaluated again, so a replay rebuilds exactly the state that was acknowledged; a transaction is one
record, so it replays whole or not at all.

A reader can see a write a moment before it is on disk (the fsync runs after the lock is given
back, so that one fsync serves many writers). A write that depends on what it read is journaled
after it, and the journal is a sequence: if that write is durable, so is what it depended on.

A snapshot is a compaction, made from files only: the last snapshot plus the journal segments
closed since (the journal moves to a new segment first), folded into the latest image per key and
written as a new snapshot (temporary file, fsync, rename, directory fsync), after which those
segments are deleted. No write waits for it and it reads no live state, so it is a consistent
point in time by construction. It runs when the journal outgrows the snapshot (at least
`journal_compact_bytes`), checked every `snapshot_interval_seconds`, and at a clean stop.

If the disk refuses a journal write, the process stops at once (exit status 70): memory then holds
a write the disk does not, and nothing more may be acknowledged. Start-up loads the snapshot and
replays the segments after it, building moto's items directly (`_load_item`: moto's `put_item`
costs ~10x as much); a torn record at the end of the newest segment (a crash in the middle of an
append) is cut off, and since its write was never
acknowledged nothing acknowledged is lost.

Blob bytes are files (`stores/files.py`), written before the row naming them is, and fsync'ed
with their directory entries by the journal commit that makes that row durable, before it writes
the row's record (`files.defer_syncs`: the fsyncs a write owes are made by the next commit).

`journal=False` (REGISTRY_UNSAFE_NO_JOURNAL, for benchmarks) journals nothing and saves a snapshot
of the live tables only at a clean stop: a crash loses every write since the last clean stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any, cast

from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.responses import DynamoHandler

from chalicelib.local import moto_patches
from chalicelib.local.journal import (
    Journal,
    JournalFailed,
    frame,
    private_dir,
    read_frames,
    read_segment,
    segments,
    write_private,
)
from chalicelib.stores import files

SNAPSHOT = "snapshot.bin"
_FORMAT = "registry-dynamodb-snapshot/1"
_ITEMS_PER_RECORD = 500
_ACCOUNT = "123456789012"  # moto's default account, the one boto3 clients of the mock use


class State:
    """Tables (the operations that made them, in order) and items (latest image per key)."""

    def __init__(self) -> None:
        self.tables: dict[str, list[list[Any]]] = {}
        self.items: dict[str, dict[str, dict[str, Any]]] = {}

    def apply(self, record: dict[str, Any]) -> None:
        for table, key, image in record.get("w", ()):
            bucket = self.items.setdefault(table, {})
            if image is None:
                bucket.pop(key, None)
            else:
                bucket[key] = image
        if "t" in record:
            op, args = record["t"]
            name = args.get("name", args.get("table_name"))
            if op == "create_table":
                self.tables[name] = [[op, args]]
                self.items[name] = {}
            elif op == "delete_table":
                self.tables.pop(name, None)
                self.items.pop(name, None)
            elif name in self.tables:
                self.tables[name].append([op, args])

    @property
    def rows(self) -> int:
        return sum(len(bucket) for bucket in self.items.values())

    def chunks(self, through: int) -> Iterator[bytes]:
        """The snapshot file: a header, items in records of a few hundred, an end record."""
        yield frame(_dump({"format": _FORMAT, "through": through, "tables": self.tables}))
        for table, bucket in self.items.items():
            pairs = list(bucket.items())
            for first in range(0, len(pairs), _ITEMS_PER_RECORD):
                yield frame(_dump({"i": [table, pairs[first : first + _ITEMS_PER_RECORD]]}))
        yield frame(_dump({"end": self.rows}))


def read_snapshot(path: Path) -> tuple[State, int]:
    """The state a snapshot holds and the last journal segment it covers (0: none)."""
    state = State()
    if not path.exists():
        return state, 0
    records, _ = read_frames(path.read_bytes())
    decoded = [json.loads(r) for r in records]
    if not decoded or decoded[0].get("format") != _FORMAT or "end" not in decoded[-1]:
        raise SnapshotDamaged(f"{path} is not a complete snapshot")
    state.tables = decoded[0]["tables"]
    for record in decoded[1:-1]:
        table, pairs = record["i"]
        state.items.setdefault(table, {}).update(pairs)
    if state.rows != decoded[-1]["end"]:
        raise SnapshotDamaged(f"{path} holds {state.rows} items, its end record says {decoded[-1]['end']}")
    return state, int(decoded[0]["through"])


class SnapshotDamaged(Exception):
    pass


class Persistence:
    """Restores the tables at start, journals every write after, compacts when warranted."""

    def __init__(self, data_dir: Path, region: str, *, journal: bool = True, compact_bytes: int = 16 * 1024**2) -> None:
        self._dir = private_dir(data_dir / "dynamodb")
        self._region = region
        self._journaling = journal
        self._compact_bytes = compact_bytes
        self._journal: Journal | None = None
        self._backend: DynamoDBBackend | None = None
        self._tables: dict[str, list[list[Any]]] = {}  # table operations, kept for live snapshots
        self._older_bytes = 0  # journal bytes in segments before the current one
        self._snapshot_bytes = 0
        self._through = 0
        self._compacting = threading.Lock()

    @property
    def journaling(self) -> bool:
        return self._journal is not None

    @property
    def snapshot_path(self) -> Path:
        return self._dir / SNAPSHOT

    def restore(self) -> int:
        """Load the snapshot and replay the journal into moto, then journal every write from now
        on. Returns the number of items restored. Call after `mock_aws` has started."""
        self._backend = dynamodb_backends[_ACCOUNT][self._region]
        (self._dir / (SNAPSHOT + ".tmp")).unlink(missing_ok=True)
        state, through = read_snapshot(self.snapshot_path)
        live: list[tuple[int, Path]] = []
        for number, path in segments(self._dir):
            if number <= through:
                path.unlink()  # folded into the snapshot before a crash could delete it
            else:
                live.append((number, path))
        for index, (_, path) in enumerate(live):
            path.chmod(0o600)
            for record in read_segment(path, last=index == len(live) - 1):
                state.apply(json.loads(record))
        _apply(self._backend, state)
        self._tables = state.tables
        self._through = through
        self._older_bytes = sum(path.stat().st_size for _, path in live)
        self._snapshot_bytes = self.snapshot_path.stat().st_size if self.snapshot_path.exists() else 0
        with contextlib.suppress(FileNotFoundError):
            self.snapshot_path.chmod(0o600)
        last = live[-1][0] if live else through
        if self._journaling:
            self._journal = Journal(self._dir, last + 1, before_commit=_OWED.sync)
        else:
            self._through = last  # the live snapshot at a clean stop covers these segments
        install(self)
        return state.rows

    # Called by the wrapped backend methods, under moto's write lock.

    def record(self, backend: DynamoDBBackend, payload: dict[str, Any]) -> int:
        if backend is not self._backend:
            raise RuntimeError(f"only DynamoDB in {self._region} is persisted by the local runner")
        if "t" in payload:
            _track_table(self._tables, payload["t"])
        if self._journal is None:
            return 0
        return self._journal.append(_dump(payload))

    def wait(self, sequence: int) -> None:
        if self._journal is None or sequence == 0:
            return
        try:
            self._journal.wait(sequence)
        except JournalFailed as exc:
            # Memory now holds a write the disk does not: acknowledging anything more could lose it.
            print(f"registry: {exc}; stopping so that no write is acknowledged unsaved", file=sys.stderr, flush=True)
            os._exit(70)

    def wait_all(self) -> None:
        if self._journal is not None:
            self.wait(self._journal.appended)

    # Compaction.

    def journal_bytes(self) -> int:
        return self._older_bytes + (self._journal.segment_bytes if self._journal else 0)

    def compact_if_due(self) -> bool:
        if self._journal is None or self.journal_bytes() < max(self._compact_bytes, self._snapshot_bytes):
            return False
        self.compact()
        return True

    def compact(self) -> None:
        """Fold the journal into a new snapshot and delete the segments it covers."""
        with self._compacting:
            if self._journal is None:
                self._save_live()
                return
            if self.journal_bytes() == 0:
                return
            closed = self._journal.rotate()
            state, through = read_snapshot(self.snapshot_path)
            folded = [(n, p) for n, p in segments(self._dir) if through < n <= closed]
            for _, path in folded:
                for record in read_segment(path, last=False):
                    state.apply(json.loads(record))
            self._replace_snapshot(state, closed)
            for _, path in folded:
                path.unlink()
            self._older_bytes = 0

    def close(self) -> None:
        """A clean stop: compact (or, without a journal, save the live tables). The journal stays
        open: a write still made by a thread that outlives the server (the event worker draining)
        is journaled and replayed at the next start like any other."""
        self.compact()

    def _save_live(self) -> None:
        assert self._backend is not None
        state = State()
        with moto_patches.WRITE_LOCK:
            state.tables = json.loads(_dump(self._tables))
            for name, table in self._backend.tables.items():
                state.items[name] = {
                    _key_text(item.hash_key, item.range_key): item.to_json()["Attributes"] for item in _items_of(table)
                }
            # An image's values are moto's own objects; freeze them before writes go on.
            frozen = json.loads(_dump(state.items))
        state.items = frozen
        self._replace_snapshot(state, self._through)
        for number, path in segments(self._dir):
            if number <= self._through:
                path.unlink()

    def _replace_snapshot(self, state: State, through: int) -> None:
        write_private(self.snapshot_path, state.chunks(through))
        self._through = through
        self._snapshot_bytes = self.snapshot_path.stat().st_size


# Applying a state to moto (start-up), bypassing the journal.


def _apply(backend: DynamoDBBackend, state: State) -> None:
    with moto_patches.unobserved():  # a replay is not journaled again
        for ops in state.tables.values():
            for op, args in ops:
                getattr(backend, op)(**args)
    for name, bucket in state.items.items():
        table = backend.get_table(name)
        for image in bucket.values():
            _load_item(table, image)
        table.__dict__["_registry_writes"] = table.__dict__.get("_registry_writes", 0) + 1  # moto_patches' cache


def _load_item(table: Any, image: dict[str, Any]) -> None:
    """Put an image that moto accepted once already, as `Table.put_item` stores it, without its
    checks: moto's `LimitedSizeDict` re-sums the whole item at every attribute it adds (quadratic;
    ~250 us an item here, most of a start-up's replay), and no condition applies to a replay.
    `LimitedSizeDict(mapping)` fills through `dict.update`, which does not call its check."""
    hash_value = DynamoType(image[table.hash_key_attr])
    range_value = DynamoType(image[table.range_key_attr]) if table.range_key_attr else None
    item = cast(Item, Item.__new__(Item))  # moto's BaseModel.__new__, as `Item(...)` would run it
    item.hash_key, item.range_key = hash_value, range_value
    item.attrs = LimitedSizeDict({key: DynamoType(value) for key, value in image.items()})
    if range_value is not None:
        table.items[hash_value][range_value] = item
    else:
        table.items[hash_value] = item


# The hooks on moto's backend.

_local = threading.local()
_sink: Persistence | None = None
# The file store's fsyncs, owed until the journal's next commit (stores/files.py says why).
_OWED = files.OwedSyncs()
_ORIGINALS: dict[str, Callable[..., Any]] = {}


def _key_text(hash_value: DynamoType, range_value: DynamoType | None) -> str:
    return _dump([hash_value.to_json(), range_value.to_json() if range_value is not None else None]).decode()


def _items_of(table: Any) -> Iterator[Any]:
    for partition in table.items.values():
        yield from (partition.values() if table.range_key_attr else [partition])


def _effects(backend: DynamoDBBackend, keys: list[tuple[str, dict[str, Any]]]) -> list[list[Any]]:
    """[table, key, image or None] of each touched item, as it is now."""
    effects = []
    for table_name, key in keys:
        table = backend.get_table(table_name)
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        item = table.get_item(hash_value, range_value)
        image = item.to_json()["Attributes"] if item is not None else None
        effects.append([table_name, _key_text(hash_value, range_value), image])
    return effects


def _touched(name: str, backend: DynamoDBBackend, arguments: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if name == "transact_write_items":
        touched = []
        for entry in arguments["transact_items"]:
            op_type, op = next(iter(entry.items()))
            if op_type != "ConditionCheck":
                touched.append((op["TableName"], moto_patches.transaction_key(backend, op_type, op)))
        return touched
    if name == "put_item":
        table = backend.get_table(arguments["table_name"])
        attrs = arguments["item_attrs"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return [(arguments["table_name"], key)]
    return [(arguments["table_name"], arguments["key"])]


class _Journaling:
    """The write observer of `moto_patches` (which serialises moto's calls): inside the lock, the
    effect of each write is queued in the journal; after it, the write waits for the disk (or, in
    `durable_on_exit`, leaves the wait to the block's end)."""

    def applied(self, name: str, backend: DynamoDBBackend, arguments: dict[str, Any]) -> int:
        sink = _sink
        if sink is None:
            return 0
        if name in moto_patches.TABLE_OPERATIONS:
            payload: dict[str, Any] = {"t": [name, json.loads(_dump(arguments))]}
        else:
            payload = {"w": _effects(backend, _touched(name, backend, arguments))}
        return sink.record(backend, payload)

    def settle(self, token: int) -> None:
        sink = _sink
        if sink is None or token == 0:
            return
        deferred = getattr(_local, "deferred", None)
        if deferred is not None:
            deferred.append(token)  # inside `durable_on_exit`: one wait at its end
        else:
            sink.wait(token)


@contextlib.contextmanager
def durable_on_exit() -> Iterator[None]:
    """Within the block, this thread's writes wait for the disk once, when the block ends, instead
    of one by one: for a request, whose answer is sent only after its block ends (the runner wraps
    the WSGI app in it), and for a BatchWriteItem. Nothing inside may act on the assumption that
    a write is already on disk, except through `barrier` (a file deletion does, stores/files.py)."""
    if getattr(_local, "deferred", None) is not None:
        yield  # nested: the outer block waits
        return
    waits: list[int] = []
    _local.deferred = waits
    try:
        yield
    finally:
        _local.deferred = None
        sink = _sink
        if waits and sink is not None:
            sink.wait(max(waits))
        if sink is not None and sink.journaling:
            _OWED.sync_mine()  # files written without a row after them (nothing to wait for, usually)


def barrier() -> None:
    """Make every write journaled so far durable now (one fsync at most; nothing when all is on
    disk already). Called before a file is deleted: the rows that stopped naming it (whichever
    thread wrote them, whatever this thread read) must be on disk first, or a crash could bring
    back a row whose bytes are gone."""
    sink = _sink
    if sink is not None:
        sink.wait_all()


def _one_wait(handler: Callable[..., Any]) -> Callable[..., Any]:
    """moto's BatchWriteItem calls `put_item`/`delete_item` per request: wait for the disk once."""

    @wraps(handler)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with durable_on_exit():
            return handler(self, *args, **kwargs)

    return wrapper


def _track_table(tables: dict[str, list[list[Any]]], operation: list[Any]) -> None:
    state = State()
    state.tables = tables
    state.apply({"t": operation})


def install(persistence: Persistence) -> None:
    """Route every DynamoDB write of this process through `persistence` (idempotent)."""
    global _sink  # noqa: PLW0603 (one process, one backend, one journal)
    moto_patches.apply()  # the wrappers that call the observer (idempotent)
    if not _ORIGINALS:
        _ORIGINALS["batch_write_item"] = DynamoHandler.batch_write_item
        DynamoHandler.batch_write_item = _one_wait(DynamoHandler.batch_write_item)  # type: ignore[method-assign]
        files.before_deleting(barrier)
    _sink = persistence
    moto_patches.observe_writes(_Journaling())
    files.defer_syncs(_OWED if persistence.journaling else None)


def uninstall() -> None:
    """Stop journaling this process's writes. For a process that hosts more than one run of the
    runner's state handling: tests."""
    global _sink  # noqa: PLW0603
    _sink = None
    moto_patches.observe_writes(None)
    files.defer_syncs(None)


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=moto_patches.json_default).encode()
