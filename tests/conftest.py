"""Shared fixtures: small synthetic FDOPA cohorts generated once per test session.

Generation costs about 4 s per subject per core, so every test that needs a realistic cohort
should reuse these fixtures (read-only!) instead of generating its own. The configurations are
exposed as fixtures too, so a test can rebuild a subject with
:func:`fdopa.data.synthetic.subject.build_subject` and the same seed derivation.

Composition (checked by ``tests/data/test_synthetic.py``):

* ``paediatric_cohort`` (seed 0): 8 children, 4 with a dynamic 4D image, kinetic classes
  4 ``hgg`` + 4 ``lgg``.
* ``adult_cohort`` (seed 1): 4 adults, static images only.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from helpers import build_once

from fdopa.data.synthetic import SynthConfig, generate_cohort


@pytest.fixture(scope="session")
def paediatric_config() -> SynthConfig:
    """Configuration of :func:`paediatric_cohort`: 8 children, tiny grid, half dynamic, seed 0."""
    return SynthConfig(cohort="paediatric", n=8, grid="tiny", dynamic_fraction=0.5, seed=0)


@pytest.fixture(scope="session")
def adult_config() -> SynthConfig:
    """Configuration of :func:`adult_cohort`: 4 adults, tiny grid, static only, seed 1."""
    return SynthConfig(cohort="adult", n=4, grid="tiny", dynamic_fraction=0.0, seed=1)


def _cohort(tmp_path_factory, name: str, config: SynthConfig) -> Path:
    """Root of the cohort of ``config``, generated with two workers once per test run."""
    folder = build_once(
        tmp_path_factory,
        name,
        lambda out: generate_cohort(config, out / "cohort", n_jobs=2, progress=False),
    )
    return folder / "cohort"


@pytest.fixture(scope="session")
def paediatric_cohort(tmp_path_factory, paediatric_config) -> Path:
    """Root of a synthetic paediatric cohort (cohort layout), generated once per test run.

    Built from :func:`paediatric_config`. Treat it as read-only: copy it
    (``shutil.copytree``) before modifying anything.
    """
    return _cohort(tmp_path_factory, "synth_paediatric", paediatric_config)


@pytest.fixture(scope="session")
def adult_cohort(tmp_path_factory, adult_config) -> Path:
    """Root of a synthetic adult cohort (cohort layout), generated once per test run.

    Built from :func:`adult_config`. Treat it as read-only.
    """
    return _cohort(tmp_path_factory, "synth_adult", adult_config)


@pytest.fixture(scope="session", autouse=True)
def _rmtree_only_in_scratch(tmp_path_factory):
    """Safety net: no test may delete a folder outside the temporary and repository folders.

    A regression in the output-safety code (e.g. ``--overwrite`` of ``/`` or ``~``) must fail
    the test that exercises it, not wipe the machine that runs the suite.
    """
    allowed = [
        Path(tempfile.gettempdir()).resolve(),
        tmp_path_factory.getbasetemp().resolve(),
        Path(__file__).resolve().parents[1],
        Path("/dev/shm").resolve(),  # joblib's memory-mapping folders of worker processes
    ]
    real_rmtree = shutil.rmtree

    def guarded(path, *args, **kwargs):
        target = Path(path).resolve()
        if not any(target != root and target.is_relative_to(root) for root in allowed):
            raise AssertionError(f"a test tried to delete {target}, outside its scratch folders")
        return real_rmtree(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shutil, "rmtree", guarded)
        yield
