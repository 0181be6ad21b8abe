"""Fixtures of the export tests: one tiny random bundle and one briefly trained, exported run.

Both are built once per session and must be treated as read-only (copy before tampering).
"""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
from export_helpers import train_overrides, write_tiny_bundle
from helpers import build_once, compose_train

from fdopa.export.run import export_checkpoint
from fdopa.pipeline import train


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """``(bundle, net)``: a randomly initialised tiny network written as a bundle."""
    return write_tiny_bundle(tmp_path_factory.mktemp("tiny") / "bundle")


@pytest.fixture(scope="session")
def trained(tmp_path_factory, paediatric_cohort):
    """A 2-epoch training on the fixture cohort and its exported best checkpoint.

    Built once per test run (shared by the xdist workers). Attributes: ``run_dir``, ``ckpt``,
    ``bundle`` (directory), ``val_id`` (the one validation participant), ``cohort``.
    """

    def best(run_dir: Path) -> Path:
        return next((run_dir / "checkpoints").glob("epoch_*.ckpt"))

    def train_and_export(root: Path) -> None:
        run_dir = root / "run"
        train(compose_train(train_overrides(paediatric_cohort, root), output_dir=run_dir))
        export_checkpoint(best(run_dir), root / "bundle")

    root = build_once(tmp_path_factory, "trained", train_and_export)
    run_dir = root / "run"
    with (run_dir / "splits.csv").open() as handle:
        val_ids = [row["participant_id"] for row in csv.DictReader(handle) if row["split"] == "val"]
    assert len(val_ids) == 1
    return SimpleNamespace(
        run_dir=run_dir, ckpt=best(run_dir),
        bundle=root / "bundle", val_id=val_ids[0], cohort=paediatric_cohort,
    )  # fmt: skip
