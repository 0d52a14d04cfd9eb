"""core/reference.py: repository-name and tag grammar of the distribution spec."""

from __future__ import annotations

import pytest

from chalicelib.core.reference import NAME_MAX_LENGTH, project_of, validate_name, validate_tag
from chalicelib.errors import NameInvalid, TagInvalid


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "library/ubuntu",
        "a/b/c/d/e/f",
        "a0",
        "0a",
        "a.b",
        "a_b",
        "a__b",
        "a-b",
        "a---b",
        "a.b-c_d__e/f",
        "x" * NAME_MAX_LENGTH,
        "/".join(["abcdefghij"] * 23) + "/ab",
    ],
)
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "Library/ubuntu",
        "a//b",
        "/a",
        "a/",
        "a-",
        "-a",
        "_a",
        "a_",
        ".a",
        "a.",
        "a..b",
        "a___b",
        "a._b",
        "a/./b",
        "a/../b",
        "a b",
        "a:b",
        "a@b",
        "a;b",
        "ä",
        "a\n",
        "x" * (NAME_MAX_LENGTH + 1),
        "/".join(["abcdefghij"] * 23) + "/abc",
    ],
)
def test_invalid_names(name):
    with pytest.raises(NameInvalid) as info:
        validate_name(name)
    assert info.value.code.name == "NAME_INVALID"
    assert info.value.http_status == 400


def test_name_max_length_is_255():
    assert NAME_MAX_LENGTH == 255


@pytest.mark.parametrize(
    "tag",
    [
        "latest",
        "v1.0.0",
        "1",
        "_",
        "_a",
        "A",
        "a-b",
        "a_b",
        "a.b",
        "Z9",
        "a" * 128,
        "_" + "-" * 127,
        "sha256-" + "a" * 64,
    ],
)
def test_valid_tags(tag):
    assert validate_tag(tag) == tag


@pytest.mark.parametrize(
    "tag",
    ["", "-a", ".a", "a" * 129, "a+b", "a/b", "a:b", "a b", "ä", "a\n", "a@b", "sha256:" + "a" * 64],
)
def test_invalid_tags(tag):
    with pytest.raises(TagInvalid) as info:
        validate_tag(tag)
    assert info.value.code.name == "TAG_INVALID"
    assert info.value.http_status == 400


@pytest.mark.parametrize(
    ("name", "project"),
    [("library/ubuntu", "library"), ("a", "a"), ("a/b/c", "a"), ("team-x/app", "team-x")],
)
def test_project_is_the_first_component(name, project):
    assert project_of(name) == project
