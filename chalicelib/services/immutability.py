"""Tag immutability (Harbor's `pkg/immutable`): project rules that freeze matching tags.

A tag is immutable when an enabled rule of its project selects both its repository (the name inside
the project, `team/app` for `proj/team/app`) and the tag, with Harbor's doublestar selectors
(`core/selectors.py`). It is computed when asked, never stored on the tag, so a rule change applies
at once to every existing tag.

What it refuses (enforced here, called from the manifest service and, at merge, the tag API):
- moving an existing immutable tag to another manifest (a push to it), 412 PRECONDITION with
  Harbor's message. The first push of a new tag is allowed. Re-pushing the *same* manifest to an
  immutable tag is allowed too, a deliberate difference from Harbor (which refuses any push to an
  existing immutable tag): it changes nothing, and refusing it breaks CI retries and `docker push`
  of an unchanged image. The tag write itself is conditional (`tag absent or already on this
  digest`), so two racing first pushes of different manifests cannot both win;
- deleting an immutable tag, or a manifest that carries one.

Cost on the push path: the rules of a project are cached in-process for `cache_seconds`, including
"no rules", so a push to a project pays one GetItem per project per cache period (none otherwise)
and never a Query. Rule changes made through this process invalidate its cache at once; other
processes (other Lambda instances) see them within `cache_seconds`. A push that read the rules just
before a rule was created is not refused (Harbor has the same window).

A PUT replaces the whole rule (selectors, priority, `disabled`); Harbor's only toggles `disabled`
when that changed and ignores the rest of the body then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from chalicelib.core.clock import Clock, system_clock
from chalicelib.core.selectors import (
    DOUBLESTAR,
    REPOSITORY_DECORATIONS,
    TAG_DECORATIONS,
    Candidate,
    InvalidPattern,
    Selector,
)
from chalicelib.errors import BadRequest, Conflict, NotFound, Precondition
from chalicelib.events import Event, EventType
from chalicelib.services.project_documents import ProjectCache, change_versioned

if TYPE_CHECKING:
    from chalicelib.core.identity import Project
    from chalicelib.stores.immutability import ImmutabilityStore

ACTION = "immutable"
TEMPLATE = "immutable_template"
MAX_RULES = 15  # Harbor's limit per project
Change = Literal["deleted", "updated"]


@dataclass(frozen=True, slots=True)
class ImmutableRule:
    """One rule: exactly one tag selector and one repository selector, as Harbor evaluates them
    (its matcher reads only the first of each, so more would be silently ignored: refused here)."""

    rule_id: int
    priority: int
    disabled: bool
    tag: Selector
    repository: Selector

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What makes two rules the same rule (Harbor: "immutable rule already exists")."""
        return (self.tag.decoration, self.tag.pattern, self.repository.decoration, self.repository.pattern)

    def applies(self, repository: str, tag: str) -> bool:
        candidate = Candidate(repository=repository, tags=(tag,))
        return not self.disabled and self.repository.selects(candidate) and self.tag.selects(candidate)

    def record(self) -> dict[str, Any]:
        """Harbor's JSON shape (also what the store keeps)."""
        return {
            "id": self.rule_id,
            "priority": self.priority,
            "disabled": self.disabled,
            "action": ACTION,
            "template": TEMPLATE,
            "tag_selectors": [_selector_record(self.tag)],
            "scope_selectors": {"repository": [_selector_record(self.repository)]},
        }


def _selector_record(selector: Selector) -> dict[str, Any]:
    return {"kind": selector.kind, "decoration": selector.decoration, "pattern": selector.pattern}


def parse_rule(data: dict[str, Any], rule_id: int) -> ImmutableRule:
    """Validate Harbor's rule JSON (already type-checked by the API model); 400 on anything wrong."""
    if (data.get("action") or ACTION) != ACTION:  # absent or null: the only action there is
        raise BadRequest(f"action must be {ACTION!r}")
    if (data.get("template") or TEMPLATE) != TEMPLATE:
        raise BadRequest(f"template must be {TEMPLATE!r}")
    tags = data.get("tag_selectors") or []
    scopes = data.get("scope_selectors") or {}
    if len(tags) != 1:
        raise BadRequest("tag_selectors must hold exactly one selector")
    if set(scopes) != {"repository"} or len(scopes["repository"] or []) != 1:
        raise BadRequest("scope_selectors must be {repository: [one selector]}")
    priority = data.get("priority") or 0
    return ImmutableRule(
        rule_id=rule_id,
        priority=int(priority),
        disabled=bool(data.get("disabled") or False),
        tag=_selector(tags[0], TAG_DECORATIONS, "tag_selectors"),
        repository=_selector(scopes["repository"][0], REPOSITORY_DECORATIONS, "scope_selectors.repository"),
    )


def _selector(data: dict[str, Any], decorations: frozenset[str], where: str) -> Selector:
    kind, decoration, pattern = data.get("kind"), data.get("decoration"), data.get("pattern")
    if kind != DOUBLESTAR:
        raise BadRequest(f"{where}: kind must be {DOUBLESTAR!r}")
    if decoration not in decorations:
        raise BadRequest(f"{where}: decoration must be one of {', '.join(sorted(decorations))}")
    if not isinstance(pattern, str) or not pattern:
        raise BadRequest(f"{where}: pattern is required")
    try:
        return Selector(DOUBLESTAR, decoration, pattern)
    except InvalidPattern as exc:
        raise BadRequest(f"{where}: invalid pattern {pattern[:64]!r}: {exc}") from None


