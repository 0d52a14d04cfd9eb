"""Fixes to moto for a long-running, multi-threaded local registry, checked against moto 5.2.5 only.

They replace moto internals, which change between releases without notice, so `apply` refuses to
run on any other moto version (`CHECKED_MOTO_VERSION`; requirements-dev.txt pins the same one).
Moving to a new moto means reading each replaced function in the new release, re-running
tests/unit/local and tests/functional, then changing the pin and the constant together.
The other replacements of moto behaviour live beside what they serve: `persistence.py` wraps the
DynamoDB backend's writes to journal them, `stepfunctions.py` makes Lambda Tasks call the
registry's handlers. The AWS path is unaffected: this is applied by the local runner and by the
in-process tests, which thereby run what it runs.

1. `DynamoDBBackend.transact_write_items` (replaced by `transact_write_items`). moto deep-copies
   the whole table once per transaction item to be able to roll back, then on failure puts those
   copies back: O(table size) per transaction, and wrong under threads (a write another request
   made meanwhile is lost when a failed transaction restores its copy). DynamoDB isolates
   transactions. The replacement checks every condition first and writes only when all hold,
   remembers just the items it touches, and restores only those if a write still fails.
2. `DynamoDBBackend.put_item/update_item/delete_item/batch_write_item/scan/query/
   transact_write_items` and the table operations (wrapped by `_atomic`): moto runs them
   unsynchronised, so a Scan or Query iterating a partition raises "dictionary changed size during
   iteration" (or skips rows) when another thread writes; each DynamoDB call is atomic. This is
   the one way moto calls are serialised in this process: one re-entrant lock (`WRITE_LOCK`),
   taken by these wrappers only. A write observer (`observe_writes`: the journal of
   `persistence.py`) is called by the same wrapper inside the lock, right after the write is
   applied (so it sees writes in the order they were applied), and once more after the lock is
   given back (where the journal waits for the disk); the writes a call makes through other
   wrapped methods (a transaction's puts) are part of it, not observed again.
3. `ActionResult.execute_result` for DynamoDB results (replaced by `_execute_result`). moto turns
   every result into its JSON answer with a generic, model-driven serializer that walks the output
   shape member by member: ~40% of the CPU of a blob HEAD (three DynamoDB calls). DynamoDB's
   results are already in their wire shape, so a successful one is written with `json.dumps`;
   errors keep moto's path. The answers differ only in members the output shape does not have
   (moto adds `ConsumedCapacityUnits`), which botocore's parser ignores.
4. `moto.core.responses.method_names_from_class` (replaced by the cached `_method_names`): moto
   lists the handler class's methods with `inspect.getmembers` on every call to check the action
   exists, a third of a GetItem's CPU. Classes do not change at run time.
5. `Table.query`, `Table.scan`, `Table.all_items` (wrapped by `_partition_query`, `_paged_scan`,
   `_wanted_items`). A Query or Scan on the table starts from `all_items()`: every item of every
   partition, sorted by comparing `DynamoType`s in Python. A Query then keeps its partition's
   items (O(table) per Query: a GC sweep of N candidates cost O(N x table)); a Scan page walks past
   every item before its `ExclusiveStartKey` (the 400,000 rows of the GC bench took hours). So
   `all_items` is told what the caller needs: a Query gets `Table.items[hash_key]`, a Scan the
   items after its start key, a Query on an index every item (it filters them on the index's
   keys), all sorted on the keys' values by a C-level sort: the same items in the same order. The
   sorted items are kept until the table's next `put_item` or `delete_item` (`_counting_writes`
   counts them; an update changes an item in place), so the pages of one Scan cost a binary search
   each.
6. `Table.get_item` (wrapped by `_inserting_nothing`): moto indexes the partitions, a defaultdict,
   so reading a key in no partition inserts an empty one: a read that changes the dict a Scan
   iterates on another thread. It looks first.
7. `DynamoDBBackend.get_item` (wrapped by `_locked_copy`; BatchGetItem calls it per key). moto
   returns the live item, which its handler serialises after the call, while `update_item`
   applies an update's actions to that same item one by one: a GetItem beside an UpdateItem could
   answer with the first `SET` applied and not the second (a job seen `Success` without the counts
   the same UpdateItem wrote). DynamoDB answers with the item before or after the whole update. The
   wrapper reads under the lock and answers with a copy.
8. Update and condition expressions: an update parsed once per string and validated in time
   linear in its size, a condition's tokens kept per string (`moto_expressions.py`, installed by
   `apply`).
9. `FakeKey.__init__` (wrapped by `_eager_etag`). moto stores a new S3 object in its bucket, then
   computes the ETag for the PUT's answer from the object's buffer, which a DELETE of the same key
   on another thread (a GC sweep beside a push of the same blob) has closed by then: the PUT failed
   with "I/O operation on closed file". S3 answers such a PUT with its ETag. The ETag is computed
   when the object is made, before any other thread can see it. (moto's S3 serves the in-process
   tests; the runner keeps blobs as files.)
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import copy
import datetime
import functools
import inspect
import json
import threading
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, Protocol

import moto
from moto.core import responses as moto_responses
from moto.core.responses import ActionContext, ActionResult
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoResult
from moto.s3.models import FakeKey

from chalicelib.local import moto_expressions

CHECKED_MOTO_VERSION = "5.2.5"
WRITE_LOCK = threading.RLock()
_SINGLE_WRITES = ("put_item", "update_item", "delete_item", "batch_write_item")
# Reads that iterate a table or a partition: moto raises "dictionary changed size during iteration"
# (or skips rows) when another thread writes meanwhile; DynamoDB answers each call atomically.
_ITERATING_READS = ("scan", "query")


# Writes whose effect a write observer records (`observe_writes`); the rest are only serialised.
OBSERVED_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")
TABLE_OPERATIONS = ("create_table", "delete_table", "update_table", "update_time_to_live")


class WriteObserver(Protocol):
    def applied(self, name: str, backend: DynamoDBBackend, arguments: dict[str, Any]) -> int:
        """Called inside the lock once the write is applied; returns what `settle` is given."""

    def settle(self, token: int) -> None:
        """Called after the lock is given back, before the write returns to its caller."""


_observer: WriteObserver | None = None
_inside = threading.local()  # a thread inside an observed write: nested writes are part of it


def observe_writes(observer: WriteObserver | None) -> None:
    """Route every write of this process past `observer` (None: stop)."""
    global _observer  # noqa: PLW0603 (one process, one backend)
    _observer = observer


@contextlib.contextmanager
def unobserved() -> Iterator[None]:
    """Writes of this thread within the block are not observed (a replay of the journal)."""
    before = getattr(_inside, "active", False)
    _inside.active = True
    try:
        yield
    finally:
        _inside.active = before


def _atomic(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """`method` run under `WRITE_LOCK`; an observed write also past the write observer."""
    observed = name in OBSERVED_WRITES or name in TABLE_OPERATIONS
    signature = inspect.signature(method) if observed else None

    @wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        observer = _observer
        if signature is None or observer is None or getattr(_inside, "active", False):
            with WRITE_LOCK:
                return method(*args, **kwargs)
        arguments = signature.bind(*args, **kwargs).arguments
        backend = arguments.pop("self")
        with unobserved(), WRITE_LOCK:
            result = method(*args, **kwargs)
            token = observer.applied(name, backend, arguments)
        observer.settle(token)
        return result

    return wrapper


def _locked_copy(method: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with WRITE_LOCK:
            return copy.deepcopy(method(*args, **kwargs))

    return wrapper


def transaction_key(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def _check(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    """Evaluate every condition without writing; returns moto's per-item error tuples."""
    errors: list[tuple[Any, Any, Any]] = []
    seen: set[tuple[str, str]] = set()
    for item in transact_items:
        if len(item) != 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        key = transaction_key(backend, op_type, op)
        unique = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if unique in seen:
            raise MultipleTransactionsException()
        seen.add(unique)
        expression = op.get("ConditionExpression")
        if expression is None:
            errors.append((None, None, None))
            continue
        current = backend.get_item(op["TableName"], key)
        condition = get_filter_expression(
            expression, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        )
        if condition.expr(current):
            errors.append((None, None, None))
        else:
            wants_old = op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
            old = current.to_json()["Attributes"] if current and wants_old else None
            errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
    return errors


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    with WRITE_LOCK:
        errors = _check(self, transact_items)
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)
        touched: list[tuple[str, dict[str, Any], Any]] = []
        try:
            for item in transact_items:
                op_type, op = next(iter(item.items()))
                key = transaction_key(self, op_type, op)
                before = self.get_item(op["TableName"], key)
                touched.append((op["TableName"], key, before.to_json()["Attributes"] if before else None))
                names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                if op_type == "Put":
                    self.put_item(op["TableName"], op["Item"])
                elif op_type == "Delete":
                    self.delete_item(op["TableName"], key)
                elif op_type == "Update":
                    self.update_item(
                        op["TableName"], key, update_expression=op["UpdateExpression"],
                        expression_attribute_names=names, expression_attribute_values=values,
                    )  # fmt: skip
        except Exception:
            for table_name, key, before in reversed(touched):
                if before is None:
                    self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, before)
            raise


