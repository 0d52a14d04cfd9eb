"""Proxy-cache projects: pulls of a project created with `registry_id` go through to that registry
(Harbor's `repoproxy` middleware and proxy controller), and what they fetch is kept as local
artifacts, written through the services a push uses (quota, rows, tags, events).

The upstream repository of `<project>/<repo>` is `<repo>`. On a `docker-hub` registry a
one-component `<repo>` is answered with a 301 to `<project>/library/<repo>` (manifests, blobs),
as Harbor does, so the cached repository carries Hub's real name.

Manifests (Harbor's `UseLocalManifest`): by digest, a local copy is served without asking the
upstream. Otherwise the upstream is asked with a HEAD (not counted by Docker Hub's pull limit):
the local copy is served when the tag there names the same digest; a changed tag is fetched again
(GET by the digest the HEAD named, verified), stored and served. A 429 serves the local copy when
there is one, else passes through as 429; a not-found serves the local copy only with
`proxy_cache_local_on_not_found`; any other failure (unreachable, 5xx, bad answer) falls back to
the local copy, and 404 without one. A registry whose stored health is not `healthy` is not
asked at all (Harbor's `canProxy`). A HEAD by tag that the cache cannot answer gets the upstream's
descriptor without a GET; the tag is remembered, so the GET by digest that follows (docker and
containerd pull that way) stores the manifest under it.

A fetched image manifest can only be stored once its blobs are in the repository (the manifest
service checks references). It is stored at once when they are; otherwise it waits (in this
process) until the client's blob pulls have landed the last one, then it is stored by the thread
that landed it. A later pull that finds it still missing fetches and stores it again. An index
is served as the upstream sent it and kept for 7 days in this process (Harbor keeps it in Redis);
what is stored locally is the index trimmed to the children this repository has (Harbor's
trimmed manifest list), rewritten as children arrive, so a pull served from the cache alone
(upstream down) gets only what can be pulled.

Blobs: one present in the repository is served as any blob. A missing one is fetched from the
upstream once per process however many clients ask at the same time (the others wait for it),
streamed into the object store through the upload service (hashed on the way, verified before
the blob row makes it visible: bytes that do not match never land), then served from the store
like any other blob. A blob this registry already holds for another repository is linked after a
HEAD confirms the upstream repository has it (no second download).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.registry.errors import (
    RemoteError,
    RemoteNotFound,
    RemoteRateLimited,
)
from chalicelib.core import selectors
from chalicelib.core.chunks import ChunkReader
from chalicelib.core.clock import Clock, system_clock
from chalicelib.core.digest import Digest, is_digest
from chalicelib.core.models import Manifest, Moved
from chalicelib.core.reference import project_of, require_nameable
from chalicelib.errors import (
    BlobUnknown,
    ManifestUnknown,
    NameUnknown,
    NotFound,
    QuotaExceeded,
    RegistryError,
    TooManyRequests,
)
from chalicelib.events import Event, EventBus, EventType
from chalicelib.observability import count, logger
from chalicelib.stores.spool import SPOOLS, TEE_PREFIX, Spool

if TYPE_CHECKING:
    from chalicelib.adapters.registry.base import RegistryAdapter
    from chalicelib.adapters.registry.client import Manifest as RemoteManifest
    from chalicelib.core.identity import Project
    from chalicelib.core.registries import Registry
    from chalicelib.services.blobs import BlobService
    from chalicelib.services.gate import PullGate
    from chalicelib.services.manifests import ManifestService
    from chalicelib.services.registries import RegistryService
    from chalicelib.services.repositories import RepositoryService
    from chalicelib.services.uploads import UploadService
    from chalicelib.stores.blobs import BlobMetaStore
    from chalicelib.stores.manifests import ManifestStore
    from chalicelib.stores.projects import ProjectStore

HEALTHY = "healthy"
# Harbor keeps a fetched manifest list 7 days in Redis.
INDEX_CACHE_SECONDS = 7 * 24 * 3600
_INDEX_CACHE_ENTRIES = 512
# A HEAD by tag remembers the tag this long for the GET by digest that follows it.
_TAG_HINT_SECONDS = 600
_TAG_HINTS = 4096
# Manifests waiting for their blobs, per process.
_PENDING = 1024
# A blob up to this size is read into memory and written in one piece; larger ones stream.
_IN_MEMORY_BYTES = 8 * 1024 * 1024
# How long a project's proxy settings are reused before the row is read again.
_PROJECT_CACHE_SECONDS = 15.0
_PLAIN_PROJECT_CACHE_SECONDS = 300.0
_TOO_MANY = "too many requests to upstream registry"
# A merged tag list reads at most this many tags from each side.
_MERGED_TAGS = 10_000
# An upstream's referrers answer is cut at this many descriptors.
_MAX_REFERRERS = 10_000


@dataclass(frozen=True, slots=True)
class _Proxy:
    """What a pull needs to know about a proxy-cache project (read from its row)."""

    project: str
    registry_id: int
    speed_kb: int
    max_connections: int
    filter_pattern: str
    filter_kind: str
    local_on_not_found: bool
    referrer_api: bool


@dataclass
class _Flight:
    """One upstream fetch of one blob that other pulls of it wait for."""

    done: threading.Event = field(default_factory=threading.Event)
    # Set once waiting pulls can be answered: the spool exists, or the fetch ended.
    started: threading.Event = field(default_factory=threading.Event)
    spool: Spool | None = None
    error: BaseException | None = None


@dataclass
class _Pending:
    """A fetched manifest not stored yet (its blobs or children are not all in the repository)."""

    manifest: RemoteManifest
    tag: str | None


class ProxyCacheService:
    def __init__(  # noqa: PLR0917 (the services and stores a pull goes through)
        self,
        projects: ProjectStore,
        registries: RegistryService,
        manifests: ManifestService,
        manifest_store: ManifestStore,
        blobs: BlobService,
        blob_meta: BlobMetaStore,
        uploads: UploadService,
        events: EventBus,
        repositories: RepositoryService,
        *,
        stream_cold_blobs: bool = False,
        clock: Clock = system_clock,
    ) -> None:
        self._stream_cold_blobs = stream_cold_blobs
        self._repositories = repositories
        self._projects = projects
        self._registries = registries
        self._manifests = manifests
        self._manifest_store = manifest_store
        self._blobs = blobs
        self._blob_meta = blob_meta
        self._uploads = uploads
        self._events = events
        self._clock = clock
        self._lock = threading.Lock()
        self._project_cache: dict[str, tuple[float, _Proxy | None]] = {}
        self._registry_cache: dict[int, tuple[float, Registry | None]] = {}
        self._adapters: dict[tuple[int, int, int], RegistryAdapter] = {}
        self._flights: dict[tuple[str, str], _Flight] = {}
        self._connections: dict[str, int] = {}
        self._index_cache: OrderedDict[tuple[str, str], tuple[float, str, bytes]] = OrderedDict()
        self._tag_hints: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()
        self._pending: OrderedDict[tuple[str, str], _Pending] = OrderedDict()
        self._referrer_cache: OrderedDict[tuple[str, str, str], tuple[float, list[dict[str, Any]]]] = OrderedDict()

    # --- what the routes call ---

    def get_manifest(self, repository: str, reference: str, accept: list[str], *, with_body: bool,
                     gate: PullGate | None = None) -> Manifest | Moved:  # fmt: skip
        proxy = self._proxy_of(repository)
        if proxy is not None:
            moved = self._library(proxy, repository, f"manifests/{reference}")
            if moved is not None:
                return moved
            self._check_filter(proxy, repository)
            require_nameable(reference)
            served = self._through(proxy, repository, reference, with_body=with_body)
            if served is not None:
                return served
        return self._manifests.get(repository, reference, accept, with_body=with_body, gate=gate)

    def _through(self, proxy: _Proxy, repository: str, reference: str, *, with_body: bool) -> Manifest | None:  # noqa: PLR0911 (Harbor's decision list)
        """The upstream's answer, or None where the local copy is served (or 404 when absent)."""
        if is_digest(reference) and self._manifest_store.get(repository, reference, with_body=False) is not None:
            return None
        registry = self._registry(proxy)
        if registry is None or registry.status != HEALTHY:
            return None
        held = self._held_digest(repository, reference)
        remote_repo = self._remote_repository(repository, proxy)
        adapter = self._adapter(registry, proxy)
        try:
            with self._connection(proxy):
                head = adapter.client.head_manifest(remote_repo, reference)
        except RegistryError as exc:
            return self._fallback(exc, repository, held)
        if head is None:
            if held is not None and proxy.local_on_not_found:
                return None
            raise ManifestUnknown(f"repo {repository}, reference {reference} not found upstream",
                                  {"reference": reference[:200]})  # fmt: skip
        tag = None if is_digest(reference) else reference
        cached_index = self._cached_index(repository, head.digest) if head.digest else None
        if cached_index is not None:
            media_type, body = cached_index
            if with_body:
                self._emit_pull(repository, head.digest, tag, media_type, len(body))
            return Manifest(head.digest, media_type, len(body), body if with_body else b"")
        if held is not None and held == head.digest:
            return None
        if not with_body and head.digest:
            # Harbor answers a HEAD with the upstream's descriptor; the GET by digest that follows
            # stores the manifest under this tag.
            if tag is not None:
                self._hint_tag(repository, head.digest, tag)
            return Manifest(head.digest, head.media_type, head.size, b"")
        try:
            with self._connection(proxy):
                # By the digest the HEAD named (a registry that names none: by the reference, hashed here).
                fetched = adapter.client.get_manifest(remote_repo, head.digest or reference)
        except RegistryError as exc:
            return self._fallback(exc, repository, held)
        count("ProxyManifestFetches")
        if held == fetched.digest:  # a registry whose HEAD named no digest, and nothing changed
            return None
        # Harbor answers a proxied pull before its vulnerability check, so no gate here.
        self._keep(repository, fetched, tag or self._take_tag_hint(repository, fetched.digest))
        return Manifest(fetched.digest, fetched.media_type, len(fetched.data), fetched.data if with_body else b"")

    @staticmethod
    def _fallback(exc: RegistryError, repository: str, held: str | None) -> None:
        """Harbor's rules for a failed upstream call: a rate limit serves the local copy or passes
        through as 429; not-found is 404; anything else serves the local copy (404 without one)."""
        if isinstance(exc, TooManyRequests):
            if held is not None:
                return
            raise TooManyRequests(_TOO_MANY, retry_after=exc.retry_after) from None
        if isinstance(exc, RemoteNotFound):
            raise ManifestUnknown(f"not found upstream: {exc.message}"[:500]) from None
        logger.warning("proxy cache: upstream manifest call failed, serving the cache",
                       extra={"repository": repository, "error": str(exc)[:300]})  # fmt: skip
        return

    def referrers(self, repository: str, subject_text: str, artifact_type: str | None) -> list[dict[str, Any]]:
        """The referrers API. In a proxy-cache project with `proxy_referrer_api` (Harbor's
        `ProxyReferrerMiddleware`) the upstream's referrers API is asked, with the same filter, and
        the referrers this repository holds that it did not name are added; an upstream 404 (no
        such API, or no such repository) is answered as 404, so a client falls back to the tag
        schema through the manifest proxy. The upstream's answer is kept for 7 days in this
        process (Harbor keeps it in Redis) and served when the registry is not healthy or the call
        fails; without it, the local answer (the referrers cached by earlier pulls)."""
        proxy = self._proxy_of(repository)
        if proxy is None or not proxy.referrer_api:
            return self._repositories.referrers(repository, subject_text, artifact_type)
        subject = str(Digest.parse(subject_text))
        self._check_filter(proxy, repository)
        key = (repository, subject, artifact_type or "")
        registry = self._registry(proxy)
        if registry is None or registry.status != HEALTHY:
            return self._cached_referrers(key) or self._repositories.referrers(repository, subject, artifact_type)
        try:
            with self._connection(proxy):
                remote = self._adapter(registry, proxy).client.referrers(
                    self._remote_repository(repository, proxy), subject, artifact_type, fallback=False
                )
        except RemoteNotFound:
            raise NotFound(f"referrers for {repository}@{subject} not found upstream",
                           {"digest": subject}) from None  # fmt: skip
        except RegistryError as exc:
            logger.warning("proxy cache: upstream referrers call failed, serving the cache",
                           extra={"repository": repository, "error": str(exc)[:300]})  # fmt: skip
            return self._cached_referrers(key) or self._repositories.referrers(repository, subject, artifact_type)
        count("ProxyReferrerFetches")
        descriptors = _descriptors(remote, artifact_type)
        named = {d["digest"] for d in descriptors}
        local = self._repositories.referrers(repository, subject, artifact_type)
        descriptors.extend(d for d in local if d.get("digest") not in named)
        with self._lock:
            self._referrer_cache[key] = (self._clock() + INDEX_CACHE_SECONDS, descriptors)
            self._referrer_cache.move_to_end(key)
            while len(self._referrer_cache) > _INDEX_CACHE_ENTRIES:
                self._referrer_cache.popitem(last=False)
        return descriptors

    def _cached_referrers(self, key: tuple[str, str, str]) -> list[dict[str, Any]] | None:
        with self._lock:
            entry = self._referrer_cache.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._referrer_cache[key]
                return None
            return list(entry[1])

    def blob_stat(self, repository: str, digest_text: str) -> tuple[str, int] | Moved:
        """HEAD of a blob: the local blob, or (not landing it) what the upstream says of it."""
        proxy = self._proxy_of(repository)
        if proxy is None:
            return self._blobs.stat(repository, digest_text)
        digest = str(Digest.parse(digest_text))
        moved = self._library(proxy, repository, f"blobs/{digest}")
        if moved is not None:
            return moved
        self._check_filter(proxy, repository)
        size = self._blob_meta.stat(repository, digest)
        if size is not None:
            return digest, size
        registry = self._usable(proxy, digest)
        try:
            with self._connection(proxy):
                remote_repo = self._remote_repository(repository, proxy)
                found = self._adapter(registry, proxy).client.blob_exists(remote_repo, digest)
        except RemoteRateLimited:
            raise TooManyRequests(_TOO_MANY, retry_after=60) from None
        except RegistryError:
            raise BlobUnknown(detail={"digest": digest}) from None
        if found is None:
            raise BlobUnknown(detail={"digest": digest})
        return digest, found

    def blob_download(self, repository: str, digest_text: str) -> tuple[str, int, str] | Moved:
        """GET of a blob: land it first when the repository does not hold it, then serve it."""
        proxy = self._proxy_of(repository)
        if proxy is None:
            return self._blobs.download_url(repository, digest_text)
        digest = str(Digest.parse(digest_text))
        moved = self._library(proxy, repository, f"blobs/{digest}")
        if moved is not None:
            return moved
        self._check_filter(proxy, repository)
        if self._blob_meta.stat(repository, digest) is None:
            spool = self._land(proxy, repository, digest)
            if spool is not None:
                return digest, spool.size, TEE_PREFIX + SPOOLS.publish(spool)
        return self._blobs.download_url(repository, digest)

    def tags(self, repository: str, limit: int, last: str | None) -> tuple[list[str], bool] | Moved:
        """tags/list: in a proxy-cache project, the local tags merged with the upstream's (Harbor's
        rule; the upstream's list alone when nothing is cached, the local one when it fails)."""
        proxy = self._proxy_of(repository)
        if proxy is None:
            return self._repositories.tags(repository, limit, last)
        moved = self._library(proxy, repository, "tags/list")
        if moved is not None:
            return moved
        self._check_filter(proxy, repository)
        try:
            names = set(self._repositories.tags(repository, _MERGED_TAGS, None)[0])
            held = True
        except NameUnknown:
            names, held = set(), False
        registry = self._registry(proxy)
        if registry is not None and registry.status == HEALTHY:
            try:
                with self._connection(proxy):
                    remote = self._adapter(registry, proxy).client.tags(self._remote_repository(repository, proxy))
                    names.update(itertools.islice(remote, _MERGED_TAGS))
                held = True
            except RegistryError as exc:
                logger.warning("proxy cache: upstream tag list failed, listing the cache",
                               extra={"repository": repository, "error": str(exc)[:300]})  # fmt: skip
        if not held:
            raise NameUnknown(detail={"name": repository[:200]})
        ordered = sorted(t for t in names if last is None or t > last)
        return ordered[:limit], len(ordered) > limit

    def refuse_push(self, repository: str) -> None:
        """Harbor's rule: nobody pushes into a proxy-cache project (403 DENIED)."""
        proxy = self._proxy_of(repository)
        if proxy is not None:
            from chalicelib.errors import Denied  # noqa: PLC0415

            raise Denied(f"can not push artifact to a proxy project: {proxy.project}")

    def is_proxy(self, project: str) -> bool:
        return self._proxy_for_project(project) is not None

    # --- projects and registries ---

    def _proxy_of(self, repository: str) -> _Proxy | None:
        return self._proxy_for_project(project_of(repository))

    def _proxy_for_project(self, name: str) -> _Proxy | None:
        now = self._clock()
        with self._lock:
            cached = self._project_cache.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        project = self._projects.get(name)
        proxy = _settings(project) if project is not None and project.registry_id > 0 else None
        # A project's `registry_id` never changes, so an ordinary project is remembered longer: a
        # pull from it costs no read here; a proxy-cache project's settings are reread sooner.
        ttl = _PROJECT_CACHE_SECONDS if proxy is not None else _PLAIN_PROJECT_CACHE_SECONDS
        with self._lock:
            if len(self._project_cache) > 4096:
                self._project_cache.clear()
            self._project_cache[name] = (now + ttl, proxy)
        return proxy

    def _registry(self, proxy: _Proxy) -> Registry | None:
        """The project's registry (its health decides whether the upstream is asked), reread
        every few seconds rather than on every request of a pull."""
        now = self._clock()
        with self._lock:
            cached = self._registry_cache.get(proxy.registry_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        registry = self._registries.find(proxy.registry_id)
        with self._lock:
            self._registry_cache[proxy.registry_id] = (now + _PROJECT_CACHE_SECONDS, registry)
        return registry

    def forget(self, project: str) -> None:
        """Read the project again at its next pull (a proxy-cache project was just created here)."""
        with self._lock:
            self._project_cache.pop(project, None)

    def on_event(self, event: Event) -> None:
        """A project deleted in this process is read again at its next pull."""
        if event.type is EventType.DELETE_PROJECT and event.project:
            self.forget(event.project)

    def _adapter(self, registry: Registry, proxy: _Proxy) -> RegistryAdapter:
        key = (registry.id, registry.update_time, proxy.speed_kb)
        with self._lock:
            adapter = self._adapters.get(key)
        if adapter is None:
            from chalicelib.adapters.registry.client import ClientOptions  # noqa: PLC0415 (urllib3: first proxied pull)
            from chalicelib.adapters.registry.transport import RetryPolicy  # noqa: PLC0415

            # A client waits on this pull: one quick retry, and a 429 is answered (or the cache
            # served) at once instead of being waited out.
            retry = RetryPolicy(attempts=2, backoff_seconds=0.2, max_retry_after_seconds=0, rate_limit_waits=0)
            options = ClientOptions(speed_kb=max(proxy.speed_kb, 0), retry=retry)
            adapter = self._registries.client_for(registry, options)
            with self._lock:
                stale = [k for k in self._adapters if k[0] == registry.id and k != key]
                for k in stale:
                    with contextlib.suppress(Exception):
                        self._adapters.pop(k).session.close()
                adapter = self._adapters.setdefault(key, adapter)
        return adapter

    def _usable(self, proxy: _Proxy, digest: str) -> Registry:
        registry = self._registry(proxy)
        if registry is None or registry.status != HEALTHY:
            raise BlobUnknown("blob unknown (the upstream registry is unhealthy)", {"digest": digest})
        return registry

    @contextlib.contextmanager
    def _connection(self, proxy: _Proxy) -> Iterator[None]:
        """Harbor's `max_upstream_conn` (per project, per process here): over it, 429."""
        if proxy.max_connections <= 0:
            yield
            return
        with self._lock:
            held = self._connections.get(proxy.project, 0)
            if held >= proxy.max_connections:
                raise TooManyRequests(_TOO_MANY, retry_after=1)
            self._connections[proxy.project] = held + 1
        try:
            yield
        finally:
            with self._lock:
                self._connections[proxy.project] -= 1

    def _library(self, proxy: _Proxy, repository: str, rest: str) -> Moved | None:
        name = repository[len(proxy.project) + 1 :]
        if "/" in name:
            return None
        registry = self._registry(proxy)
        if registry is None or registry.type != "docker-hub":
            return None
        return Moved(f"/v2/{proxy.project}/library/{name}/{rest}")

    @staticmethod
    def _remote_repository(repository: str, proxy: _Proxy) -> str:
        return repository[len(proxy.project) + 1 :]

    @staticmethod
    def _check_filter(proxy: _Proxy, repository: str) -> None:
        if not proxy.filter_pattern:
            return
        name = repository[len(proxy.project) + 1 :]
        if not _filter_matches(name, proxy.filter_pattern, proxy.filter_kind):
            raise NameUnknown(f"repository {name!r} does not match project repository filter", {"name": name[:200]})

    # --- manifests ---

    def _held_digest(self, repository: str, reference: str) -> str | None:
        if is_digest(reference):
            found = self._manifest_store.get(repository, reference, with_body=False)
            return found.digest if found is not None else None
        return self._manifest_store.resolve_tag(repository, reference)

    def _cached_index(self, repository: str, digest: str) -> tuple[str, bytes] | None:
        with self._lock:
            entry = self._index_cache.get((repository, digest))
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._index_cache[repository, digest]
                return None
            return entry[1], entry[2]

    def _hint_tag(self, repository: str, digest: str, tag: str) -> None:
        with self._lock:
            self._tag_hints[repository, digest] = (self._clock() + _TAG_HINT_SECONDS, tag)
            while len(self._tag_hints) > _TAG_HINTS:
                self._tag_hints.popitem(last=False)

    def _take_tag_hint(self, repository: str, digest: str) -> str | None:
        with self._lock:
            entry = self._tag_hints.pop((repository, digest), None)
        return entry[1] if entry is not None and entry[0] > self._clock() else None

    def _keep(self, repository: str, fetched: RemoteManifest, tag: str | None) -> None:
        """Store a fetched manifest when it can be stored, or keep it waiting for its content."""
        if fetched.is_index:
            with self._lock:
                self._index_cache[repository, fetched.digest] = (
                    self._clock() + INDEX_CACHE_SECONDS, fetched.media_type, fetched.data
                )  # fmt: skip
                while len(self._index_cache) > _INDEX_CACHE_ENTRIES:
                    self._index_cache.popitem(last=False)
        with self._lock:
            self._pending[repository, fetched.digest] = _Pending(fetched, tag)
            while len(self._pending) > _PENDING:
                self._pending.popitem(last=False)
        self._settle(repository)

    def _settle(self, repository: str) -> None:
        """Store every waiting manifest of `repository` whose content is now all here (images
        first, so an index sees the children stored in the same pass)."""
        with self._lock:  # claimed: two threads never store the same manifest at once
            waiting = [(k[1], p) for k, p in self._pending.items() if k[0] == repository]
            for digest, _ in waiting:
                del self._pending[repository, digest]
        waiting.sort(key=lambda item: item[1].manifest.is_index)
        for digest, pending in waiting:
            try:
                done = self._store(repository, pending)
            except Exception:
                logger.exception("proxy cache: a fetched manifest was not stored",
                                 extra={"repository": repository, "digest": digest})  # fmt: skip
                done = True
            if not done:
                with self._lock:
                    self._pending.setdefault((repository, digest), pending)

    def _store(self, repository: str, pending: _Pending) -> bool:
        """True when nothing is left to wait for."""
        manifest = pending.manifest
        if not manifest.is_index:
            digests = [str(d.get("digest")) for d in manifest.blobs() if d.get("digest")]
            present = self._blob_meta.linked(repository, digests) if digests else {}
            if any(d not in present for d in digests):
                return False
            self._put(repository, manifest.data, manifest.media_type, manifest.digest, pending.tag)
            return True
        children = manifest.children()
        wanted = [str(c.get("digest")) for c in children if c.get("digest")]
        held = {d for d in wanted if self._manifest_store.get(repository, d, with_body=False) is not None}
        if not held:
            return False
        if len(held) == len(wanted):
            self._put(repository, manifest.data, manifest.media_type, manifest.digest, pending.tag)
            return True
        # Harbor's trimmed manifest list: only the children this repository has.
        document = manifest.document
        document["manifests"] = [c for c in children if str(c.get("digest")) in held]
        body = json.dumps(document, separators=(",", ":")).encode()
        trimmed = Digest.of(body)
        if pending.tag is not None and self._manifest_store.resolve_tag(repository, pending.tag) == str(trimmed):
            return False
        self._put(repository, body, manifest.media_type, str(trimmed), pending.tag)
        return False

    def _put(self, repository: str, body: bytes, media_type: str, digest: str, tag: str | None) -> None:
        try:
            self._manifests.put(repository, tag or digest, body, media_type)
        except QuotaExceeded:  # Harbor: over quota, the content is served but not cached
            logger.info("proxy cache: not cached, over the project's quota", extra={"repository": repository})
            return
        count("ProxyManifestsCached")
        self._emit_pull(repository, digest, tag, media_type, len(body))

    def _emit_pull(self, repository: str, digest: str, tag: str | None, media_type: str, size: int) -> None:
        self._events.emit(EventType.PULL_ARTIFACT, project=project_of(repository), repository=repository,
                          digest=digest, tag=tag, media_type=media_type, size=size)  # fmt: skip

    # --- blobs ---

    def _land(self, proxy: _Proxy, repository: str, digest: str) -> Spool | None:
        """Bring one blob into the repository: one upstream fetch per process, however many wait.

        When this process serves blob bytes itself (the local runner), the fetch runs in a thread
        of its own and every waiting pull gets its spool, to stream from as the bytes arrive;
        None means the blob has landed (or was linked) and is served like any other."""
        key = (repository, digest)
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if leader:
            run = functools.partial(self._fly, flight, key, proxy)
            if not self._stream_cold_blobs:
                run()
            else:
                threading.Thread(target=run, name=f"proxy-blob-{digest[7:19]}", daemon=True).start()
        flight.started.wait()
        if flight.spool is not None:
            return flight.spool
        flight.done.wait()
        if flight.error is not None:
            raise flight.error
        return None

    def _fly(self, flight: _Flight, key: tuple[str, str], proxy: _Proxy) -> None:
        repository, digest = key
        try:
            self._fetch(proxy, repository, digest, flight)
        except BaseException as exc:
            flight.error = exc if isinstance(exc, RegistryError) else BlobUnknown(detail={"digest": digest})
            if not isinstance(exc, RegistryError):
                logger.exception("proxy cache: blob fetch failed", extra={"digest": digest})
        finally:
            if flight.spool is not None:
                # Over quota, the verified bytes still reach the clients; they are just not kept (Harbor).
                flight.spool.end(ok=flight.error is None or isinstance(flight.error, QuotaExceeded))
            with self._lock:
                self._flights.pop(key, None)
            flight.started.set()
            flight.done.set()
        if flight.error is None:
            self._settle(repository)

    def _fetch(self, proxy: _Proxy, repository: str, digest: str, flight: _Flight) -> None:
        registry = self._usable(proxy, digest)
        adapter = self._adapter(registry, proxy)
        remote_repo = self._remote_repository(repository, proxy)
        try:
            with self._connection(proxy):
                if self._blob_meta.global_size(digest) is not None:
                    # Held for another repository: link it once the upstream confirms this one has it.
                    if adapter.client.blob_exists(remote_repo, digest) is None:
                        raise BlobUnknown(detail={"digest": digest})
                    if self._uploads.link_existing(repository, digest):
                        return
                stream = adapter.client.pull_blob(remote_repo, digest)
                count("ProxyBlobFetches")
                chunks: Iterator[bytes] = iter(stream)
                if self._stream_cold_blobs and stream.size is not None:
                    flight.spool = Spool(digest, stream.size)
                    flight.started.set()
                    chunks = _tee(chunks, flight.spool)
                self._write(repository, digest, stream.size, chunks)
        except RemoteRateLimited as exc:
            raise TooManyRequests(_TOO_MANY, retry_after=exc.retry_after) from None
        except RemoteNotFound:
            raise BlobUnknown(detail={"digest": digest}) from None
        except RemoteError as exc:
            logger.warning("proxy cache: blob fetch failed", extra={"digest": digest, "error": str(exc)[:300]})
            raise BlobUnknown(f"blob unknown to the cache, and the upstream failed: {exc.message}"[:500],
                              {"digest": digest}) from None  # fmt: skip

    def _write(self, repository: str, digest: str, size: int | None, chunks: Iterator[bytes]) -> None:
        """Through the upload service: the digest is verified before the blob row is written, and
        a stream that fails its own check (RemoteDigestMismatch) ends the upload unpublished."""
        if size is not None and size <= _IN_MEMORY_BYTES:
            self._uploads.put_monolithic(repository, digest, b"".join(chunks))
            return
        upload = self._uploads.start(repository, digest.partition(":")[0])
        location = f"/v2/{repository}/blobs/uploads/{upload.id}"
        try:
            self._uploads.append_stream(repository, upload.id, ChunkReader(chunks), length=size, content_range=None,
                                        location=location)  # fmt: skip
            self._uploads.finish(repository, upload.id, digest, b"", content_range=None, location=location)
        except BaseException:
            with contextlib.suppress(Exception):
                self._uploads.cancel(repository, upload.id)
            raise


def _tee(chunks: Iterator[bytes], spool: Spool) -> Iterator[bytes]:
    """The chunks, each also written to the spool that clients read from."""
    for chunk in chunks:
        spool.write(chunk)
        yield chunk


def _settings(project: Project) -> _Proxy:
    meta = project.metadata
    return _Proxy(
        project=project.name,
        registry_id=project.registry_id,
        speed_kb=_int(meta.get("proxy_speed_kb")),
        max_connections=_int(meta.get("max_upstream_conn")),
        filter_pattern=meta.get("proxy_cache_filter_pattern", ""),
        filter_kind=meta.get("proxy_cache_filter_kind", "") or "doublestar",
        local_on_not_found=meta.get("proxy_cache_local_on_not_found", "").lower() == "true",
        referrer_api=meta.get("proxy_referrer_api", "").lower() == "true",
    )


def _descriptors(found: list[Any], artifact_type: str | None) -> list[dict[str, Any]]:
    """The upstream's descriptors that are descriptors (a digest, a size), with the fields the
    referrers API shows, filtered by type (again: an upstream may ignore the filter)."""
    keep = ("mediaType", "digest", "size", "artifactType", "annotations")
    descriptors: list[dict[str, Any]] = []
    for entry in found[:_MAX_REFERRERS]:
        if not isinstance(entry, dict) or not _is_descriptor(entry):
            continue
        if artifact_type is not None and entry.get("artifactType") != artifact_type:
            continue
        descriptors.append({k: entry[k] for k in keep if k in entry})
    return descriptors


def _is_descriptor(entry: dict[str, Any]) -> bool:
    try:
        Digest.parse(str(entry.get("digest", "")))
    except RegistryError:
        return False
    size = entry.get("size")
    return (isinstance(size, int) and not isinstance(size, bool) and size >= 0
            and all(isinstance(entry.get(k, ""), str) for k in ("mediaType", "artifactType"))
            and isinstance(entry.get("annotations", {}), dict))  # fmt: skip


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def _filter_matches(name: str, pattern: str, kind: str) -> bool:
    """Harbor's repository filter; an invalid pattern matches nothing."""
    try:
        if kind == "regex":
            return re.fullmatch(pattern, name) is not None
        return selectors.matches(pattern, name)
    except Exception:
        return False
