"""moto's update and condition expressions as the local runner patches them (`moto_expressions`)
answer exactly what moto's own code answers: the same items after each update, the same errors for
the expressions moto refuses, in UpdateItem and in TransactWriteItems."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.local import moto_expressions
from tests.unit.local import test_moto_patches_reads as reads

TABLE = reads.TABLE
client = reads.client  # moto with the patches applied, a (pk, sk) table

# The item each case starts from.
START = {
    "n": {"N": "5"},
    "s": {"S": "text"},
    "l": {"L": [{"S": "a"}, {"S": "b"}, {"S": "c"}]},
    "m": {"M": {"x": {"N": "1"}, "deep": {"M": {"y": {"S": "z"}}}}},
    "ss": {"SS": ["one", "two", "three"]},
    "lease": {"S": "token"},
}
NAMES = {"#n": "n", "#s": "s", "#l": "l", "#m": "m", "#ss": "ss", "#lease": "lease", "#new": "new", "#k": "deep"}
VALUES = {
    ":one": {"N": "1"},
    ":z": {"N": "0"},
    ":big": {"N": "100"},
    ":a": {"S": "alpha"},
    ":b": {"S": "beta"},
    ":more": {"L": [{"S": "d"}]},
    ":empty": {"L": []},
    ":drop": {"SS": ["two"]},
    ":token": {"S": "token"},
}
# (update expression, condition expression or None): the shapes the registry's stores send, and
# expressions moto refuses (two clauses of a kind, overlapping paths, a key, a type mismatch,
# a missing value, a path into a missing map, a malformed condition).
CASES = [
    ("SET #s = :a, #new = if_not_exists(#new, :z) + :one ADD #n :one REMOVE #lease", None),
    ("SET #l = list_append(#l, :more), #m.x = #m.x + :one", None),
    ("SET #new = list_append(if_not_exists(#new, :empty), :more)", None),
    ("SET #m.#k.y = :b, #m.w = :a", None),
    ("REMOVE #l[0], #l[2]", None),
    ("DELETE #ss :drop", None),
    ("SET #n = #n - :one", "attribute_exists(#n) AND #n > :z"),
    ("SET #s = :b", "#n BETWEEN :big AND :big"),
    ("SET #s = :b REMOVE #lease", "#lease = :token AND (attribute_not_exists(#new) OR #n < :big)"),
    ("SET #s = :a SET #new = :b", None),
    ("ADD #n :one ADD #new :one", None),
    ("SET #s = :a, #s = :b", None),
    ("SET m.x = :a, m = :b", None),
    ("SET #s = :a ADD #s :one", None),
    ("SET pk = :a", None),
    ("SET #s = :missing", None),
    ("ADD #s :one", None),
    ("SET #new.x = :a", None),
    ("SET #s = :a", "#n = = :z"),
    ("SET #s = :a", "size(#l) > :one AND begins_with(#s, :a)"),
]


@pytest.fixture
def moto_own() -> Iterator[None]:
    """moto's own expression code for the test's duration, the patched code after it."""
    moto_expressions.uninstall()
    try:
        yield
    finally:
        moto_expressions.install()


def _outcome(client: Any, pk: str, expression: str, condition: str | None) -> tuple[Any, Any]:
    """(the item afterwards without its key, the error's code and message or None)."""
    key = {"pk": {"S": pk}, "sk": {"S": "s"}}
    client.put_item(TableName=TABLE, Item={**key, **START})
    used = set(re.findall(r"[#:]\w+", f"{expression} {condition or ''}"))
    used_names = {k: v for k, v in NAMES.items() if k in used}
    used_values = {k: v for k, v in VALUES.items() if k in used}
    arguments: dict[str, Any] = {"UpdateExpression": expression, "ExpressionAttributeNames": used_names}
    if used_values:
        arguments["ExpressionAttributeValues"] = used_values
    if condition:
        arguments["ConditionExpression"] = condition
    error = None
    try:
        client.update_item(TableName=TABLE, Key=key, **arguments)
    except ClientError as exc:
        error = (exc.response["Error"]["Code"], exc.response["Error"]["Message"])
    except ValueError as exc:  # moto raises a malformed condition's parse error as it is
        error = ("ValueError", str(exc))
    item = client.get_item(TableName=TABLE, Key=key)["Item"]
    return {k: v for k, v in item.items() if k not in key}, error


def _transaction(client: Any, pk: str) -> tuple[Any, Any]:
    keys = [{"pk": {"S": f"{pk}-{i}"}, "sk": {"S": "s"}} for i in range(2)]
    for key in keys:
        client.put_item(TableName=TABLE, Item={**key, **START})
    items = [
        {"Update": {"TableName": TABLE, "Key": keys[0], "UpdateExpression": "SET #s = :a, #n = #n + :one",
                    "ExpressionAttributeNames": {"#s": "s", "#n": "n"},
                    "ExpressionAttributeValues": {":a": {"S": "alpha"}, ":one": {"N": "1"}}}},
        {"Update": {"TableName": TABLE, "Key": keys[1], "UpdateExpression": "ADD #ss :drop REMOVE #l[1]",
                    "ConditionExpression": "attribute_exists(#lease)",
                    "ExpressionAttributeNames": {"#ss": "ss", "#l": "l", "#lease": "lease"},
                    "ExpressionAttributeValues": {":drop": {"SS": ["four"]}}}},
    ]  # fmt: skip
    client.transact_write_items(TransactItems=items)
    return tuple(client.get_item(TableName=TABLE, Key=key)["Item"] for key in keys), None


def test_every_case_answers_as_moto_does(client: Any, request: pytest.FixtureRequest) -> None:
    patched = [_outcome(client, f"patched-{i}", *case) for i, case in enumerate(CASES)]
    patched_tx = _transaction(client, "patched-tx")
    request.getfixturevalue("moto_own")
    own = [_outcome(client, f"own-{i}", *case) for i, case in enumerate(CASES)]
    own_tx = _transaction(client, "own-tx")
    assert patched == own
    assert [{**item, "pk": None} for item in patched_tx[0]] == [{**item, "pk": None} for item in own_tx[0]]
    # The cases are not vacuous: some update, some are refused, some conditions fail.
    errors = [error[0] for _, error in own if error]
    assert errors.count("ValidationException") >= 8 and errors.count("ValueError") == 1
    assert errors.count("ConditionalCheckFailedException") == 2
    assert sum(1 for item, error in own if error is None and item != START) >= 8


def test_a_refused_expression_is_refused_by_the_root_check(client: Any) -> None:
    """The two checks moto ran at every node still run (once, at the root)."""
    _, two_sets = _outcome(client, "twice", "SET #s = :a SET #new = :b", None)
    _, overlap = _outcome(client, "overlap", "SET m.x = :a, m = :b", None)
    assert two_sets is not None and "SET" in two_sets[1]
    assert overlap is not None and "overlap" in overlap[1]


def test_a_condition_is_lexed_once_and_each_call_gets_its_own_tokens(client: Any) -> None:
    condition = "#lease = :token AND #n > :z"
    before = moto_expressions._condition_tokens.cache_info()
    for value in ("token", "other", "token"):
        VALUES_ = {**VALUES, ":token": {"S": value}}
        key = {"pk": {"S": f"lex-{value}"}, "sk": {"S": "s"}}
        client.put_item(TableName=TABLE, Item={**key, **START})
        try:
            client.update_item(TableName=TABLE, Key=key, UpdateExpression="SET #s = :a", ConditionExpression=condition,
                               ExpressionAttributeNames={"#s": "s", "#lease": "lease", "#n": "n"},
                               ExpressionAttributeValues={k: VALUES_[k] for k in (":a", ":token", ":z")})  # fmt: skip
        except ClientError as exc:
            assert value == "other" and exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
        else:
            assert value == "token"
    after = moto_expressions._condition_tokens.cache_info()
    assert after.misses - before.misses <= 1 and after.hits - before.hits >= 5
    first = moto_expressions._lexed(moto_expressions.ConditionExpressionParser(condition, None, None))
    first.popleft()
    second = moto_expressions._lexed(moto_expressions.ConditionExpressionParser(condition, None, None))
    assert len(second) == len(first) + 1
