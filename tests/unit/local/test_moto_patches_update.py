"""moto with the local runner's patches: an update expression is parsed once per string, and
sharing its tree changes no answer (other values and names under the same expression, new and
existing items, transactions, a failed condition, an expression that does not parse)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.local import moto_expressions
from tests.unit.local import test_moto_patches_reads as reads

TABLE = reads.TABLE
client = reads.client  # the reads module's fixture: moto with the patches applied, a (pk, sk) table
# The shape of the upload store's claim: SET with placeholders, an ADD-like increment, a REMOVE.
EXPRESSION = "SET #a = :a, #b = :b, #n = if_not_exists(#n, :zero) + :step REMOVE #gone"


def _shape(node: Any) -> Any:
    """A comparable picture of a parsed tree: node types and leaf values, all the way down."""
    children = getattr(node, "children", None)
    if children is None:
        return repr(node)
    return (type(node).__name__, tuple(_shape(child) for child in children))


def _update(client: Any, pk: str, names: dict[str, str], values: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return client.update_item(  # type: ignore[no-any-return]
        TableName=TABLE,
        Key={"pk": {"S": pk}, "sk": {"S": "s"}},
        UpdateExpression=EXPRESSION,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
        ReturnValues="ALL_NEW",
        **extra,
    )["Attributes"]


def _values(a: str, b: str, step: int) -> dict[str, Any]:
    return {":a": {"S": a}, ":b": {"N": b}, ":zero": {"N": "0"}, ":step": {"N": str(step)}}


def test_one_expression_serves_other_names_values_and_items_unchanged(client: Any) -> None:
    assert moto_expressions.UpdateExpressionParser.make is not moto_expressions._parse_update
    names_1 = {"#a": "owner", "#b": "size", "#n": "seq", "#gone": "lease"}
    names_2 = {"#a": "state", "#b": "version", "#n": "next", "#gone": "owner"}
    client.put_item(
        TableName=TABLE, Item={"pk": {"S": "old"}, "sk": {"S": "s"}, "lease": {"S": "x"}, "seq": {"N": "5"}}
    )
    before = moto_expressions._parsed_update.cache_info()

    first = _update(client, "new", names_1, _values("alice", "10", 1))  # creates the item
    second = _update(client, "old", names_1, _values("bob", "20", 3))  # existing item, REMOVE applies
    third = _update(client, "old", names_2, _values("none", "7", 2))  # other names, same string

    assert first == {
        "pk": {"S": "new"},
        "sk": {"S": "s"},
        "owner": {"S": "alice"},
        "size": {"N": "10"},
        "seq": {"N": "1"},
    }
    assert second == {
        "pk": {"S": "old"},
        "sk": {"S": "s"},
        "owner": {"S": "bob"},
        "size": {"N": "20"},
        "seq": {"N": "8"},
    }
    assert third == {
        "pk": {"S": "old"},
        "sk": {"S": "s"},
        "size": {"N": "20"},
        "seq": {"N": "8"},
        "state": {"S": "none"},
        "version": {"N": "7"},
        "next": {"N": "2"},
    }
    after = moto_expressions._parsed_update.cache_info()
    # Two parses per UpdateItem (handler and backend), one miss at most: the rest are hits.
    assert after.hits - before.hits >= 5
    assert after.misses - before.misses <= 1


def test_the_shared_tree_is_never_changed_by_the_calls_that_use_it(client: Any) -> None:
    names = {"#a": "owner", "#b": "size", "#n": "seq", "#gone": "lease"}
    _update(client, "k", names, _values("alice", "1", 1))
    shared = moto_expressions._parsed_update(EXPRESSION)
    picture = _shape(shared)
    assert moto_expressions._parsed_update(EXPRESSION) is shared  # the memo answers with the one tree
    _update(client, "k", names, _values("bob", "2", 4))
    client.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": {"pk": {"S": "t"}, "sk": {"S": "s"}},
                    "UpdateExpression": EXPRESSION,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": _values("carol", "3", 2),
                }
            }
        ]
    )
    with pytest.raises(ClientError) as failed:
        _update(client, "k", names, _values("dave", "4", 1), ConditionExpression="attribute_not_exists(pk)")
    assert failed.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert _shape(moto_expressions._parsed_update(EXPRESSION)) == picture
    item = client.get_item(TableName=TABLE, Key={"pk": {"S": "t"}, "sk": {"S": "s"}})["Item"]
    assert item == {"pk": {"S": "t"}, "sk": {"S": "s"}, "owner": {"S": "carol"}, "size": {"N": "3"}, "seq": {"N": "2"}}
    assert client.get_item(TableName=TABLE, Key={"pk": {"S": "k"}, "sk": {"S": "s"}})["Item"]["owner"] == {"S": "bob"}


@pytest.mark.parametrize("attempt", [1, 2])
def test_an_expression_that_does_not_parse_is_refused_every_time(client: Any, attempt: int) -> None:
    with pytest.raises(ClientError) as refused:
        client.update_item(
            TableName=TABLE,
            Key={"pk": {"S": "bad"}, "sk": {"S": "s"}},
            UpdateExpression="SET #a = = :a",
            ExpressionAttributeNames={"#a": "x"},
            ExpressionAttributeValues={":a": {"S": "v"}},
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "Item" not in client.get_item(TableName=TABLE, Key={"pk": {"S": "bad"}, "sk": {"S": "s"}})
