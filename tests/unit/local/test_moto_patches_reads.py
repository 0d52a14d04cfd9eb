"""moto with the local runner's patches: a table Query reads only its partition and a Scan page
starts at its start key, and both still answer what DynamoDB answers (every item once, in key
order, pages and segments included)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

TABLE = "patched"


@pytest.fixture
def client(patched_moto: None) -> Iterator[Any]:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gpk", "AttributeType": "S"},
            {"AttributeName": "gsk", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi",
                "KeySchema": [
                    {"AttributeName": "gpk", "KeyType": "HASH"},
                    {"AttributeName": "gsk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    yield dynamodb


def _fill(client: Any) -> list[tuple[str, str]]:
    rng = random.Random(7)
    keys = {(f"P#{rng.randrange(40)}", f"S#{rng.randrange(10**6):06d}") for _ in range(600)}
    for pk, sk in keys:
        client.put_item(TableName=TABLE, Item={"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": "1"}})
    return sorted(keys)


def _scan(client: Any, **extra: Any) -> list[tuple[str, str]]:
    pages = client.get_paginator("scan").paginate(TableName=TABLE, PaginationConfig={"PageSize": 7}, **extra)
    return [(i["pk"]["S"], i["sk"]["S"]) for page in pages for i in page["Items"]]


def test_a_paged_scan_reads_every_item_once_in_key_order(client: Any) -> None:
    keys = _fill(client)
    assert _scan(client) == keys


def test_segments_split_the_table_without_overlap(client: Any) -> None:
    keys = _fill(client)
    parts = [_scan(client, Segment=n, TotalSegments=5) for n in range(5)]
    assert sorted(k for part in parts for k in part) == keys
    assert all(part == sorted(part) for part in parts)
    assert sum(1 for part in parts if part) > 1


def test_a_paged_query_reads_its_partition_and_only_it(client: Any) -> None:
    keys = _fill(client)
    for pk in ("P#3", "P#17", "P#none"):
        pages = client.get_paginator("query").paginate(
            TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": pk}},
            PaginationConfig={"PageSize": 4},
        )  # fmt: skip
        got = [(i["pk"]["S"], i["sk"]["S"]) for page in pages for i in page["Items"]]
        assert got == [k for k in keys if k[0] == pk]
    backwards = client.query(TableName=TABLE, KeyConditionExpression="pk = :p AND sk > :s", ScanIndexForward=False,
                             ExpressionAttributeValues={":p": {"S": "P#3"}, ":s": {"S": "S#5"}})  # fmt: skip
    expected = [k for k in reversed(keys) if k[0] == "P#3" and k[1] > "S#5"]
    assert [(i["pk"]["S"], i["sk"]["S"]) for i in backwards["Items"]] == expected


def test_a_scan_after_writes_sees_them(client: Any) -> None:
    keys = _fill(client)
    first = client.scan(TableName=TABLE, Limit=50)
    client.delete_item(TableName=TABLE, Key={"pk": {"S": keys[60][0]}, "sk": {"S": keys[60][1]}})
    client.put_item(TableName=TABLE, Item={"pk": {"S": "P#99"}, "sk": {"S": "S#0"}})
    rest = client.get_paginator("scan").paginate(TableName=TABLE, ExclusiveStartKey=first["LastEvaluatedKey"])
    seen = [(i["pk"]["S"], i["sk"]["S"]) for i in first["Items"]]
    seen += [(i["pk"]["S"], i["sk"]["S"]) for page in rest for i in page["Items"]]
    assert seen == sorted([*keys[:60], *keys[61:], ("P#99", "S#0")])


def test_reading_missing_keys_changes_no_table_state(client: Any) -> None:
    """A GetItem or BatchGetItem of a key in no partition must not insert one (moto's partitions
    are a defaultdict): a Scan on another thread iterates them."""
    from moto.dynamodb.models import dynamodb_backends

    _fill(client)
    table = dynamodb_backends["123456789012"]["us-east-1"].get_table(TABLE)
    partitions = len(table.items)
    key = {"pk": {"S": "P#missing"}, "sk": {"S": "S#1"}}
    assert "Item" not in client.get_item(TableName=TABLE, Key=key)
    assert client.batch_get_item(RequestItems={TABLE: {"Keys": [key]}})["Responses"][TABLE] == []
    assert len(table.items) == partitions


def test_an_index_query_answers_its_index_partition_in_index_order(client: Any) -> None:
    """Ties on the index's sort key keep the table's key order (moto's); backwards reverses all."""
    rng = random.Random(11)
    rows = {(f"P#{rng.randrange(300)}", f"S#{rng.randrange(50)}") for _ in range(900)}
    indexed = {}
    for pk, sk in rows:
        gpk, gsk = f"G#{rng.randrange(3)}", f"{rng.randrange(20):02d}"
        client.put_item(TableName=TABLE, Item={"pk": {"S": pk}, "sk": {"S": sk}, "gpk": {"S": gpk}, "gsk": {"S": gsk}})
        indexed[(pk, sk)] = (gpk, gsk)
    client.put_item(TableName=TABLE, Item={"pk": {"S": "P#unindexed"}, "sk": {"S": "S#0"}})
    for forward in (True, False):
        pages = client.get_paginator("query").paginate(
            TableName=TABLE, IndexName="gsi", KeyConditionExpression="gpk = :g",
            ExpressionAttributeValues={":g": {"S": "G#1"}}, ScanIndexForward=forward, PaginationConfig={"PageSize": 9},
        )  # fmt: skip
        got = [(i["pk"]["S"], i["sk"]["S"]) for page in pages for i in page["Items"]]
        expected = sorted((k for k, g in indexed.items() if g[0] == "G#1"), key=lambda k: (indexed[k][1], k))
        assert got == (expected if forward else expected[::-1])
