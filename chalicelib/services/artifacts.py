"""Harbor's artifact catalogue: list, read, delete and copy artifacts; their tags, accessories and
additions; and pull times recorded off the request path.

Authorisation follows Harbor's RBAC (`auth/rbac.py`): artifact list/read/create/delete, tag
list/create/delete, accessory list, artifact-addition read. The deletion rules live in
`ManifestService` (shared with `/v2` DELETE), and so do tag writes (`add_tag`, `delete_tag`), so
an immutability guard has one place to go.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib import processors
from chalicelib.core.artifacts import FILTER_MAX, Accessory, Artifact, Tag
from chalicelib.core.catalog import Repository
from chalicelib.core.digest import Digest, is_digest
from chalicelib.core.identity import Project
from chalicelib.core.manifest import parse_manifest
from chalicelib.core.reference import validate_name, validate_tag
from chalicelib.errors import BadRequest, ManifestUnknown, NotFound, Precondition

if TYPE_CHECKING:
    from chalicelib.services.immutability import ImmutabilityService
    from chalicelib.services.labels import LabelService
    from chalicelib.services.manifests import ManifestService
    from chalicelib.services.projects import ProjectService
    from chalicelib.stores.artifacts import ArtifactStore, ListedArtifact
    from chalicelib.stores.blobs import BlobMetaStore
    from chalicelib.stores.manifests import ManifestStore
    from chalicelib.stores.repositories import RepositoryStore


@dataclass(frozen=True, slots=True)
class Matcher:
    """A `q` filter: `matches(artifact, its tags, the ids of its labels)` -> kept or not, and
    whether it looks at tags or labels at all: what it does not look at is not read for every
    candidate (a tag Query per artifact), only for the page returned."""

    matches: Callable[[Artifact, list[Tag], list[int]], bool]
    uses_tags: bool = True
    uses_labels: bool = True


# Harbor lists every tag of each artifact; a list page stops at this many per artifact.
TAGS_PER_ARTIFACT = 100


Key = tuple[str, str]
"""(repository, digest): what identifies an artifact (a digest may sit in several repositories)."""


@dataclass(frozen=True, slots=True)
class Include:
    """What to read besides the artifacts themselves (Harbor's `with_*` flags)."""

    tags: bool = True
    accessories: bool = False
    labels: bool = False
    immutable: bool = False  # the immutable status of each listed tag


@dataclass(frozen=True, slots=True)
class Listing:
    """One page of a list: the items, the total, the cursor of the next page if any, the integer
    id of each repository on the page, and what was asked for: tags, accessories, labels (Harbor's
    label JSON) and which (repository, tag) pairs are immutable."""

    items: list[Artifact]
    total: int
    next_cursor: str | None = None
    tags: dict[Key, list[Tag]] = field(default_factory=dict)
    accessories: dict[Key, list[Accessory]] = field(default_factory=dict)
    labels: dict[Key, list[dict[str, Any]]] = field(default_factory=dict)
    immutable: frozenset[tuple[str, str]] = frozenset()
    repository_ids: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TagListing:
    items: list[Tag]
    total: int
    next_cursor: str | None
    immutable: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True, slots=True)
class PageRequest:
    page: int
    size: int
    cursor: str | None = None
    ascending: bool = False


