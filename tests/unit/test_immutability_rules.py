"""ImmutabilityService's rule cache and rule parsing, with a fake store and clock (no AWS)."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.errors import BadRequest, Precondition
from chalicelib.services.immutability import ImmutabilityService, parse_rule


def _record(rule_id: int, tag: str = "v*", repo: str = "**", *, disabled: bool = False) -> dict[str, Any]:
    return {
        "id": rule_id,
        "priority": 0,
        "disabled": disabled,
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": tag}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": repo}]},
    }


class FakeStore:
    def __init__(self) -> None:
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.loads = 0
        self.during_load: Any = None

    def load(self, project: str) -> tuple[list[dict[str, Any]], int]:
        self.loads += 1
        if self.during_load is not None:
            self.during_load()
        return list(self.records.get(project, [])), 1


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def _service(cache_seconds: float = 10) -> tuple[ImmutabilityService, FakeStore, Clock]:
    store, clock = FakeStore(), Clock()
    return ImmutabilityService(store, cache_seconds=cache_seconds, clock=clock), store, clock


def test_rules_are_read_once_per_cache_period_even_when_there_are_none():
    service, store, clock = _service()
    assert not service.protects("proj/app", "v1")
    assert not service.protects("proj/other", "v2")
    assert store.loads == 1
    store.records["proj"] = [_record(1)]
    assert not service.protects("proj/app", "v1")  # still the cached "no rules"
    clock.now += 10.5
    assert service.protects("proj/app", "v1")
    assert store.loads == 2


def test_forget_drops_the_cached_rules_at_once():
    service, store, _clock = _service()
    assert not service.protects("proj/app", "v1")
    store.records["proj"] = [_record(1)]
    service.forget("proj")
    with pytest.raises(Precondition, match="'app:v1' configured as immutable"):
        service.ensure_mutable("proj/app", "v1")


def test_a_load_racing_with_a_rule_change_is_not_cached():
    service, store, _clock = _service()
    store.during_load = lambda: service.forget("proj")  # a rule change lands while we read
    service.protects("proj/app", "v1")
    store.during_load = None
    service.protects("proj/app", "v1")
    assert store.loads == 2


def test_no_cache_reads_every_time():
    service, store, _clock = _service(cache_seconds=0)
    for _ in range(3):
        service.protects("proj/app", "v1")
    assert store.loads == 3


def test_repository_is_matched_without_its_project_and_disabled_rules_do_nothing():
    service, store, _clock = _service()
    store.records["proj"] = [_record(1, "v*", "team/*"), _record(2, "**", "**", disabled=True)]
    assert service.protects("proj/team/app", "v1")
    assert not service.protects("proj/team/app", "latest")
    assert not service.protects("proj/team/sub/app", "v1")
    assert not service.protects("other/team/app", "v1")  # rules are per project


def test_digest_deletes_list_tags_only_when_a_rule_is_enabled():
    service, store, _clock = _service()
    asked: list[str] = []

    def tags() -> list[str]:
        asked.append("tags")
        return ["v1"]

    service.ensure_tags_mutable("proj/app", tags, "deleted")
    store.records["proj"] = [_record(1, disabled=True)]
    service.forget("proj")
    service.ensure_tags_mutable("proj/app", tags, "deleted")
    assert asked == []
    store.records["proj"] = [_record(1)]
    service.forget("proj")
    with pytest.raises(Precondition, match=r"^the tag v1 configured as immutable, cannot be deleted$"):
        service.ensure_tags_mutable("proj/app", tags, "deleted")
    assert asked == ["tags"]


def test_parse_rule_round_trips_harbor_json():
    rule = parse_rule(_record(7, "release-{a,b}", "team/**"), 7)
    assert rule.record() == {**_record(7, "release-{a,b}", "team/**"), "action": "immutable",
                             "template": "immutable_template"}  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        {"tag_selectors": []},
        {"scope_selectors": {"repository": []}},
        {"action": "retain"},
        {"tag_selectors": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "x"}]},
        {"tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "{x"}]},
    ],
)
def test_parse_rule_refuses(change):
    with pytest.raises(BadRequest):
        parse_rule({**_record(1), **change}, 1)
