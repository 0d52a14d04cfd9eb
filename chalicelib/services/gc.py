"""Non-blocking garbage collection with Harbor's protocol (docs/operations.md).

The registry stays writable throughout. A run is a Step Functions execution of
`infra/statemachines/gc.asl.json`; each phase below is one Task handler:

1. `begin`: the job becomes Running; its window cutoff is `started_at - window`.
2. `delete_untagged` (optional): untagged artifacts (found by a parallel Scan of the `REPO#`
   partitions only) are deleted through `ManifestService.delete`, as a client deleting them would
   (their tags, references and quota go with them).
3. `mark`: one parallel Scan of the table (`_SCAN_SEGMENTS` segments, a reader thread each; the
   only full read, and not a request path) gives every blob row, project-blob row, reference row,
   manifest, link and live upload session (tags and manifest bodies' children only when a dry run
   simulates step 2: the view's size is what bounds one invocation's memory). Project-blob
   associations nothing references any more and older than the window are released (Harbor's
   association cleanup, through `ProjectStore.release_blob`, which never uncounts a blob a
   concurrent push references meanwhile). Candidates are blobs no project holds, untouched for a window:
   each is marked `delete` by a write conditional on the version read, and written to one of
   `workers` shards. Blobs an interrupted run left `deleting` are taken over. Marking stops at a
   time budget per invocation (`_MARK_BUDGET_SECONDS`, under the Lambda's 15 minutes) and the state
   machine calls `mark` again: the next call scans again and takes the blobs whose candidate row of
   this run has their current version as marked (one batch read per 100, no write), so a resumed
   mark marks and counts nothing twice, and a blob a client used between two calls is no
   candidate any more (its stale candidate row loses at the claim). The call that finishes deletes
   orphan objects (under `blobs/` with no row, under `manifests/` with no manifest, upload staging
   with no live session; all older than the window). A mark that dies (its Lambda killed) fails
   the run; the next run re-marks what it left `delete` under its own job.
4. `sweep` (a Map over the shards, `workers` at a time): each candidate is claimed `deleting` by a
   write conditional on the marked version (a client that touched it since wins and the blob is
   skipped), its object deleted, its links removed, and its row turned into a tombstone in the
   same transaction that removes the candidate and counts it; so a sweep stopped midway resumes in
   the next run and counts nothing twice.
5. `finish`: the counts are summed, every project's usage is recomputed, the job ends Success.

A dry run reads and computes the same way (simulating steps 2 and the association cleanup) and
writes nothing but the job's own record: its `freed_space`, `purged_blobs` and `purged_manifests`
are what a real run on the same data would report.
"""

from __future__ import annotations

import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.core.jobs import Job, JobStatus, Trigger, VendorType
from chalicelib.core.manifest import parse_manifest
from chalicelib.core.reference import project_of
from chalicelib.errors import BadRequest, Conflict, ReferencedByOthers
from chalicelib.services.jobs import JobEnded
from chalicelib.stores.gc import (
    BlobReference,
    BlobState,
    Candidate,
    GcRow,
    Link,
    ManifestEntry,
    ProjectBlob,
    TagEntry,
    UploadEntry,
)

if TYPE_CHECKING:
    from chalicelib.services.jobs import JobService
    from chalicelib.services.manifests import ManifestService
    from chalicelib.stores.gc import GcStore
    from chalicelib.stores.manifests import ManifestStore
    from chalicelib.stores.projects import ProjectStore

VENDOR = VendorType.GARBAGE_COLLECTION
_SWEEP_BATCH = 100
_SWEEP_BUDGET_SECONDS = 600.0  # per Task invocation; the state machine loops until a shard is empty
_LOG_DIGESTS = 50
_MARK_THREADS = 16
_MARK_CHUNK = 1000
_MARK_BUDGET_SECONDS = 600.0  # per Task invocation (Lambda timeout 900 s): the state machine calls again
_SCAN_SEGMENTS = 8  # parallel Scan segments (one reader thread each) for the mark's view
# The parts of the table each phase reads: the mark needs blobs, projects (associations and
# references), repositories (links, manifests, tags) and upload sessions; deleting untagged
# artifacts only repositories. Every other partition (jobs, users, audit, GC candidates...) is
# filtered out.
_MARK_PARTS = ("blobs", "projects", "repositories", "uploads")
_UNTAGGED_PARTS = ("repositories",)


