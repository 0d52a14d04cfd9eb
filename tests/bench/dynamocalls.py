"""CPU per DynamoDB call of the embedded runner, in-process: the direct path and botocore's.

Run as `python -m tests.bench.dynamocalls [--calls N] [--json FILE]`. On moto's mock with
`moto_patches` applied (as `make serve` and the functional tests run it), the same loop of PutItem,
GetItem, UpdateItem, Query and TransactWriteItems calls (the shapes the registry's stores make: a
dozen attributes, a binary one, a conditional write, an ADD/SET update, a one-partition Query of 20
items, the manifest PUT's two-row transaction with an 18-action update) runs once
through `local/direct.py` and once through botocore's pipeline. Per call: process CPU
(`time.process_time`, so other processes on a shared machine count little) divided by the calls;
the median of `--rounds` rounds is reported, with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.bench.common import report

TABLE = "bench-dynamocalls"
REGION = "us-east-1"
OPERATIONS = ("PutItem", "GetItem", "UpdateItem", "Query", "TransactWriteItems")
# The manifest PUT's transaction: the manifest row's update (18 actions) and the repository row's.
_MANIFEST_ACTIONS = 18


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _item(i: int) -> dict[str, Any]:
    return {
        **_key("bench#repo", f"artifact#{i:06d}"),
        "gsi1pk": {"S": "bench#project"},
        "gsi1sk": {"S": f"{i:06d}"},
        "digest": {"S": "sha256:" + f"{i:064x}"},
        "size": {"N": str(1000 + i)},
        "media_type": {"S": "application/vnd.oci.image.manifest.v1+json"},
        "created": {"N": "1700000000.5"},
        "labels": {"SS": ["a", "b"]},
        "annotations": {"M": {"org.opencontainers.image.title": {"S": "x"}, "n": {"N": "3"}}},
        "layers": {"L": [{"S": "sha256:" + "0" * 64}, {"S": "sha256:" + "1" * 64}]},
        "config": {"B": b"\x00\x01binary" * 4},
        "scanned": {"BOOL": False},
    }


def _calls(client: Any, n: int) -> dict[str, Callable[[int], Any]]:
    return {
        "PutItem": lambda i: client.put_item(
            TableName=TABLE, Item=_item(i), ConditionExpression="attribute_not_exists(pk) OR #s > :z",
            ExpressionAttributeNames={"#s": "size"}, ExpressionAttributeValues={":z": {"N": "0"}},
        ),
        "GetItem": lambda i: client.get_item(TableName=TABLE, Key=_key("bench#repo", f"artifact#{i % n:06d}"),
                                             ConsistentRead=True),
        "UpdateItem": lambda i: client.update_item(
            TableName=TABLE, Key=_key("bench#repo", f"artifact#{i % n:06d}"),
            UpdateExpression="ADD pulls :one SET pulled = :t, #s = if_not_exists(#s, :z)",
            ExpressionAttributeNames={"#s": "size"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":t": {"N": str(i)}, ":z": {"N": "0"}},
            ReturnValues="ALL_NEW",
        ),
        "TransactWriteItems": lambda i: client.transact_write_items(TransactItems=_manifest_transaction(i)),
        "Query": lambda i: client.query(
            TableName=TABLE, KeyConditionExpression="pk = :p AND begins_with(sk, :a)",
            ExpressionAttributeValues={":p": {"S": "bench#repo"}, ":a": {"S": "artifact#"}}, Limit=20,
            ExclusiveStartKey=_key("bench#repo", f"artifact#{(i * 20) % max(n - 20, 1):06d}"),
        ),
    }  # fmt: skip


def _manifest_transaction(i: int) -> list[dict[str, Any]]:
    names = {f"#a{k}": f"attr{k}" for k in range(_MANIFEST_ACTIONS)}
    values: dict[str, Any] = {f":v{k}": {"S": f"value{k}-{i}"} for k in range(_MANIFEST_ACTIONS - 1)}
    values[":one"] = {"N": "1"}
    sets = ", ".join(f"#a{k} = :v{k}" for k in range(_MANIFEST_ACTIONS - 2))
    last = _MANIFEST_ACTIONS - 2
    expression = f"SET {sets}, #a{last} = if_not_exists(#a{last}, :v{last}) ADD #a{last + 1} :one"
    return [
        {"Update": {"TableName": TABLE, "Key": _key(f"bench#tx{i}", "manifest"), "UpdateExpression": expression,
                    "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}},
        {"Update": {"TableName": TABLE, "Key": _key("bench#repos", f"repo{i}"),
                    "UpdateExpression": "SET #p = :p, #c = if_not_exists(#c, :c), #u = :c",
                    "ExpressionAttributeNames": {"#p": "project", "#c": "created_at", "#u": "updated_at"},
                    "ExpressionAttributeValues": {":p": {"S": "library"}, ":c": {"N": str(i)}}}},
    ]  # fmt: skip


def _per_call_ms(call: Callable[[int], Any], n: int) -> float:
    started = time.process_time()
    for i in range(n):
        call(i)
    return (time.process_time() - started) * 1000 / n


def measure(calls: int, rounds: int) -> dict[str, Any]:
    from chalicelib.config import Settings
    from chalicelib.local import direct, moto_patches
    from chalicelib.local.emulator import Emulator

    moto_patches.apply()
    emulator = Emulator(Settings(table_name=TABLE, aws_region=REGION))
    emulator.start()
    load = [round(x, 2) for x in os.getloadavg()]
    paths: dict[str, dict[str, Any]] = {}
    try:
        emulator.create_resources()
        client = emulator.client("dynamodb")
        for path in ("direct", "botocore"):
            if path == "direct":
                direct.install()
            else:
                direct.uninstall()
            operations = _calls(client, calls)
            samples: dict[str, list[float]] = {op: [] for op in OPERATIONS}
            for _ in range(rounds):
                for op in OPERATIONS:  # PutItem first: the other calls find the items
                    samples[op].append(_per_call_ms(operations[op], calls))
            paths[path] = {op: {"median_ms": round(statistics.median(s), 4), "samples_ms": [round(x, 4) for x in s]}
                           for op, s in samples.items()}  # fmt: skip
    finally:
        direct.uninstall()
        emulator.stop()
    return {
        "ok": True, "calls_per_round": calls, "rounds": rounds, "loadavg_start": load,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()], "per_call_cpu": paths,
    }  # fmt: skip


def print_table(result: dict[str, Any]) -> None:
    print(f"CPU per call (ms, median of {result['rounds']} rounds of {result['calls_per_round']} calls), "
          f"load {result['loadavg_start']} -> {result['loadavg_end']}")  # fmt: skip
    print(f"{'operation':<20}{'direct':>10}{'botocore':>10}")
    for op in OPERATIONS:
        row = [result["per_call_cpu"][p][op]["median_ms"] for p in ("direct", "botocore")]
        print(f"{op:<20}{row[0]:>10.3f}{row[1]:>10.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300, help="calls per operation and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    report(measure(args.calls, args.rounds), print_table, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