_moto_execute_result = ActionResult.execute_result
_JSON_HEADERS = {"Content-Type": "application/x-amz-json-1.0"}


def _execute_result(self: ActionResult, context: ActionContext) -> Any:
    if (
        type(self) not in (ActionResult, DynamoResult)
        or context.service_model.service_name != "dynamodb"
        or isinstance(self.result, BaseException)
    ):
        return _moto_execute_result(self, context)
    return 200, dict(_JSON_HEADERS), json.dumps(self.result, default=json_default)


def json_default(value: Any) -> Any:
    """What the generic serializer does for the non-JSON types a DynamoDB result can hold."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    raise TypeError(f"cannot serialise {type(value).__name__}")


@functools.cache
def _method_names(clazz: type) -> list[str]:
    return [name for name, _ in inspect.getmembers(clazz, predicate=inspect.isfunction)]


_applied = False


# What the table Query or Scan running on this thread needs from `Table.all_items()`.
_ITEMS_WANTED = threading.local()


def _key_of(table: Table) -> Callable[[Any], Any]:
    if table.range_key_attr:
        return lambda item: (item.hash_key.cast_value, item.range_key.cast_value)
    return lambda item: item.hash_key.cast_value


def _partition_query(query: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(query)
    def wrapper(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        on_table = kwargs.get("index_name") is None and (len(args) < 7 or args[6] is None)
        # An index Query filters every item: from the key-ordered list kept between writes, the same
        # items in the same order as moto's sort of `DynamoType`s (seconds per Query at 100,000 rows).
        _ITEMS_WANTED.value = ("partition", hash_key) if on_table and hash_key is not None else ("after", None)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _ITEMS_WANTED.value = None

    return wrapper


def _paged_scan(scan: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(scan)
    def wrapper(self: Table, filters: Any, limit: Any, start: dict[str, Any] | None, *args: Any, **kwargs: Any) -> Any:
        on_table = kwargs.get("index_name") is None and (len(args) < 2 or args[1] is None)
        after = None
        if start:
            after = DynamoType(start[self.hash_key_attr]).cast_value
            if self.range_key_attr:
                after = (after, DynamoType(start[self.range_key_attr]).cast_value)
        _ITEMS_WANTED.value = ("after", after) if on_table else None
        try:
            return scan(self, filters, limit, start, *args, **kwargs)
        finally:
            _ITEMS_WANTED.value = None

    return wrapper


def _wanted_items(all_items: Callable[[Table], list[Any]]) -> Callable[[Table], list[Any]]:
    @wraps(all_items)
    def wrapper(self: Table) -> list[Any]:
        wanted = getattr(_ITEMS_WANTED, "value", None)
        if wanted is None:
            return all_items(self)
        kind, value = wanted
        if kind == "partition":
            if value not in self.items:
                return []
            partition = self.items[value]
            return list(partition.values()) if self.range_key_attr else [partition]
        items, item_keys = _sorted_items(self)
        return items[bisect.bisect_right(item_keys, value) :] if value is not None else list(items)

    return wrapper


def _sorted_items(table: Table) -> tuple[list[Any], list[Any]]:
    """The table's items in key order and their keys, kept until the table's next put or delete."""
    stamp = (id(table.items), table.__dict__.get("_registry_writes", 0))
    cached = table.__dict__.get("_registry_sorted")
    if cached is not None and cached[0] == stamp:
        return cached[1], cached[2]
    key = _key_of(table)
    keyed = sorted(((key(i), i) for p in table.items.values() for i in (p.values() if table.range_key_attr else [p])),
                   key=lambda pair: pair[0])  # fmt: skip
    items, item_keys = [i for _, i in keyed], [k for k, _ in keyed]
    table.__dict__["_registry_sorted"] = (stamp, items, item_keys)
    return items, item_keys


def _counting_writes(write: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(write)
    def wrapper(self: Table, *args: Any, **kwargs: Any) -> Any:
        try:
            return write(self, *args, **kwargs)
        finally:
            self.__dict__["_registry_writes"] = self.__dict__.get("_registry_writes", 0) + 1

    return wrapper


def _inserting_nothing(get_item: Callable[..., Any]) -> Callable[..., Any]:
    """moto's `get_item` indexes the table's partitions, a defaultdict, so reading a missing key
    inserts an empty partition: an unlocked read that changes the dict a Scan or Query iterates on
    another thread ("dictionary changed size during iteration" in a GC Task)."""

    @wraps(get_item)
    def wrapper(self: Table, hash_key: Any, range_key: Any = None, *args: Any, **kwargs: Any) -> Any:
        if range_key is not None and hash_key not in self.items:
            return None
        return get_item(self, hash_key, range_key, *args, **kwargs)

    return wrapper


def _eager_etag(init: Callable[..., None]) -> Callable[..., None]:
    @wraps(init)
    def wrapper(self: FakeKey, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        _ = self.etag  # computed from the buffer now, kept for every later answer

    return wrapper


def atomic_calls() -> dict[str, Callable[..., Any]]:
    """moto's DynamoDB methods wrapped so each call runs alone, as each DynamoDB call is atomic:
    writes, table operations, the reads that iterate, and GetItem (answered with a copy). `apply`
    installs them for good; a test that runs GC Tasks beside concurrent requests installs them for
    its own duration (wrapping the wrappers: the lock is re-entrant, a write is observed once)."""
    names = (*_SINGLE_WRITES, *_ITERATING_READS, "transact_write_items", *TABLE_OPERATIONS)
    calls = {name: _atomic(name, getattr(DynamoDBBackend, name)) for name in names}
    calls["get_item"] = _locked_copy(DynamoDBBackend.get_item)
    return calls


class UncheckedMotoVersion(Exception):
    """The installed moto is not the release these patches were checked against."""


def check_version(installed: str | None = None) -> None:
    installed = moto.__version__ if installed is None else installed
    if installed != CHECKED_MOTO_VERSION:
        raise UncheckedMotoVersion(
            f"moto {installed} is installed, but the local runner's fixes to moto internals "
            f"(chalicelib/local/moto_patches.py, moto_expressions.py, persistence.py, stepfunctions.py) "
            f"were checked against moto {CHECKED_MOTO_VERSION} only. Install that release (`make install`, or "
            f"`pip install 'moto[dynamodb,stepfunctions]=={CHECKED_MOTO_VERSION}'`), or check every patch "
            f"against {installed} and move the pin in requirements-dev.txt and CHECKED_MOTO_VERSION together."
        )


def apply() -> None:
    """Install the fixes (idempotent); refuses an unchecked moto version."""
    global _applied  # noqa: PLW0603 (a process-wide patch is applied once)
    if _applied:
        return
    check_version()
    _applied = True
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    for name, method in atomic_calls().items():
        setattr(DynamoDBBackend, name, method)
    ActionResult.execute_result = _execute_result  # type: ignore[method-assign]
    moto_responses.method_names_from_class = _method_names  # type: ignore[attr-defined]
    Table.query = _partition_query(Table.query)  # type: ignore[method-assign]
    Table.scan = _paged_scan(Table.scan)  # type: ignore[method-assign]
    Table.all_items = _wanted_items(Table.all_items)  # type: ignore[method-assign,assignment]
    Table.get_item = _inserting_nothing(Table.get_item)  # type: ignore[method-assign]
    Table.put_item = _counting_writes(Table.put_item)  # type: ignore[method-assign]
    Table.delete_item = _counting_writes(Table.delete_item)  # type: ignore[method-assign]
    moto_expressions.install()
    FakeKey.__init__ = _eager_etag(FakeKey.__init__)  # type: ignore[method-assign]
