"""The embedded runner's direct DynamoDB path (`local/direct.py`) answers as botocore's does.

The same script of calls runs twice on a fresh table of the mock, once through botocore's HTTP
pipeline and once through the direct path; every answer and every error (its class, code,
message, and the parts PynamoDB reads: `CancellationReasons`, the item of a failed condition)
must be the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError, ParamValidationError

from chalicelib.config import Settings
from chalicelib.local import direct, moto_patches
from chalicelib.local.emulator import Emulator

TABLE = "registry"
REGION = "us-east-1"


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


ITEM = {
    **_key("a", "1"),
    "n": {"N": "1"},
    "blob": {"B": b"\x00\xffbytes"},
    "nested": {"M": {"b": {"B": b"\x01"}, "l": {"L": [{"S": "x"}, {"N": "2.5"}]}}},
    "set": {"SS": ["p", "q"]},
    "flag": {"BOOL": True},
    "nothing": {"NULL": True},
    "blobs": {"BS": [b"\x00", b"\xff\xfe", b""]},
    "text_blob": {"B": "text given as a blob"},  # botocore encodes it; it comes back as bytes
    "deep": {"L": [{"M": {"n": {"NS": ["1", "2.5"]}, "x": {"L": [{"NULL": True}, {"BOOL": False}]}}}]},
}
MISSING_TABLE = "no-such-table"

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("put_item", {"TableName": TABLE, "Item": ITEM}),
    ("put_item", {"TableName": TABLE, "Item": {**_key("a", "2"), "n": {"N": "5"}}}),
    ("get_item", {"TableName": TABLE, "Key": _key("a", "1"), "ConsistentRead": True}),
    ("get_item", {"TableName": TABLE, "Key": _key("a", "absent")}),
    (
        "update_item",
        {
            "TableName": TABLE,
            "Key": _key("a", "1"),
            "ReturnValues": "ALL_NEW",
            "UpdateExpression": "ADD n :one SET tags = list_append(if_not_exists(tags, :empty), :t) REMOVE flag",
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":empty": {"L": []}, ":t": {"L": [{"S": "x"}]}},
        },
    ),
    (
        "put_item",
        {
            "TableName": TABLE,
            "Item": _key("a", "1"),
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    ),
    (
        "transact_write_items",
        {
            "TransactItems": [
                {"Put": {"TableName": TABLE, "Item": _key("t", "1")}},
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": _key("a", "2"),
                        "UpdateExpression": "SET n = :v",
                        "ConditionExpression": "n = :old",
                        "ExpressionAttributeValues": {":v": {"N": "9"}, ":old": {"N": "4"}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
            ]
        },
    ),
    (
        "transact_write_items",
        {
            "TransactItems": [
                {"Put": {"TableName": TABLE, "Item": _key("t", "2")}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": _key("a", "2"),
                        "ConditionExpression": "n = :five",
                        "ExpressionAttributeValues": {":five": {"N": "5"}},
                    }
                },
            ]
        },
    ),
    ("batch_get_item", {"RequestItems": {TABLE: {"Keys": [_key("a", "1"), _key("t", "2"), _key("z", "z")]}}}),
    (
        "batch_write_item",
        {
            "RequestItems": {
                TABLE: [{"PutRequest": {"Item": _key("b", str(i))}} for i in range(5)]
                + [{"DeleteRequest": {"Key": _key("t", "2")}}]
            }
        },
    ),
    (
        "query",
        {
            "TableName": TABLE,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "b"}},
            "Limit": 3,
            "ScanIndexForward": False,
        },
    ),
    (
        "query",  # the next page: the previous one's LastEvaluatedKey as ExclusiveStartKey
        {
            "TableName": TABLE,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "b"}},
            "Limit": 3,
            "ScanIndexForward": False,
            "ExclusiveStartKey": _key("b", "2"),
            "ReturnConsumedCapacity": "TOTAL",
        },
    ),
    (
        "query",
        {
            "TableName": TABLE,
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
            "FilterExpression": "attribute_exists(#b)",
            "ProjectionExpression": "pk, #b, nested.l, deep",
            "ExpressionAttributeNames": {"#b": "blob"},
            "ExpressionAttributeValues": {":p": {"S": "a"}, ":s": {"S": "1"}},
            "ReturnConsumedCapacity": "INDEXES",
        },
    ),
    ("scan", {"TableName": TABLE, "Limit": 4}),
    ("scan", {"TableName": TABLE, "Limit": 4, "ExclusiveStartKey": _key("b", "3"), "Select": "COUNT"}),
    ("get_item", {"TableName": TABLE, "Key": _key("a", "1"), "ReturnConsumedCapacity": "TOTAL"}),
    ("get_item", {"TableName": TABLE, "Key": _key("a", "1"), "ReturnConsumedCapacity": "SOMETIMES"}),
    ("put_item", {"TableName": TABLE, "Item": _key("d", "1"), "ReturnConsumedCapacity": "INDEXES"}),
    ("get_item", {"TableName": TABLE, "Key": _key("a", "1"), "Limit": 3}),
    ("query", {"TableName": TABLE, "KeyConditionExpression": "pk = :p", "Limit": "3"}),
    ("list_tables", {}),
    ("delete_item", {"TableName": TABLE, "Key": _key("a", "2"), "ReturnValues": "ALL_OLD"}),
    ("update_item", {"TableName": TABLE, "Key": _key("a", "1"), "UpdateExpression": "SET"}),
    ("get_item", {"TableName": MISSING_TABLE, "Key": _key("a", "1")}),
    ("put_item", {"TableName": TABLE}),
    ("put_item", {"TableName": TABLE, "Item": {**_key("c", "1"), "n": {"N": "not a number"}}}),
    ("scan", {"TableName": TABLE, "ConsistentRead": True}),
]


def _outcome(client: Any, name: str, params: dict[str, Any]) -> tuple[Any, ...]:
    try:
        answer = getattr(client, name)(**params)
    except ParamValidationError as exc:
        return ("invalid parameters", str(exc))
    except ClientError as exc:
        response = {k: v for k, v in exc.response.items() if k != "ResponseMetadata"}
        metadata = exc.response["ResponseMetadata"]
        return ("error", type(exc).__name__, str(exc), response, *_metadata(metadata))
    return ("ok", answer, *_metadata(answer.pop("ResponseMetadata")))


def _metadata(metadata: dict[str, Any]) -> tuple[Any, ...]:
    """What does not vary per call: the status, the headers' names, the request id's length."""
    headers = metadata["HTTPHeaders"]
    checksum = headers.get("x-amz-crc32")
    return (
        metadata["HTTPStatusCode"], metadata["RetryAttempts"], sorted(headers), len(metadata.get("RequestId", "")),
        checksum is None or checksum.isdigit(),
    )  # fmt: skip


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    moto_patches.apply()
    mock = Emulator(Settings(table_name=TABLE, aws_region=REGION))
    mock.start()
    try:
        yield mock
    finally:
        direct.uninstall()
        mock.stop()


def _run(emulator: Emulator) -> list[tuple[Any, ...]]:
    emulator.create_resources()
    client = emulator.client("dynamodb")
    try:
        return [_outcome(client, name, params) for name, params in CALLS]
    finally:
        client.delete_table(TableName=TABLE)


def test_the_direct_path_answers_and_fails_as_botocore_does(emulator: Emulator) -> None:
    through_botocore = _run(emulator)
    direct.install()
    calls: list[str] = []
    original: Callable[..., Any] = direct.call

    def counted(client: Any, name: str, params: dict[str, Any]) -> Any:
        calls.append(name)
        return original(client, name, params)

    direct_module: Any = direct
    direct_module.call = counted
    try:
        directly = _run(emulator)
    finally:
        direct_module.call = original
    assert len(calls) >= len(CALLS)  # the second run did take the direct path
    kinds = {o[0] for o in through_botocore}
    assert kinds == {"ok", "error", "invalid parameters"}  # the script covers answers and both kinds of error
    for call, a, b in zip(CALLS, through_botocore, directly, strict=True):
        assert a == b, call[0]


def test_the_direct_path_raises_the_modelled_exception_classes(emulator: Emulator) -> None:
    direct.install()
    emulator.create_resources()
    client = emulator.client("dynamodb")
    client.put_item(TableName=TABLE, Item=_key("a", "1"))
    with pytest.raises(client.exceptions.ConditionalCheckFailedException) as failed:
        client.put_item(
            TableName=TABLE, Item=_key("a", "1"), ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )  # fmt: skip
    assert failed.value.response["Item"] == _key("a", "1")
    with pytest.raises(client.exceptions.TransactionCanceledException) as cancelled:
        client.transact_write_items(
            TransactItems=[{"Put": {"TableName": TABLE, "Item": _key("a", "1"),
                                    "ConditionExpression": "attribute_not_exists(pk)"}}]
        )  # fmt: skip
    assert [r["Code"] for r in cancelled.value.response["CancellationReasons"]] == ["ConditionalCheckFailed"]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_item(TableName=MISSING_TABLE, Key=_key("a", "1"))


def test_only_clients_of_the_mock_take_the_direct_path(emulator: Emulator) -> None:
    direct.install()
    direct.install()  # idempotent
    real = emulator.client("dynamodb")
    assert direct._mocked(real)
    elsewhere = BaseClient.__new__(BaseClient)
    elsewhere.meta = type("Meta", (), {"endpoint_url": "http://localhost:8000"})()  # type: ignore[assignment]
    assert not direct._mocked(elsewhere)


def _moto_parse(operation_model: Any, params: dict[str, Any], client: Any) -> Any:
    """What moto's handler reads out of botocore's JSON body of `params`."""
    from moto.core.parse import PROTOCOL_PARSERS
    from moto.core.utils import get_service_model

    body = client._serializer.serialize_to_request(params, operation_model)["body"]
    moto_model = get_service_model("dynamodb").operation_model(operation_model.name)
    request: Any = {"method": "POST", "values": {}, "headers": {}, "body": body, "url_path": "/", "url_params": {}}
    return PROTOCOL_PARSERS["json"](moto_model, map_type=dict).parse(request)


def test_the_parameters_reach_moto_as_its_json_parser_reads_them(emulator: Emulator) -> None:
    client = emulator.client("dynamodb")
    extra = [
        ("put_item", {"TableName": TABLE, "Item": {**_key("x", "1"), "b": {"B": bytearray(b"\x00\x01")}}}),
        ("put_item", {"TableName": TABLE, "Item": {**_key("x", "1"), "b": {"B": "é text"}, "e": {"S": ""}}}),
        ("query", {"TableName": TABLE, "Limit": 1, "ScanIndexForward": True, "ExclusiveStartKey": _key("x", "1")}),
    ]
    checked = invalid = 0
    for name, params in [*CALLS, *extra]:
        operation_model = client.meta.service_model.operation_model(client.meta.method_to_api_mapping[name])
        try:
            expected = _moto_parse(operation_model, params, client)
        except ParamValidationError:
            with pytest.raises(ParamValidationError):
                direct._moto_params(client, operation_model, params)
            invalid += 1
            continue
        copied = direct._moto_params(client, operation_model, params)
        assert copied == expected, name
        assert type(copied) is type(expected)
        checked += 1
    assert (checked, invalid) == (len(CALLS) + len(extra) - invalid, 3)


def test_values_the_copy_does_not_reproduce_take_the_json_round_trip(emulator: Emulator) -> None:
    from botocore.config import Config

    emulator.create_resources()
    unchecked = boto3_client_without_validation(Config(parameter_validation=False))
    operation_model = unchecked.meta.service_model.operation_model("Query")
    params = {"TableName": TABLE, "KeyConditionExpression": "pk = :p", "Limit": "2",
              "ExpressionAttributeValues": {":p": {"S": "b"}}}  # fmt: skip
    assert direct._moto_params(unchecked, operation_model, params)["Limit"] == 2  # moto's int("2")
    through_botocore = _outcome(unchecked, "query", params)
    direct.install()
    assert _outcome(unchecked, "query", params) == through_botocore


def boto3_client_without_validation(config: Any) -> Any:
    import boto3

    return boto3.session.Session().client(
        "dynamodb", region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local", config=config
    )  # fmt: skip


@pytest.mark.parametrize(
    "attribute",
    [
        {"S": "x"},
        {"B": "AAE="},
        {"BS": ["AAE=", ""]},
        {"M": {"k": {"L": [{"N": "1"}, None, {"NULL": True}]}}},
        {"S": None},
        {"Unknown": "x"},
        {"S": "x", "N": "1"},
        {},
    ],
)
def test_attribute_values_are_read_as_botocore_reads_them(emulator: Emulator, attribute: dict[str, Any]) -> None:
    import json

    client = emulator.client("dynamodb")
    output_shape = client.meta.service_model.operation_model("GetItem").output_shape
    response = {
        "status_code": 200, "headers": {}, "context": {"operation_name": "GetItem"},
        "body": json.dumps({"Item": {"a": attribute, "b": {"L": [attribute]}}}).encode(),
    }  # fmt: skip

    def parse(parser: Any) -> Any:
        try:
            return parser.parse(dict(response), output_shape)
        except Exception as exc:
            return (type(exc), str(exc))

    assert parse(direct._attribute_value_parser(client._response_parser)) == parse(client._response_parser)