def _from_record(record: dict[str, Any]) -> ImmutableRule:
    return parse_rule(record, int(record["id"]))


class ImmutabilityService:
    def __init__(
        self,
        store: ImmutabilityStore,
        cache_seconds: float,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._cache: ProjectCache[tuple[ImmutableRule, ...]] = ProjectCache(cache_seconds, clock)

    # Rules (the /api/v2.0/projects/{p}/immutabletagrules resource).

    def rules(self, project: Project) -> list[ImmutableRule]:
        records, _ = self._store.load(project.name)
        return sorted((_from_record(r) for r in records), key=lambda r: r.rule_id)

    def create(self, project: Project, data: dict[str, Any]) -> ImmutableRule:
        rule = parse_rule(data, 0)
        rule = replace(rule, rule_id=self._store.new_id(), disabled=False)  # Harbor creates rules enabled

        def change(rules: list[ImmutableRule]) -> list[ImmutableRule]:
            if len(rules) >= MAX_RULES:
                raise BadRequest(f"a project has at most {MAX_RULES} immutable rules")
            _refuse_duplicate(rules, rule)
            return [*rules, rule]

        self._change(project.name, change)
        return rule

    def update(self, project: Project, rule_id: int, data: dict[str, Any]) -> None:
        if data.get("id") not in (None, rule_id):
            raise BadRequest("the immutable_rule_id doesn't match the id in the payload body")
        updated = parse_rule(data, rule_id)

        def change(rules: list[ImmutableRule]) -> list[ImmutableRule]:
            _find(rules, rule_id)
            _refuse_duplicate([r for r in rules if r.rule_id != rule_id], updated)
            return [updated if r.rule_id == rule_id else r for r in rules]

        self._change(project.name, change)

    def delete(self, project: Project, rule_id: int) -> None:

        def change(rules: list[ImmutableRule]) -> list[ImmutableRule]:
            _find(rules, rule_id)
            return [r for r in rules if r.rule_id != rule_id]

        self._change(project.name, change)

    def _change(self, project: str, change: Callable[[list[ImmutableRule]], list[ImmutableRule]]) -> None:
        """Read-modify-write on the version read; a concurrent writer makes us re-read and re-check."""

        def load() -> tuple[list[ImmutableRule], int]:
            records, version = self._store.load(project)
            return [_from_record(r) for r in records], version

        def save(rules: list[ImmutableRule], version: int) -> None:
            self._store.save(project, [r.record() for r in rules], version)

        change_versioned(load, save, change, lambda: self.forget(project), f"the immutable rules of project {project}")

    # Enforcement.

    def protects(self, repository: str, tag: str) -> bool:
        """Whether an enabled rule of the repository's project makes `tag` immutable there."""
        project, _, name = repository.partition("/")
        return any(rule.applies(name, tag) for rule in self._rules(project))

    def ensure_mutable(self, repository: str, tag: str, change: Change | None = None) -> None:
        """Raise the 412 Harbor answers when a request would change or remove an immutable tag."""
        if self.protects(repository, tag):
            raise self.immutable_error(repository, tag, change)

    def ensure_tags_mutable(self, repository: str, tags: Callable[[], Iterable[str]], change: Change) -> None:
        """Like `ensure_mutable` for every tag `tags()` lists (a manifest deleted by digest); the
        listing is not even asked for when the project has no enabled rule."""
        project = repository.partition("/")[0]
        if not any(not r.disabled for r in self._rules(project)):
            return
        for tag in tags():
            self.ensure_mutable(repository, tag, change)

    @staticmethod
    def immutable_error(repository: str, tag: str, change: Change | None = None) -> Precondition:
        """Harbor's texts, which its clients and API tests match: its /v2 push middleware's for a
        manifest PUT (`change` None), its tag controller's for API deletes and tag moves."""
        if change is not None:
            return Precondition(f"the tag {tag} configured as immutable, cannot be {change}")
        name = repository.partition("/")[2]
        return Precondition(f"Failed to process request due to '{name}:{tag}' configured as immutable.")

    def forget(self, project: str) -> None:
        self._cache.forget(project)

    def on_event(self, event: Event) -> None:
        """A deleted or re-created project must not keep the old project's cached rules."""
        if event.type in (EventType.DELETE_PROJECT, EventType.CREATE_PROJECT) and event.project:
            self.forget(event.project)

    def _rules(self, project: str) -> tuple[ImmutableRule, ...]:
        return self._cache.get(project, lambda: tuple(_from_record(r) for r in self._store.load(project)[0]))


def _find(rules: list[ImmutableRule], rule_id: int) -> ImmutableRule:
    for rule in rules:
        if rule.rule_id == rule_id:
            return rule
    raise NotFound(f"immutable rule {rule_id} not found")


def _refuse_duplicate(rules: list[ImmutableRule], rule: ImmutableRule) -> None:
    if any(r.key == rule.key for r in rules):
        raise Conflict("immutable rule already exists")
