"""Helpers shared by tests: compose the real Hydra configs as `train.py` would, and build a
costly read-only fixture once per test run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

from fdopa.config import CONF_DIR, compose_train

__all__ = ["CONF_DIR", "build_once", "compose_train"]


def build_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]
) -> Path:
    """Folder ``name``, filled by ``build(folder)`` once per test run and shared read-only.

    ``make test`` runs the suite in pytest-xdist workers, each with its own temporary base
    folder under the run's. The first worker that asks builds the folder there under a file
    lock and marks it complete; the others wait for the lock and reuse it. A folder left half
    built (a worker killed mid-way) has no mark and is built again. Run without xdist, the
    folder lies in the session's own base folder.

    Args:
        tmp_path_factory: pytest's session-scoped factory.
        name: Folder name, unique per fixture.
        build: Fills the (new, empty) folder it is given.

    Returns:
        The complete folder.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder, done = base / name, base / f"{name}.done"
    with FileLock(base / f"{name}.lock"):
        if not done.exists():
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder
