"""Tag retention evaluation (core/retention.py): templates at their edges, ties, untagged artifacts."""

from __future__ import annotations

import pytest

from chalicelib.core.retention import DAY, InvalidPolicy, Item, decide, parse_rule

NOW = 1_000 * DAY
ALL_REPOS = {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]}
ALL_TAGS = [{"kind": "doublestar", "decoration": "matches", "pattern": "**"}]


def rule(template: str, count: int | None = None, tags: list[dict[str, str]] | None = None) -> dict[str, object]:
    params = {template: count} if count is not None else {}
    return {"template": template, "params": params, "tag_selectors": tags or ALL_TAGS, "scope_selectors": ALL_REPOS}


def item(
    name: str, pushed_days_ago: float, pulled_days_ago: float | None = None, tags: tuple[str, ...] = ("t",)
) -> Item:
    pull = int(NOW - pulled_days_ago * DAY) if pulled_days_ago is not None else 0
    return Item(name, tags, (), int(NOW - pushed_days_ago * DAY), pull)


def kept(rules: list[dict[str, object]], items: list[Item]) -> set[str]:
    parsed = [parse_rule(r, n) for n, r in enumerate(rules)]
    return {i.digest for i in decide(parsed, "app", items, NOW, lambda i: False).retained}


def test_latest_pulled_never_counts_artifacts_never_pulled() -> None:
    assert kept([rule("latestPulledN", 5)], [item("a", 1), item("b", 2, 3)]) == {"b"}


def test_k_zero_retains_nothing_and_ties_are_broken_the_same_way_every_time() -> None:
    items = [item("a", 1), item("b", 1), item("c", 1)]
    assert kept([rule("latestPushedK", 0)], items) == set()
    first = kept([rule("latestPushedK", 2)], items)
    assert len(first) == 2 and all(kept([rule("latestPushedK", 2)], list(reversed(items))) == first for _ in range(3))


def test_n_days_is_inclusive_at_the_boundary() -> None:
    assert kept([rule("nDaysSinceLastPush", 2)], [item("edge", 2), item("old", 2.01)]) == {"edge"}
    assert kept([rule("nDaysSinceLastPull", 2)], [item("edge", 9, 2), item("never", 0)]) == {"edge"}


def test_latest_active_uses_the_later_of_push_and_pull() -> None:
    items = [item("pushed", 1), item("pulled", 9, 0.5), item("stale", 5, 4)]
    assert kept([rule("latestActiveK", 2)], items) == {"pushed", "pulled"}


def test_untagged_default_and_explicit() -> None:
    bare = item("bare", 1, tags=())
    assert kept([rule("always")], [bare]) == {"bare"}  # `matches` selects untagged artifacts by default
    no = [{**ALL_TAGS[0], "extras": '{"untagged": false}'}]
    assert kept([rule("always", tags=no)], [bare]) == set()


def test_a_rule_whose_scope_misses_the_repository_keeps_nothing_there() -> None:
    other = {**rule("always"), "scope_selectors": {"repository": [
        {"kind": "doublestar", "decoration": "repoMatches", "pattern": "tools"}]}}  # fmt: skip
    parsed = [parse_rule(other, 0), parse_rule(rule("nothing"), 1)]
    decision = decide(parsed, "app", [item("a", 1)], NOW, lambda i: False)
    assert [i.digest for i in decision.deleted] == ["a"]


def test_immutable_artifacts_are_kept_apart() -> None:
    parsed = [parse_rule(rule("nothing"), 0)]
    decision = decide(parsed, "app", [item("a", 1), item("b", 1)], NOW, lambda i: i.digest == "a")
    assert [i.digest for i in decision.immutable] == ["a"] and [i.digest for i in decision.deleted] == ["b"]


@pytest.mark.parametrize("value", [True, 1.5, "2", None, -1, 10_001])
def test_bad_parameters(value: object) -> None:
    with pytest.raises(InvalidPolicy):
        parse_rule({**rule("latestPushedK"), "params": {"latestPushedK": value}}, 0)
