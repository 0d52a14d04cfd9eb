"""The pull gate (Harbor's "prevent vulnerable images from running"), applied to manifest GET and
HEAD. The rules are `core/gate.py`; this service raises Harbor's 412 PROJECTPOLICYVIOLATION.

A pull asks for its gate first (`pull`), whose `also` names the policy rows (project, system
allowlist, scanner registrations) that the manifest read fetches in its own call; `check` then
judges from what that read returned. So a pull whose project does not prevent anything costs no
call of its own, and neither does a pull by digest (its manifest row, read anyway, carries the
scan summaries). A gated pull by tag reads the manifest row's gate attributes (one GetItem): the
tag row's copy of the manifest does not hold them. Nothing is cached, so a policy turned on applies
to the next pull.

Exempt pulls (the route says which): the scanner's own robot (its token grants `scanner-pull`), a
signing client (`cosign` or `notation` in the User-Agent with `push` granted), and signatures
(cosign and notation accessories, cosign's legacy `sha256-<hex>.sig` tags). Exemption is decided
only after a refusal, so an allowed pull costs nothing more.

A summary that did not keep its finding ids (more than `core/scans.py` MAX_CVES) is judged from
the report in the object store when, and only when, an allowlist applies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from chalicelib.core import gate
from chalicelib.core.artifacts import cosign_subject
from chalicelib.core.gate import GATE_REPORTS, GateRead, PullTarget
from chalicelib.core.reference import project_of
from chalicelib.core.scans import ReportSummary
from chalicelib.errors import PolicyViolation
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.stores.gate import GateStore
    from chalicelib.stores.manifests import AlsoRead, RawItems
    from chalicelib.stores.scans import ScanStore


class GateService:
    def __init__(self, store: GateStore, reports: ScanStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._reports = reports
        self._clock = clock

    def pull(self, repository: str, tag: str | None, exempt: Callable[[], bool]) -> PullGate | None:
        """The gate of one pull of `repository` (by `tag`, or by digest when None); None when the
        pull is never gated (a legacy cosign signature, pulled by its tag)."""
        if cosign_subject(tag) is not None:
            return None
        return PullGate(self, repository, self._store.also(project_of(repository)), exempt)

    def check(self, repository: str, digest: str, found: RawItems, exempt: Callable[[], bool]) -> None:
        """Raise PolicyViolation when the project's policy refuses this pull (`found`: what the
        pull's read returned of `PullGate.also`)."""
        read = self._store.read(project_of(repository), repository, digest, found)
        if read is None or not gate.prevents(read.metadata):
            return
        if read.target is None:  # pulled by tag: the tag row holds no scan summaries
            read = replace(read, target=self._store.target(repository, digest))
        denial = self._judge(read)
        if denial is None or exempt():
            return
        logger.info("pull refused by the project's vulnerability policy", repository=repository, digest=digest)
        raise PolicyViolation(denial.message, {"repository": repository, "digest": digest})

    def _judge(self, read: GateRead) -> gate.Denial | None:
        try:
            return gate.judge(read, self._clock())
        except LookupError:
            assert read.target is not None
            return gate.judge(replace(read, target=self._with_ids(read.target)), self._clock())

    def _with_ids(self, target: PullTarget) -> PullTarget:
        """The target with its consulted summary's ids read from the stored report."""
        mime = next(m for m in GATE_REPORTS if m in target.summaries)
        summary = target.summaries[mime]
        body = self._reports.report(summary.digest, summary.registration, mime)
        ids: dict[str, str] = {}
        if body is not None:
            for item in json.loads(body).get("vulnerabilities") or []:
                cve, severity = str(item.get("id", "")), str(item.get("severity") or "Unknown")
                if gate.severity_code(severity) >= gate.severity_code(ids.get(cve, "None")) or cve not in ids:
                    ids[cve] = severity
        complete: ReportSummary = replace(summary, cves=ids, cves_truncated=False)
        return replace(target, summaries={mime: complete})


@dataclass(frozen=True)
class PullGate:
    """One pull's gate: `also` is read with the manifest (the manifest service hands it to its
    store unopened), and `check` judges the pulled digest from what that read returned."""

    _service: GateService
    _repository: str
    also: AlsoRead
    _exempt: Callable[[], bool]

    def check(self, digest: str, found: RawItems) -> None:
        self._service.check(self._repository, digest, found, self._exempt)