@dataclass(frozen=True)
class GcParameters:
    delete_untagged: bool = True
    dry_run: bool = False
    workers: int = 1

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> GcParameters:
        unknown = sorted(set(raw) - {"delete_untagged", "dry_run", "workers", "time_window", "delete_tag"})
        if unknown:
            raise BadRequest(f"unknown GC parameters: {', '.join(unknown)}")
        delete_untagged, dry_run = raw.get("delete_untagged", True), raw.get("dry_run", False)
        workers = raw.get("workers", 1)
        if not isinstance(delete_untagged, bool) or not isinstance(dry_run, bool):
            raise BadRequest("delete_untagged and dry_run must be booleans")
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 10:
            raise BadRequest("workers must be an integer from 1 to 10", {"workers": str(workers)[:20]})
        return cls(delete_untagged, dry_run, workers)

    def as_dict(self) -> dict[str, Any]:
        return {"delete_untagged": self.delete_untagged, "dry_run": self.dry_run, "workers": self.workers}


@dataclass(frozen=True, slots=True)
class _Manifest:
    children: tuple[str, ...]
    subject: str | None
    refs_in_body: bool


@dataclass
class GcView:
    """Everything the mark phase decides from, built from one (parallel) Scan.

    Its size is what bounds a mark phase in one Lambda (10 GB): a few hundred bytes per blob
    row, project-blob row, reference and link. Each digest string is interned, so the rows that
    name the same blob share one copy. Without `detail` (a real run deletes untagged artifacts
    in its own phase, so the mark never simulates it) manifests are kept as bare digests (for
    the orphan check) and tags are not kept at all."""

    detail: bool = True
    blobs: dict[str, BlobState] = field(default_factory=dict)
    held: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))  # project -> digest -> since
    refs: dict[str, dict[str, set[tuple[str, str]]]] = field(default_factory=lambda: defaultdict(dict))
    links: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # digest -> repositories
    manifests: dict[str, dict[str, _Manifest]] = field(default_factory=lambda: defaultdict(dict))
    tagged: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # repo -> digests with tags
    manifest_digests: set[str] = field(default_factory=set)  # of every repository
    uploads: set[str] = field(default_factory=set)
    upload_keys: set[str] = field(default_factory=set)

    def add(self, row: GcRow) -> None:
        match row:
            case BlobState():
                self.blobs[row.digest] = row
            case ProjectBlob():
                self.held[row.project][row.digest] = row.since
            case BlobReference():
                self.refs[row.project].setdefault(row.digest, set()).add((row.repository, row.manifest))
            case Link():
                self.links[row.digest].append(row.repository)
            case ManifestEntry():
                self.manifest_digests.add(row.digest)
                if self.detail:
                    self.manifests[row.repository][row.digest] = _Manifest(row.children, row.subject, row.refs_in_body)
            case TagEntry():
                if self.detail:
                    self.tagged[row.repository].add(row.digest)
            case UploadEntry():
                self.uploads.add(row.upload_id)
                self.upload_keys.update(row.chunk_keys)

    def untagged(self, children_of: Callable[[str, str], tuple[str, ...]]) -> list[tuple[str, str]]:
        """Artifacts GC deletes with `delete_untagged`: no tag, not a child of a kept index, not an
        accessory of a kept subject (deleted together with what they belong to, as in Harbor)."""
        doomed: list[tuple[str, str]] = []
        for repository, manifests in self.manifests.items():
            tagged = self.tagged.get(repository, set())
            parents: dict[str, set[str]] = defaultdict(set)
            for digest, m in manifests.items():
                for child in children_of(repository, digest) if m.refs_in_body else m.children:
                    parents[child].add(digest)
            gone: set[str] = set()
            changed = True
            while changed:
                changed = False
                for digest, m in manifests.items():
                    if digest in gone or digest in tagged or parents[digest] - gone:
                        continue
                    if m.subject and m.subject in manifests and m.subject not in gone:
                        continue
                    gone.add(digest)
                    changed = True
            doomed.extend((repository, d) for d in sorted(gone))
        return doomed

    def drop_references(self, repository: str, manifest: str) -> list[tuple[str, str]]:
        """Simulate deleting a manifest: remove its references; returns the (project, digest)
        pairs no manifest of the project references any more (released, like untrack)."""
        project = project_of(repository)
        released: list[tuple[str, str]] = []
        for digest, holders in self.refs.get(project, {}).items():
            if (repository, manifest) in holders:
                holders.discard((repository, manifest))
                if not holders:
                    released.append((project, digest))
        for pair in released:
            self.held[pair[0]].pop(pair[1], None)
        return released

    def unreferenced(self, cutoff: int) -> list[tuple[str, str]]:
        """Project associations nothing in the project references, older than the window."""
        found: list[tuple[str, str]] = []
        for project, digests in self.held.items():
            refs = self.refs.get(project, {})
            for digest, since in digests.items():
                blob = self.blobs.get(digest)
                touched = max(since, blob.updated_at if blob else 0)
                if not refs.get(digest) and touched <= cutoff:
                    found.append((project, digest))
        return found

    def candidates(self, cutoff: int) -> list[tuple[str, BlobState]]:
        held = {d for digests in self.held.values() for d in digests}
        out: list[tuple[str, BlobState]] = []
        for digest, blob in self.blobs.items():
            if blob.state == "deleting" or (
                blob.state in ("none", "delete", "deletefailed") and digest not in held and blob.updated_at <= cutoff
            ):
                out.append((digest, blob))
        return sorted(out)


