"""Harbor's `q` language: the string-to-AST table, the 400s, and in-memory evaluation semantics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.api.mgmt.query import (
    MAX_Q_LENGTH,
    AllOf,
    AnyOf,
    Exact,
    Fuzzy,
    InvalidQuery,
    Query,
    Range,
    parse_q,
)
from chalicelib.errors import ErrorCode, RegistryError

ALLOWED: dict[str, type] = {
    "name": str,
    "tags": str,
    "labels": int,
    "size": int,
    "push_time": datetime,
    "public": bool,
    "media_type": str,
}

T1 = datetime(2020, 4, 9, 2, 36, 0, tzinfo=UTC)
T2 = datetime(2020, 4, 10, 0, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (None, {}),
        ("", {}),
        ("   ", {}),
        ("name=library/nginx", {"name": Exact("library/nginx")}),
        ("name=~ngin", {"name": Fuzzy("ngin")}),
        ("size=42", {"size": Exact(42)}),
        ("size=-1", {"size": Exact(-1)}),
        ("public=true", {"public": Exact(True)}),
        ("public=FALSE", {"public": Exact(False)}),
        ("public=1", {"public": Exact(True)}),
        ("size=[10~20]", {"size": Range(10, 20)}),
        ("size=[10~]", {"size": Range(10, None)}),
        ("size=[~20]", {"size": Range(None, 20)}),
        ("size=[ 10 ~ 20 ]", {"size": Range(10, 20)}),
        ("size=[5~5]", {"size": Range(5, 5)}),
        ('push_time=["2020-04-09 02:36:00"~"2020-04-10 00:00:00"]', {"push_time": Range(T1, T2)}),
        ("push_time=[2020-04-09 02:36:00~2020-04-10 00:00:00]", {"push_time": Range(T1, T2)}),
        ("push_time=[2020-04-09 02:36:00~]", {"push_time": Range(T1, None)}),
        ("push_time=[~2020-04-10T00:00:00Z]", {"push_time": Range(None, T2)}),
        ("push_time=[~2020-04-10T02:00:00+02:00]", {"push_time": Range(None, T2)}),
        ('push_time="2020-04-09 02:36:00"', {"push_time": Exact(T1)}),
        ("tags={v1 v2 v3}", {"tags": AnyOf(("v1", "v2", "v3"))}),
        ("tags={  v1   v2 }", {"tags": AnyOf(("v1", "v2"))}),
        ("tags=(v1 v2)", {"tags": AllOf(("v1", "v2"))}),
        ("labels=(1 2)", {"labels": AllOf((1, 2))}),
        ("size={1 2}", {"size": AnyOf((1, 2))}),
        ('push_time={"2020-04-09 02:36:00" "2020-04-10 00:00:00"}', {"push_time": AnyOf((T1, T2))}),
        ('name="a,b"', {"name": Exact("a,b")}),
        ('name="~literal"', {"name": Exact("~literal")}),
        ('name="[not a range]"', {"name": Exact("[not a range]")}),
        ('name=~"with space"', {"name": Fuzzy("with space")}),
        ('name=""', {"name": Exact("")}),
        ('size="7"', {"size": Exact(7)}),
        ('tags={"a,b" "c d"}', {"tags": AnyOf(("a,b", "c d"))}),
        ("tags={a,b},name=x", {"tags": AnyOf(("a,b",)), "name": Exact("x")}),
        (
            "name=~nginx,size=[1~100],tags=(v1 v2),public=true",
            {"name": Fuzzy("nginx"), "size": Range(1, 100), "tags": AllOf(("v1", "v2")), "public": Exact(True)},
        ),
        (" name = nginx , size = 3 ", {"name": Exact("nginx"), "size": Exact(3)}),
        (
            "media_type=application/vnd.oci.image.manifest.v1+json",
            {"media_type": Exact("application/vnd.oci.image.manifest.v1+json")},
        ),
        (
            "media_type=application%2Fvnd.oci.image.index.v1%2Bjson",
            {"media_type": Exact("application/vnd.oci.image.index.v1+json")},
        ),
        ("tags=%7Ba+b%7D", {"tags": AnyOf(("a", "b"))}),
        ("push_time=%5B2020-04-09+02%3A36%3A00~%5D", {"push_time": Range(T1, None)}),
        ("name=~a%zz+b", {"name": Fuzzy("a%zz+b")}),
        ("name=a=b", {"name": Exact("a=b")}),
        ("name=a(b)", {"name": Exact("a(b)")}),
        # the portal encodes q twice; the remaining layer is undone like Harbor's url.QueryUnescape
        ("name%3D~ngin%2Csize%3D%5B1~%5D", {"name": Fuzzy("ngin"), "size": Range(1, None)}),
        ("push_time=[2020-04-09+02:36:00~]", {"push_time": Range(T1, None)}),
        ("name=100%", {"name": Exact("100%")}),
    ],
)
def test_parse_table(q: str | None, expected: dict[str, Any]) -> None:
    assert parse_q(q, ALLOWED) == Query(expected)


@pytest.mark.parametrize(
    ("q", "fragment"),
    [
        ("nope=1", '"nope"'),
        ("name=a,nope=~b", '"nope"'),
        ("size=abc", "integer"),
        ("size=1.5", "integer"),
        ("size=[1~x]", "integer"),
        ("labels=(1 two)", "integer"),
        ("push_time=yesterday", "time"),
        ("push_time=[2020-13-01 00:00:00~]", "time"),
        ("push_time=2020-04-09 25:00:00", "time"),
        ("public=maybe", "true or false"),
        ("tags={v1 v2", "unclosed"),
        ("tags=v1 v2}", "unbalanced"),
        ("tags={v1 v2)", "unbalanced"),
        ("size=[1~2", "unclosed"),
        ("tags=(v1", "unclosed"),
        ('name="abc', "quote"),
        ("tags={a} {b}", "brackets"),
        ("tags={a {b}}", "brackets"),
        ("size=[1~2]x", "malformed"),
        ("name=a,name=b", "more than once"),
        ("size=1,size=[1~2]", "more than once"),
        ("x" * (MAX_Q_LENGTH + 1), "too long"),
        ("name", "key=value"),
        ("=x", "key=value"),
        ("name=", "key=value"),
        ("name=a,", "key=value"),
        (",name=a", "key=value"),
        ("name=~", "fuzzy"),
        ("size=~1", "fuzzy"),
        ("tags={}", "empty list"),
        ("tags=(  )", "empty list"),
        ("size=[~]", "at least one bound"),
        ("size=[1 2]", "[min~max]"),
        ("size=[1~2~3]", "[min~max]"),
        ("size=[9~1]", "greater than max"),
        ("name=[a~b]", "range"),
    ],
)
def test_invalid_q_is_400(q: str, fragment: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        parse_q(q, ALLOWED)
    error = caught.value
    assert isinstance(error, RegistryError)
    assert error.code is ErrorCode.BAD_REQUEST
    assert error.http_status == 400
    assert fragment in error.message


def test_unknown_key_message_names_key_and_supported_keys() -> None:
    with pytest.raises(InvalidQuery) as caught:
        parse_q("colour=red", {"name": str, "size": int})
    assert caught.value.message == 'q: unknown key "colour" (supported: name, size)'


def test_length_cap_is_configurable_and_inclusive() -> None:
    q = "name=" + "a" * (MAX_Q_LENGTH - 5)
    assert parse_q(q, ALLOWED) == Query({"name": Exact("a" * (MAX_Q_LENGTH - 5))})
    with pytest.raises(InvalidQuery):
        parse_q("name=abcdef", ALLOWED, max_length=10)


def test_unsupported_allowed_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        parse_q("x=1", {"x": bytes})


def test_number_keys_take_decimal_values_and_ranges() -> None:
    assert parse_q("x=[7~9.8]", {"x": float}) == Query({"x": Range(7.0, 9.8)})
    assert parse_q("x=[~2]", {"x": float}) == Query({"x": Range(None, 2.0)})
    assert parse_q("x=7.5", {"x": float}) == Query({"x": Exact(7.5)})
    for bad in ("x=[a~2]", "x=1e5", "x=[9~2]", "x=1.", "x=.5"):
        with pytest.raises(InvalidQuery):
            parse_q(bad, {"x": float})


def test_terms_are_frozen_and_hashable() -> None:
    term = AnyOf(("a", "b"))
    with pytest.raises(AttributeError):
        term.values = ("c",)  # type: ignore[misc]
    assert {Exact(1), Exact(1), Fuzzy("x"), Range(1, None), AllOf((1,))} == {
        Exact(1),
        Fuzzy("x"),
        Range(1, None),
        AllOf((1,)),
    }


def test_query_helpers() -> None:
    query = parse_q("name=~a", ALLOWED)
    assert not query.is_empty
    assert query.get("name") == Fuzzy("a")
    assert query.get("size") is None
    assert Query().is_empty


# ----------------------------------------------------------------------------------------- matches

RECORD: dict[str, Any] = {
    "name": "library/nginx",
    "tags": ["latest", "v1.25", "stable"],
    "labels": [1, 3],
    "size": 2048,
    "push_time": datetime(2020, 4, 9, 12, 0, 0, tzinfo=UTC),
    "public": True,
    "media_type": None,
}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("", True),
        ("name=library/nginx", True),
        ("name=library/Nginx", False),
        ("name=~nginx", True),
        ("name=~NGINX", False),
        ("name=~rary/ng", True),
        ("name={library/nginx library/redis}", True),
        ("name={library/redis library/alpine}", False),
        ("name=(library/nginx)", True),
        ("name=(library/nginx library/redis)", False),
        ("size=2048", True),
        ("size=2047", False),
        ("size=[2048~2048]", True),
        ("size=[1~2047]", False),
        ("size=[2048~]", True),
        ("size=[2049~]", False),
        ("size=[~2048]", True),
        ("size={1 2048}", True),
        ("push_time=[2020-04-09 00:00:00~2020-04-10 00:00:00]", True),
        ("push_time=[2020-04-09 12:00:00~]", True),
        ("push_time=[2020-04-09 12:00:01~]", False),
        ("push_time=[~2020-04-09 11:59:59]", False),
        ('push_time="2020-04-09 12:00:00"', True),
        ("public=true", True),
        ("public=false", False),
        # list fields: Exact / Fuzzy / AnyOf / Range match any element; AllOf needs every value
        ("tags=latest", True),
        ("tags=v1", False),
        ("tags=~v1.", True),
        ("tags=~beta", False),
        ("tags={beta stable}", True),
        ("tags={beta rc}", False),
        ("tags=(latest stable)", True),
        ("tags=(latest beta)", False),
        ("tags=(latest)", True),
        ("labels=3", True),
        ("labels=(1 3)", True),
        ("labels=(1 2)", False),
        ("labels=[2~5]", True),
        ("labels=[4~]", False),
        # every term must hold
        ("name=~nginx,tags=latest,size=[1~]", True),
        ("name=~nginx,tags=beta", False),
        # None / missing fields match nothing
        ("media_type=x", False),
        ("media_type=~x", False),
        ("media_type={x y}", False),
        ("media_type=(x)", False),
    ],
)
def test_matches(q: str, expected: bool) -> None:
    assert parse_q(q, ALLOWED).matches(RECORD) is expected


def test_missing_field_matches_nothing() -> None:
    query = parse_q("size=[0~]", ALLOWED)
    assert not query.matches({})
    assert not query.matches({"size": None})


def test_matches_coerces_stored_representations() -> None:
    stored = {
        "size": Decimal("2048"),  # DynamoDB numbers
        "labels": [Decimal(1), Decimal(3)],
        "push_time": "2020-04-09T12:00:00+00:00",  # ISO strings
        "public": "true",  # Harbor project metadata stores booleans as strings
        "name": "library/nginx",
    }
    assert parse_q("size=2048", ALLOWED).matches(stored)
    assert parse_q("size=[2000~3000]", ALLOWED).matches(stored)
    assert parse_q("labels=(1 3)", ALLOWED).matches(stored)
    assert parse_q("push_time=[2020-04-09 11:00:00~2020-04-09 13:00:00]", ALLOWED).matches(stored)
    assert parse_q("public=true", ALLOWED).matches(stored)
    assert not parse_q("public=false", ALLOWED).matches(stored)
    assert parse_q("size=7", ALLOWED).matches({"size": "7"})


def test_naive_and_offset_times_compare_in_utc() -> None:
    query = parse_q("push_time=[2020-04-09 02:36:00~2020-04-09 02:36:00]", ALLOWED)
    assert query.matches({"push_time": datetime(2020, 4, 9, 2, 36)})  # naive: UTC
    tz = timezone(timedelta(hours=2))
    assert query.matches({"push_time": datetime(2020, 4, 9, 4, 36, tzinfo=tz)})
    assert not query.matches({"push_time": datetime(2020, 4, 9, 2, 36, tzinfo=tz)})


def test_uncoercible_values_do_not_match() -> None:
    assert not parse_q("size=1", ALLOWED).matches({"size": True})  # bool is not an int here
    assert not parse_q("size=1", ALLOWED).matches({"size": "one"})
    assert not parse_q("name=1", ALLOWED).matches({"name": 1})
    assert not parse_q("public=true", ALLOWED).matches({"public": 1})
    assert not parse_q("push_time=[2020-01-01 00:00:00~]", ALLOWED).matches({"push_time": "soon"})
    assert not parse_q("tags=~a", ALLOWED).matches({"tags": [1, None, "b"]})
    assert parse_q("tags=~b", ALLOWED).matches({"tags": [1, None, "b"]})


def test_allof_on_scalar_field_needs_every_value_equal() -> None:
    assert parse_q("name=(a a)", ALLOWED).matches({"name": "a"})
    assert not parse_q("name=(a b)", ALLOWED).matches({"name": "a"})


def test_filter() -> None:
    records = [{"name": "a", "size": 1}, {"name": "ab", "size": 5}, {"name": "b", "size": 9}]
    assert parse_q("name=~a,size=[2~]", ALLOWED).filter(records) == [records[1]]
