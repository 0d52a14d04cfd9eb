"""Fixtures shared by the scanning tests: `scanning` (the scan machine and the Trivy-shaped fake)."""

from tests.functional.jobs.test_scans import scanning

__all__ = ["scanning"]
