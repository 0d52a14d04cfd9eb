"""The pull gate (Harbor's "prevent vulnerable images from running"), applied to manifest GET and
HEAD. The rules are `core/gate.py`; this service reads what they need in ONE DynamoDB call
(`stores/gate.py`: project row, artifact row with its scan summaries, system allowlist, scanner
registrations) and raises Harbor's 412 PROJECTPOLICYVIOLATION.

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
from dataclasses import replace
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
    from chalicelib.stores.scans import ScanStore


class GateService:
    def __init__(self, store: GateStore, reports: ScanStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._reports = reports
        self._clock = clock

    def check(self, repository: str, digest: str, tag: str | None, exempt: Callable[[], bool]) -> None:
        """Raise PolicyViolation when the project's policy refuses this pull."""
        if cosign_subject(tag) is not None:
            return  # a legacy cosign signature, pulled by its tag
        read = self._store.read(project_of(repository), repository, digest)
        if read is None:
            return
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
