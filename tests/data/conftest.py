"""Fixtures of the data tests: writable copies of the session cohort."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

#: Derivatives the cohort and data-module tests never read; skipped when copying a cohort.
_NOT_NEEDED = shutil.ignore_patterns("noisefree", "truth", "manual")


@pytest.fixture
def cohort_copy(paediatric_cohort: Path, tmp_path: Path) -> Path:
    """A writable copy of ``paediatric_cohort`` (raw files and reference labels only)."""
    return Path(shutil.copytree(paediatric_cohort, tmp_path / "cohort", ignore=_NOT_NEEDED))
