"""Harbor's tag retention policy (`src/pkg/retention`): parsing, validation and evaluation. Pure.

A policy is Harbor's JSON: algorithm `or`, rules with a template and its parameter, tag selectors
(doublestar `matches`/`excludes` with the `untagged` extra, and `label` `withLabels`/
`withoutLabels`), a repository scope selector, a schedule trigger and a project scope.

Evaluation, per repository, as Harbor's processor does it: the candidates are the repository's
artifacts; each enabled rule whose scope selects the repository keeps the candidates its tag
selectors select (ANDed) and its template retains; rules are ORed (a candidate is retained if any
rule retains it); every other candidate is deleted, except one that carries an immutable tag.
Repositories no enabled rule selects are not touched at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib.core.selectors import (
    DOUBLESTAR,
    EXCLUDES,
    LABEL,
    LABEL_DECORATIONS,
    MATCHES,
    REPO_EXCLUDES,
    REPO_MATCHES,
    REPOSITORY_DECORATIONS,
    TAG_DECORATIONS,
    Candidate,
    InvalidPattern,
    Selector,
    select_all,
)

ALGORITHM = "or"
ACTION = "retain"
DAY = 86_400
MAX_RULES = 15  # Harbor's portal limit per policy
MAX_COUNT = 10_000  # the largest K/N/days accepted (Harbor bounds them loosely; this keeps them sane)

# template -> its parameter (None: takes none). Harbor's names and parameter keys.
TEMPLATES: dict[str, str | None] = {
    "latestPushedK": "latestPushedK",
    "latestPulledN": "latestPulledN",
    "latestActiveK": "latestActiveK",
    "nDaysSinceLastPush": "nDaysSinceLastPush",
    "nDaysSinceLastPull": "nDaysSinceLastPull",
    "always": None,
    "nothing": None,
}


class InvalidPolicy(ValueError):
    """What is wrong with a policy, for a 400."""


@dataclass(frozen=True, slots=True)
class Rule:
    disabled: bool
    template: str
    count: int  # the template's parameter (K, N or days); 0 when it takes none
    tags: tuple[Selector, ...]
    repositories: tuple[Selector, ...]

    def selects_repository(self, repository: str) -> bool:
        return not self.disabled and select_all(self.repositories, Candidate(repository=repository))


@dataclass(frozen=True, slots=True)
class Item:
    """One artifact of a repository, as retention sees it (times in epoch seconds)."""

    digest: str
    tags: tuple[str, ...]
    labels: tuple[str, ...]
    push_time: int
    pull_time: int  # 0: never pulled

    def candidate(self, repository: str) -> Candidate:
        return Candidate(repository=repository, tags=self.tags, labels=self.labels)


@dataclass(frozen=True, slots=True)
class Decision:
    retained: tuple[Item, ...]
    deleted: tuple[Item, ...]
    immutable: tuple[Item, ...]  # would be deleted, kept because a tag is immutable


def parse_rules(rules: Iterable[dict[str, Any]]) -> list[Rule]:
    return [parse_rule(r, n) for n, r in enumerate(rules)]


def parse_rule(data: dict[str, Any], index: int) -> Rule:
    where = f"rules[{index}]"
    if (data.get("action") or ACTION) != ACTION:
        raise InvalidPolicy(f"{where}: action must be {ACTION!r}")
    template = data.get("template")
    if template not in TEMPLATES:
        raise InvalidPolicy(f"{where}: template must be one of {', '.join(TEMPLATES)}")
    key = TEMPLATES[template]
    count = 0
    if key is not None:
        params = data.get("params") or {}
        value = params.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise InvalidPolicy(f"{where}: params.{key} must be an integer")
        count = int(value)
        if not 0 <= count <= MAX_COUNT:
            raise InvalidPolicy(f"{where}: params.{key} must be between 0 and {MAX_COUNT}")
    tags = tuple(_selector(s, f"{where}.tag_selectors[{n}]", tag=True) for n, s in
                 enumerate(data.get("tag_selectors") or []))  # fmt: skip
    if not any(s.kind == DOUBLESTAR for s in tags):
        raise InvalidPolicy(f"{where}: tag_selectors needs a doublestar selector")
    scopes = data.get("scope_selectors") or {}
    if set(scopes) != {"repository"} or not scopes["repository"]:
        raise InvalidPolicy(f"{where}: scope_selectors must be {{repository: [selector, ...]}}")
    repositories = tuple(_selector(s, f"{where}.scope_selectors.repository[{n}]", tag=False)
                         for n, s in enumerate(scopes["repository"]))  # fmt: skip
    return Rule(bool(data.get("disabled") or False), template, count, tags, repositories)


def _selector(data: dict[str, Any], where: str, *, tag: bool) -> Selector:
    kind, decoration, pattern = data.get("kind"), data.get("decoration"), data.get("pattern")
    allowed = {DOUBLESTAR: TAG_DECORATIONS, LABEL: LABEL_DECORATIONS} if tag else {DOUBLESTAR: REPOSITORY_DECORATIONS}
    if kind not in allowed:
        raise InvalidPolicy(f"{where}: kind must be one of {', '.join(allowed)}")
    if decoration not in allowed[kind]:
        raise InvalidPolicy(f"{where}: decoration must be one of {', '.join(sorted(allowed[kind]))}")
    if not isinstance(pattern, str):
        raise InvalidPolicy(f"{where}: pattern must be a string")
    try:
        return Selector(kind, decoration, pattern, _untagged(data.get("extras"), where))
    except InvalidPattern as exc:
        raise InvalidPolicy(f"{where}: invalid pattern {pattern[:64]!r}: {exc}") from None


def _untagged(extras: Any, where: str) -> bool | None:
    """Harbor's `extras`, a string that should hold `{"untagged": true}`, read as Harbor's selector
    reads it: a JSON object sets `untagged` (false when the key is missing or null); anything that
    does not decode into one (Harbor's UI has sent `["untagged":true]`) keeps the default (None).
    Only a value that is not a string at all is refused, as Harbor's API refuses it."""
    if extras is not None and not isinstance(extras, str):
        raise InvalidPolicy(f'{where}: extras must be a string such as "{{\\"untagged\\": true}}"')
    return _decoded_untagged(extras) if extras else None


_UNDECODABLE = object()


def _decoded_untagged(extras: str) -> bool | None:
    """Go's `json.Unmarshal` into `struct{Untagged bool}`: null or a missing key leave false, a
    value that is no object (or a flag that is no boolean) is an error, which keeps the default."""
    try:
        value = json.loads(extras)
    except (json.JSONDecodeError, RecursionError):
        value = _UNDECODABLE
    if value is None:
        return False
    if not isinstance(value, dict):
        return None
    untagged = value.get("untagged", False)
    if untagged is None:
        return False
    return untagged if isinstance(untagged, bool) else None


def retained_by(rule: Rule, repository: str, items: list[Item], now: int) -> set[str]:
    """The digests one rule retains among a repository's items."""
    selected = [i for i in items if select_all(rule.tags, i.candidate(repository))]
    template, k = rule.template, rule.count
    chosen: list[Item]
    if template == "always":
        chosen = selected
    elif template == "nothing":
        chosen = []
    elif template == "latestPushedK":
        chosen = _latest(selected, k, lambda i: i.push_time)
    elif template == "latestPulledN":
        chosen = _latest([i for i in selected if i.pull_time], k, lambda i: i.pull_time)
    elif template == "latestActiveK":
        chosen = _latest(selected, k, lambda i: max(i.push_time, i.pull_time))
    elif template == "nDaysSinceLastPush":
        chosen = [i for i in selected if i.push_time >= now - k * DAY]
    else:  # nDaysSinceLastPull
        chosen = [i for i in selected if i.pull_time and i.pull_time >= now - k * DAY]
    return {i.digest for i in chosen}


def _latest(items: list[Item], k: int, when: Callable[[Item], int]) -> list[Item]:
    return sorted(items, key=lambda i: (when(i), i.digest), reverse=True)[:k]


def decide(rules: list[Rule], repository: str, items: list[Item], now: int,
           immutable: Callable[[Item], bool]) -> Decision:  # fmt: skip
    """What the enabled rules that select `repository` keep and delete there (rules ORed)."""
    active = [r for r in rules if r.selects_repository(repository)]
    keep: set[str] = set()
    for rule in active:
        keep |= retained_by(rule, repository, items, now)
    retained = [i for i in items if i.digest in keep]
    doomed = [i for i in items if i.digest not in keep]
    protected = [i for i in doomed if immutable(i)]
    deleted = [i for i in doomed if not immutable(i)]
    return Decision(tuple(retained), tuple(deleted), tuple(protected))


def metadatas() -> dict[str, Any]:
    """Harbor's `/retentions/metadatas`, as Harbor answers it: the templates and selectors its UI
    offers (`latestActiveK`, `nothing` and label selectors are accepted in a policy but not offered)."""

    def template(name: str, text: str, unit: str | None) -> dict[str, Any]:
        params = [{"type": "int", "unit": unit, "required": True}] if unit else []
        return {"rule_template": name, "display_text": text, "action": ACTION, "params": params}

    return {
        "templates": [
            template("latestPushedK", "the most recently pushed # artifacts", "COUNT"),
            template("latestPulledN", "the most recently pulled # artifacts", "COUNT"),
            template("nDaysSinceLastPush", "pushed within the last # days", "DAYS"),
            template("nDaysSinceLastPull", "pulled within the last # days", "DAYS"),
            template("always", "always", None),
        ],
        "scope_selectors": [{"display_text": "Repositories", "kind": DOUBLESTAR,
                             "decorations": [REPO_MATCHES, REPO_EXCLUDES]}],
        "tag_selectors": [{"display_text": "Tags", "kind": DOUBLESTAR, "decorations": [MATCHES, EXCLUDES]}],
    }  # fmt: skip
