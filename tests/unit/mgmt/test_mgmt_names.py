"""Double-encoded repository names in paths, and name-or-id path segments."""

from __future__ import annotations

import pytest

from chalicelib.api.mgmt.names import decode_repository_name, is_resource_name


@pytest.mark.parametrize(
    ("path_value", "expected"),
    [
        ("nginx", "nginx"),
        ("a%2Fb", "a/b"),  # what the framework leaves of a%252Fb
        ("a%2fb", "a/b"),
        ("a%2Fb%2Fc", "a/b/c"),
        ("a/b", "a/b"),  # already plain
        ("a%252Fb", "a/b"),  # a front end that decoded nothing
        ("my-repo_1.0", "my-repo_1.0"),
        ("a+b", "a+b"),  # path encoding: plus is not a space
        ("", ""),
    ],
)
def test_decode_repository_name(path_value: str, expected: str) -> None:
    assert decode_repository_name(path_value) == expected


def test_decode_is_bounded() -> None:
    # a triple-encoded slash is decoded twice only; the leftover % fails name validation later
    assert decode_repository_name("a%25252Fb") == "a%2Fb"


@pytest.mark.parametrize(
    ("value", "header", "expected"),
    [
        ("library", None, True),
        ("123", None, False),
        ("123", "true", True),
        ("123", "TRUE", True),
        ("123", " True ", True),
        ("123", "false", False),
        ("123", "", False),
        ("123", "yes", False),
        ("library", "false", True),  # a non-numeric value is a name whatever the header says
        ("12a", None, True),
        ("-1", None, True),
        ("1.0", None, True),
        ("\u0661\u0662", None, True),  # non-ASCII digits are not an id
        ("", None, True),
    ],
)
def test_is_resource_name(value: str, header: str | None, expected: bool) -> None:
    assert is_resource_name(value, header) is expected