class ArtifactService:
    def __init__(
        self,
        store: ArtifactStore,
        manifests: ManifestService,
        manifest_store: ManifestStore,
        projects: ProjectService,
        blobs: BlobMetaStore,
        *,
        repositories: RepositoryStore,
        labels: LabelService,
        immutability: ImmutabilityService,
    ) -> None:
        self._store = store
        self._manifests = manifests
        self._manifest_store = manifest_store
        self._projects = projects
        self._blobs = blobs
        self._repositories = repositories
        self._labels = labels
        self._immutability = immutability

    # Access.

    def repository(self, project: Project, repo: str) -> Repository:
        """The repository `repo` of `project`.

        One GetItem on the repository row, which also gives Harbor's integer id (the one
        `/repositories/{r}` shows; assigned here on first use), so artifact and tag JSON name
        the same `repository_id` without a read per item."""
        name = f"{project.name}/{repo}"
        validate_name(name)
        found = self._repositories.get(name)
        if found is None:
            raise NotFound(f"repository {name} not found")
        return self._repositories.ensure_id(found)

    # Artifacts.

    def resolve(self, repository: str, reference: str) -> Artifact:
        """An artifact by digest or tag; NotFound (Harbor's 404) otherwise."""
        try:
            digest = self._manifests.resolve(repository, reference)
        except ManifestUnknown:
            raise NotFound(f"artifact {repository}:{reference} not found") from None
        artifact = self._store.get(repository, digest)
        if artifact is None:
            raise NotFound(f"artifact {repository}@{digest} not found")
        return artifact

    def list_page(
        self, repository: Repository, page: PageRequest, include: Include, matches: Matcher | None = None
    ) -> Listing:
        """A page of the listed artifacts, newest push first unless `ascending`.

        Without a filter it costs a constant number of calls per page (stores/artifacts.py);
        with one, every listed artifact is read (bounded by FILTER_MAX) and filtered in memory."""
        name = repository.name
        known = {name: repository}
        if matches is None:
            offset = (page.page - 1) * page.size
            listed = self._store.listed_page(name, page.size, page.ascending, page.cursor, offset)
            items = self._store.artifacts_of(listed.items)
            return self._listing(items, self._store.listed_count(name), listed.next_cursor, include, known=known)
        return self._filtered(self._store.all_listed(name, page.ascending), page, include, matches, known)

    def list_project(self, project: Project, page: PageRequest, include: Include, matches: Matcher | None,
                     latest_in_repository: bool) -> Listing:  # fmt: skip
        """Harbor 2.9's project-wide list, newest push first across repositories.

        Not constant per page: it reads the listing keys of every repository of the project (a
        keys-only Query each, bounded by FILTER_MAX in all) and merges them by push time; only the
        page's rows are then fetched, unless a filter needs them all. The repository rows (one
        Query) carry the repositories' integer ids."""
        every: list[ListedArtifact] = []
        known = {r.name: r for r in self._repositories.find(project.name)}
        for repository in known:
            every += self._store.all_listed(repository, page.ascending)
            if len(every) > FILTER_MAX:
                raise BadRequest(f"the project holds too many artifacts to list at once (over {FILTER_MAX})")
        every.sort(key=lambda entry: entry.order, reverse=not page.ascending)
        if latest_in_repository:
            newest: dict[str, ListedArtifact] = {}
            for entry in every:
                newest.setdefault(entry.repository, entry)
            every = list(newest.values())
        if matches is not None:
            return self._filtered(every, page, include, matches, known)
        start = (page.page - 1) * page.size
        items = self._store.artifacts_of(every[start : start + page.size])
        return self._listing(items, len(every), None, include, known=known)

    def get(self, repository: Repository, reference: str, include: Include) -> Listing:
        """One artifact, as a one-item listing (with its tags, accessories and labels if asked)."""
        artifact = self.resolve(repository.name, reference)
        return self._listing([artifact], 1, None, include, known={repository.name: repository})

    def _filtered(self, every: list[ListedArtifact], page: PageRequest, include: Include, matches: Matcher,
                  known: dict[str, Repository]) -> Listing:  # fmt: skip
        """Every candidate read, with its tags and label ids (one Query per repository), then
        filtered in memory; bounded by FILTER_MAX."""
        candidates = self._store.artifacts_of(every)
        tags = self._tags(candidates) if matches.uses_tags else {}
        label_ids = {
            (repository, digest): ids
            for repository in ({a.repository for a in candidates} if matches.uses_labels else set())
            for digest, ids in self._labels.label_ids(repository).items()
        }
        kept = [a for a in candidates if matches.matches(a, tags.get(_key(a), []), label_ids.get(_key(a), []))]
        start = (page.page - 1) * page.size
        page_tags = tags if matches.uses_tags else None  # else read for the page only
        return self._listing(kept[start : start + page.size], len(kept), None, include, known=known, tags=page_tags)

    def _listing(self, items: list[Artifact], total: int, cursor: str | None, include: Include, *,
                 known: dict[str, Repository], tags: dict[Key, list[Tag]] | None = None) -> Listing:  # fmt: skip
        """A page with what `include` asks for. Each extra costs a bounded number of calls for
        the page, never one per item read in sequence: labels one Query per artifact (side by
        side) and one BatchGetItem; immutability nothing beyond the project's cached rules."""
        ids = {name: self._repositories.ensure_id(known[name]).repository_id for name in {a.repository for a in items}}
        if (include.tags or include.immutable) and tags is None:
            tags = self._tags(items)
        accessories: dict[Key, list[Accessory]] = {}
        if include.accessories and items:
            # One referrer Query and one tag read per artifact: run side by side, like the tag Queries.
            with ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
                found = pool.map(lambda a: self._store.accessories(a.repository, a.digest), items)
                accessories = {(a.repository, a.digest): acc for a, acc in zip(items, found, strict=True)}
        labels = self._label_views(items) if include.labels else {}
        every_tag = [t for on in (tags or {}).values() for t in on]
        immutable = self._immutable(every_tag) if include.immutable else frozenset()
        return Listing(items, total, cursor, tags if include.tags and tags else {}, accessories, labels, immutable, ids)

    def _label_views(self, items: list[Artifact]) -> dict[Key, list[dict[str, Any]]]:
        out: dict[Key, list[dict[str, Any]]] = {}
        for repository in {a.repository for a in items}:
            found = self._labels.labels_for(repository, [a.digest for a in items if a.repository == repository])
            out.update({(repository, digest): views for digest, views in found.items()})
        return out

    def _immutable(self, tags: list[Tag]) -> frozenset[tuple[str, str]]:
        """The (repository, tag) pairs an immutability rule protects: the rules are cached per
        project by the immutability service, so this costs no call per tag."""
        return frozenset((t.repository, t.name) for t in tags if self._immutability.protects(t.repository, t.name))

    def _tags(self, items: list[Artifact]) -> dict[Key, list[Tag]]:
        out: dict[Key, list[Tag]] = {}
        for repository in {a.repository for a in items}:
            digests = [a.digest for a in items if a.repository == repository]
            for digest, tags in self._store.tags_of(repository, digests, TAGS_PER_ARTIFACT).items():
                out[repository, digest] = tags
        return out

    def accessories(self, repository: str, reference: str) -> list[Accessory]:
        return self._store.accessories(repository, self.resolve(repository, reference).digest)

    def delete(self, repository: str, reference: str) -> None:
        artifact = self.resolve(repository, reference)
        self._manifests.delete_artifact(repository, artifact.digest)

    def copy(self, project: Project, repo: str, source: str, reference: str) -> str:
        """Harbor's copy: the artifact (children and accessories first) is linked into the target
        without copying a byte: blob links and manifest rows only, quota charged as a push;
        returns the digest."""
        target = validate_name(f"{project.name}/{repo}")
        artifact = self.resolve(source, reference)
        self._copy_tree(source, target, artifact.digest, set())
        for tag in self._store.tags_of(source, [artifact.digest], TAGS_PER_ARTIFACT).get(artifact.digest, []):
            self._copy_manifest(source, target, artifact.digest, tag.name)
        return artifact.digest

    def _copy_tree(self, source: str, target: str, digest: str, seen: set[str]) -> None:
        if digest in seen:
            return
        seen.add(digest)
        stored = self._manifest_store.get(source, digest)
        if stored is None:
            raise NotFound(f"artifact {source}@{digest} not found")
        parsed = parse_manifest(stored.body, stored.media_type, digest)
        for child in parsed.children:
            self._copy_tree(source, target, child, seen)
        sizes = self._blobs.linked(source, list(parsed.blobs))
        for blob, size in sizes.items():
            self._blobs.link(target, blob, size)
        self._copy_manifest(source, target, digest, digest)
        for accessory in self._store.accessory_digests(source, digest):
            self._copy_tree(source, target, accessory, seen)
        # cosign's legacy signature is found through its tag: carry the tag over too.
        for tag in self._store.tags_of(source, [digest], TAGS_PER_ARTIFACT).get(digest, []):
            if tag.name.endswith(".sig") and tag.name.startswith("sha256-"):
                self._copy_manifest(source, target, digest, tag.name)

    def _copy_manifest(self, source: str, target: str, digest: str, reference: str) -> None:
        stored = self._manifest_store.get(source, digest)
        if stored is None:
            raise NotFound(f"artifact {source}@{digest} not found")
        try:
            self._manifests.put(target, reference, stored.body, stored.media_type)
        except Precondition as exc:  # Harbor's copy moves the tag through its tag controller
            if is_digest(reference) or not self._immutability.protects(target, reference):
                raise
            raise self._immutability.immutable_error(target, reference, "updated") from exc

    # Tags.

    def tags(self, repository: str, reference: str, page: PageRequest,
             immutable: bool = False) -> tuple[Artifact, TagListing]:  # fmt: skip
        """A page of the artifact's tags in name order (constant work per page, as artifact lists),
        with their immutable status if asked."""
        artifact = self.resolve(repository, reference)
        offset = (page.page - 1) * page.size
        names = self._store.tag_name_page(repository, artifact.digest, page.size, page.cursor, offset)
        rows = self._store.tag_rows(repository, {artifact.digest: names.items}).get(artifact.digest, [])
        frozen = self._immutable(rows) if immutable else frozenset()
        total = self._store.tag_count(repository, artifact.digest)
        return artifact, TagListing(rows, total, names.next_cursor, frozen)

    def all_tags(self, repository: str, reference: str, immutable: bool = False) -> tuple[Artifact, TagListing]:
        """Every tag of the artifact (bounded by FILTER_MAX), for filtered or re-sorted tag lists."""
        artifact = self.resolve(repository, reference)
        rows = self._store.tags_of(repository, [artifact.digest], FILTER_MAX)[artifact.digest]
        return artifact, TagListing(rows, len(rows), None, self._immutable(rows) if immutable else frozenset())

    def add_tag(self, repository: str, reference: str, tag: str) -> None:
        self._manifests.add_tag(repository, self.resolve(repository, reference).digest, tag)

    def delete_tag(self, repository: str, reference: str, tag: str) -> None:
        validate_tag(tag)
        self._manifests.delete_tag(repository, self.resolve(repository, reference).digest, tag)

    # Additions.

    def addition(self, repository: str, reference: str, name: str) -> processors.Addition:
        digest = self.resolve(repository, reference).digest
        stored = self._manifest_store.get(repository, digest)
        if stored is None:
            raise NotFound(f"artifact {repository}@{digest} not found")
        parsed = parse_manifest(stored.body, stored.media_type, digest)
        return processors.addition(name, parsed, stored.body, self._manifests.blob_reader(parsed.blobs))


def _key(artifact: Artifact) -> Key:
    return artifact.repository, artifact.digest


def parse_copy_source(value: str | None) -> tuple[str, str]:
    """`from=<project>/<repo>@<digest>` or `<project>/<repo>:<tag>` -> (repository, reference)."""
    if not value:
        raise BadRequest("from is required: <project>/<repository>@<digest> or :<tag>")
    if "@" in value:
        name, _, reference = value.partition("@")
        if not is_digest(reference):
            raise BadRequest("from: not a valid digest", {"from": value[:300]})
        reference = str(Digest.parse(reference))
    else:
        name, sep, reference = value.rpartition(":")
        if not sep or "/" in reference:
            raise BadRequest("from must be <project>/<repository>@<digest> or :<tag>", {"from": value[:300]})
        validate_tag(reference)
    if "/" not in name:
        raise BadRequest("from must name a project and a repository", {"from": value[:300]})
    return validate_name(name), reference