class GcService:
    def __init__(self, jobs: JobService, store: GcStore, manifests: ManifestService, manifest_store: ManifestStore,
                 projects: ProjectStore, *, window_seconds: int, tombstone_seconds: int,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._jobs = jobs
        self._clock = clock
        self._store = store
        self._manifests = manifests
        self._manifest_store = manifest_store
        self._projects = projects
        self._window = window_seconds
        self._tombstone = tombstone_seconds
        # Tests pause here (phase name, job id) to interleave pushes with a run.
        self.pause: Callable[[str, int], None] = lambda phase, job_id: None
        self.sweep_batch = _SWEEP_BATCH
        self.scan_segments = _SCAN_SEGMENTS
        self.mark_budget = _MARK_BUDGET_SECONDS

    # The API side.

    def start(self, parameters: dict[str, Any], trigger: Trigger = Trigger.MANUAL) -> Job:
        params = GcParameters.parse(parameters)
        return self._jobs.submit(VENDOR, trigger, params.as_dict())

    # Phases (Step Functions Task handlers call these).

    def begin(self, job_id: int) -> dict[str, Any]:
        job = self._jobs.begin(job_id)
        params = GcParameters.parse(job.parameters)
        self.pause("begin", job_id)
        self._jobs.log(job_id, f"GC started: {params.as_dict()}, window {self._window} s, cutoff {self._cutoff(job)}")
        shards = [{"job_id": job_id, "shard": n} for n in range(params.workers)]
        return {"job_id": job_id, "workers": params.workers, "shards": shards}

    def delete_untagged(self, job_id: int) -> None:
        job = self._jobs.check(job_id)
        params = GcParameters.parse(job.parameters)
        self.pause("delete_untagged", job_id)
        if not params.delete_untagged or params.dry_run:
            return
        view = self._view(job_id, _UNTAGGED_PARTS, detail=True)
        deleted = 0
        for repository, digest in view.untagged(self._children_of):
            self._jobs.check(job_id)
            try:
                if not self._manifests.delete_untagged(repository, digest):
                    continue  # tagged since the scan, or gone with an index or subject deleted before it
            except (ReferencedByOthers, Conflict) as exc:
                # An index adopted it, or it kept changing: it stays.
                self._jobs.log(job_id, f"kept {repository}@{digest}: {exc.message}")
                continue
            deleted += 1
            if deleted <= _LOG_DIGESTS:
                self._jobs.log(job_id, f"deleted untagged artifact {repository}@{digest}")
        self._jobs.set_counts(job_id, {**job.counts, "purged_manifests": deleted})
        self._jobs.log(job_id, f"deleted {deleted} untagged artifacts")

    def mark(self, job_id: int) -> bool:
        """Mark for up to a time budget; True if candidates remain unmarked (call again).

        A call that goes on reads the table again (the only way to see what changed meanwhile)
        and takes the blobs this run already marked as they are: each has its candidate row in
        this run's shard at the version the blob still has, found with one batch read per 100
        instead of a write each. Every call marks at least one chunk, so the run progresses even
        when the read alone takes the budget. Orphans are removed by the call that finishes."""
        deadline = time.monotonic() + self.mark_budget
        job = self._jobs.check(job_id)
        params = GcParameters.parse(job.parameters)
        cutoff = self._cutoff(job)
        self.pause("mark", job_id)
        view = self._view(job_id, _MARK_PARTS, detail=params.dry_run and params.delete_untagged)
        purged_manifests = job.counts.get("purged_manifests", 0)
        if params.dry_run:
            doomed = view.untagged(self._children_of) if params.delete_untagged else []
            for repository, digest in doomed:
                view.drop_references(repository, digest)
            purged_manifests = len(doomed)
        released = view.unreferenced(cutoff)
        for project, digest in released:
            view.held[project].pop(digest, None)
            if not params.dry_run:
                self._release(project, digest)
        self._jobs.log(job_id, f"{len(released)} project associations nothing references were released")
        found = view.candidates(cutoff)
        self._expire_tombstones(view, params.dry_run)
        if params.dry_run:
            marked = [Candidate(d, b.version, b.size, []) for d, b in found]
        else:
            started = job.started_at or job.created_at
            marked, done = self._mark(job_id, params.workers, view, found, cutoff, started=started, deadline=deadline)
            if not done:
                self._jobs.log(job_id, f"marked {len(marked)} of {len(found)} candidates within the time budget; "
                                       "marking goes on in the next invocation")  # fmt: skip
                return True
        orphans, orphan_bytes = self._orphans(job_id, view, cutoff, params.dry_run)
        freed = sum(c.size for c in marked)
        counts = {"purged_manifests": purged_manifests, "candidates": len(marked), "orphan_objects": orphans,
                  "orphan_space": orphan_bytes}  # fmt: skip
        if params.dry_run:
            counts.update(purged_blobs=len(marked), freed_space=freed + orphan_bytes)
        self._jobs.set_counts(job_id, counts)
        for c in marked[:_LOG_DIGESTS]:
            self._jobs.log(job_id, f"blob eligible for deletion: {c.digest} ({c.size} bytes)")
        # Harbor's wording, which its clients and scripts read from the job log.
        self._jobs.log(job_id, f"{len(marked)} blobs and {purged_manifests} manifests eligible for deletion")
        self._jobs.log(job_id, f"{orphans} orphan objects ({orphan_bytes} bytes) eligible for deletion")
        self._jobs.log(job_id, f"The GC could free up {harbor_size(freed + orphan_bytes)} space, "
                               "the size is a rough estimation.")  # fmt: skip
        return False

    def sweep(self, job_id: int, shard: int) -> bool:
        """Sweep one shard for up to a time budget; True if candidates remain (call again)."""
        deadline = time.monotonic() + _SWEEP_BUDGET_SECONDS
        kept = 0
        while time.monotonic() < deadline:
            self._jobs.check(job_id)
            batch = self._store.candidates(job_id, shard, self.sweep_batch)
            if not batch:
                return False
            self.pause("sweep", job_id)
            claimed = [c for c in batch if self._store.claim(c.digest, c.version)]
            for c in batch:
                if c not in claimed:
                    self._store.drop_candidate(job_id, shard, c.digest)
                    kept += 1
                    if kept <= _LOG_DIGESTS:
                        self._jobs.log(job_id, f"kept blob {c.digest}: a client used it after it was marked")
            if not claimed:
                continue
            self.pause("claimed", job_id)
            # Stopped now: the claimed blobs stay `deleting` (invisible) and the next run takes them over.
            self._jobs.check(job_id)
            self._store.delete_blob_objects([c.digest for c in claimed])
            for c in claimed:
                if c.repositories:
                    self._store.unlink(c.digest, c.repositories)
                if not self._store.commit_swept(job_id, shard, c, self._tombstone):
                    self._store.drop_candidate(job_id, shard, c.digest)  # never loop on one candidate
        return True

    def finish(self, job_id: int, workers: int) -> None:
        job = self._jobs.check(job_id)
        params = GcParameters.parse(job.parameters)
        self.pause("finish", job_id)
        counts = dict(job.counts)
        if not params.dry_run:
            swept = [self._store.shard_counts(job_id, n) for n in range(workers)]
            counts["purged_blobs"] = sum(n for n, _ in swept)
            counts["freed_space"] = sum(size for _, size in swept) + counts.get("orphan_space", 0)
            for project in self._projects.names():
                changed = self._store.recompute_usage(project)
                if changed:
                    self._jobs.log(job_id, f"project {project}: usage {changed[0]} -> {changed[1]} bytes")
        counts.setdefault("purged_blobs", 0)
        counts.setdefault("freed_space", 0)
        if not params.dry_run:
            self._jobs.log(job_id, f"{counts['purged_blobs']} blobs and {counts.get('purged_manifests', 0)} "
                                   "manifests are actually deleted")  # fmt: skip
            self._jobs.log(job_id, f"The GC job actual frees up {harbor_size(counts['freed_space'])} space.")
        self._jobs.log(job_id, f"freed_space={counts['freed_space']} purged_blobs={counts['purged_blobs']} "
                               f"purged_manifests={counts.get('purged_manifests', 0)}")  # fmt: skip
        self._jobs.finish(job_id, JobStatus.SUCCESS, None, counts)

    def fail(self, job_id: int, error: str) -> None:
        self._jobs.finish(job_id, JobStatus.ERROR, error)

    # Internals.

    def _cutoff(self, job: Job) -> int:
        return (job.started_at or job.created_at) - self._window

    def _view(self, job_id: int, parts: tuple[str, ...], *, detail: bool) -> GcView:
        started, rows = time.monotonic(), 0
        view = GcView(detail)
        for row in self._store.rows(self.scan_segments, parts, detail=detail):
            view.add(row)
            rows += 1
        self._jobs.log(job_id, f"read {rows} rows of {', '.join(parts)} in {time.monotonic() - started:.1f} s "
                               f"({self.scan_segments} scan segments)")  # fmt: skip
        return view

    def _children_of(self, repository: str, digest: str) -> tuple[str, ...]:
        stored = self._manifest_store.get(repository, digest)
        if stored is None:
            return ()
        return parse_manifest(stored.body, stored.media_type, digest).children

    def _release(self, project: str, digest: str) -> None:
        """Harbor's association cleanup; `release_blob` keeps a blob a push references meanwhile."""
        self._projects.release_blob(project, digest)

    def _mark(self, job_id: int, workers: int, view: GcView, found: list[tuple[str, BlobState]], cutoff: int, *,
              started: int, deadline: float) -> tuple[list[Candidate], bool]:  # fmt: skip
        """Conditional marks, `_MARK_THREADS` at a time (each is one round trip; on AWS a sequential
        mark of 100,000 blobs would take most of a Lambda's 15 minutes), then the candidates are
        written to their shards, a chunk at a time so a stop is noticed; until `deadline` (after
        one chunk at least). Returns what is marked, by this call or an earlier one of this run, and
        whether every candidate was tried."""

        def shard_of(digest: str) -> int:
            return zlib.crc32(digest.encode()) % workers

        def candidate(digest: str, version: int, blob: BlobState) -> Candidate:
            return Candidate(digest, version, blob.size, sorted(set(view.links.get(digest, []))))

        def mark_one(item: tuple[str, BlobState]) -> Candidate | None:
            digest, blob = item
            version = self._store.mark(digest, blob.state, blob.version, cutoff if blob.state != "deleting" else 2**62)
            return None if version is None else candidate(digest, version, blob)

        def still_garbage(chunk: list[Candidate]) -> list[Candidate]:
            """Drop the blobs a project counts now among those touched in the second the run
            started (only a zero window lets such a blob be a candidate). The Scan is no snapshot:
            it may have read the project's rows before a push counted the blob and the blob's row
            after that push touched it, so the version the mark was conditioned on already
            includes the touch. Later pushes count, then touch: their touch fails the claim."""
            recent = [c.digest for c in chunk if view.blobs[c.digest].updated_at >= started]
            projects = self._projects.names() if recent else []
            held = {d for p in projects for d in self._projects.counted(p, recent)}
            for digest in sorted(held)[:_LOG_DIGESTS]:
                self._jobs.log(job_id, f"kept blob {digest}: a push counted it as the run started")
            return [c for c in chunk if c.digest not in held]

        # At the version of this run's candidate row: marked (or taken over) by an earlier call of this run.
        earlier = self._store.marked(job_id, [(shard_of(d), d, b.version) for d, b in found
                                              if b.state in ("delete", "deleting")])  # fmt: skip
        marked = [candidate(d, b.version, b) for d, b in found if d in earlier]
        todo = [(d, b) for d, b in found if d not in earlier]
        with ThreadPoolExecutor(_MARK_THREADS, thread_name_prefix="gc-mark") as pool:
            for start in range(0, len(todo), _MARK_CHUNK):
                if start and time.monotonic() > deadline:
                    return marked, False
                self._jobs.check(job_id)
                chunk = still_garbage([c for c in pool.map(mark_one, todo[start : start + _MARK_CHUNK]) if c])
                shards: dict[int, list[Candidate]] = defaultdict(list)
                for c in chunk:
                    shards[shard_of(c.digest)].append(c)
                for shard, candidates in shards.items():
                    self._store.add_candidates(job_id, shard, candidates)
                marked.extend(chunk)
                self.pause("marked", job_id)
        return marked, True

    def _expire_tombstones(self, view: GcView, dry_run: bool) -> None:
        now = int(self._clock())
        for digest, blob in view.blobs.items():
            if blob.state == "deleted" and blob.expires_at is not None and blob.expires_at <= now and not dry_run:
                self._store.drop_tombstone(digest, blob.version)

    def _orphans(self, job_id: int, view: GcView, cutoff: int, dry_run: bool) -> tuple[int, int]:
        """Objects no row accounts for, older than the window: blob bytes whose upload never became a
        blob (first chunks of multi-chunk uploads), manifest bodies of deleted manifests, and upload
        staging of sessions that are gone."""
        live_rows = {d for d, b in view.blobs.items() if b.state != "deleted"}
        blobs = [o for o in self._store.blob_objects()
                 if o.owner not in live_rows and o.modified <= cutoff and o.key not in view.upload_keys]  # fmt: skip
        others = [
            o for o in self._store.manifest_objects() if o.owner not in view.manifest_digests and o.modified <= cutoff
        ]
        others += [o for o in self._store.upload_objects() if o.owner not in view.uploads and o.modified <= cutoff]
        if not dry_run and (blobs or others):
            tombstones = {d for d, b in view.blobs.items() if b.state == "deleted"}
            revived = self._store.existing_blob_rows([o.owner for o in blobs]) - tombstones
            blobs = [o for o in blobs if o.owner not in revived]
            self._store.delete_objects([o.key for o in blobs + others])
            for key, upload_id, initiated, session in self._store.upload_multiparts():
                if session not in view.uploads and initiated <= cutoff:
                    self._store.abort_multipart(key, upload_id)
        doomed = [(o.key, o.size) for o in blobs + others]
        for key, _size in doomed[:_LOG_DIGESTS]:
            self._jobs.log(job_id, f"{'would delete' if dry_run else 'deleted'} orphan object {key}")
        return len(doomed), sum(s for _, s in doomed)


def job_is_over(exc: BaseException) -> bool:
    return isinstance(exc, JobEnded)


def harbor_size(size: int) -> str:
    """A size as Harbor's GC log prints it: IEC units, two decimals truncated (`1.99 KiB`), bytes below 1 KiB."""
    for exponent, unit in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if size >= 1024**exponent:
            hundredths = size * 100 // 1024**exponent
            return f"{hundredths // 100}.{hundredths % 100:02d} {unit}"
    return f"{size} B"
