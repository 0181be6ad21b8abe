"""Several bundles side by side: each scan goes to the bundle made for the channels it has."""

from __future__ import annotations

import csv
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from export_helpers import write_flair_bundle

from fdopa.cli import main
from fdopa.export.choice import BundleChoice
from fdopa.export.predictor import Predictor
from fdopa.layout import SubjectPaths


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, tiny_bundle):
    """A PET-only bundle, and PET + FLAIR bundles trained without and with FLAIR dropout."""
    root = tmp_path_factory.mktemp("choice")
    return SimpleNamespace(
        pet=tiny_bundle[0],
        strict=write_flair_bundle(root / "strict", {}),
        dropout=write_flair_bundle(root / "dropout", {"flair": 0.3}),
    )


def _choice(*bundles):
    return BundleChoice([Predictor(bundle) for bundle in bundles])


def test_a_scan_goes_to_the_bundle_that_reads_the_most_of_what_it_comes_with(bundles):
    for flair_bundle in (bundles.strict, bundles.dropout):
        for order in ((flair_bundle, bundles.pet), (bundles.pet, flair_bundle)):
            choice = _choice(*order)
            assert choice.choose({"pet", "flair"}).bundle is flair_bundle
            assert choice.choose({"pet"}).bundle is bundles.pet
            assert choice.required_channels == ("pet",)
    # Both read PET + FLAIR: a tie goes to the first; without FLAIR only one can run.
    both = _choice(bundles.strict, bundles.dropout)
    assert both.choose({"pet", "flair"}).bundle is bundles.strict
    assert both.choose({"pet"}).bundle is bundles.dropout
    # Alone, a dropout bundle runs on PET alone and a strict one refuses.
    assert _choice(bundles.dropout).choose({"pet"}).bundle is bundles.dropout
    strict = _choice(bundles.strict)
    assert strict.required_channels == ("pet", "flair")
    with pytest.raises(ValueError, match=r"^flair: the bundle was trained with a FLAIR channel"):
        strict.choose({"pet"})


def test_two_bundles_of_the_same_channels_are_refused(bundles):
    with pytest.raises(ValueError, match="reads the same channels \\(pet\\) as"):
        _choice(bundles.pet, bundles.pet)
    with pytest.raises(ValueError, match="at least one"):
        BundleChoice([])


def test_the_chosen_bundle_predicts_as_it_does_alone_and_is_recorded(bundles, paediatric_cohort):
    paths = SubjectPaths(paediatric_cohort, "sub-pd001")
    choice = _choice(bundles.dropout, bundles.pet)
    for flair, bundle, channels in (
        (paths.flair, bundles.dropout, ("pet", "flair")),
        (None, bundles.pet, ("pet",)),
    ):
        chosen = choice.predict(paths.static_pet, flair=flair)
        alone = Predictor(bundle).predict(paths.static_pet, flair=flair)
        assert np.array_equal(chosen.labels, alone.labels)
        assert chosen.indices.to_row() == alone.indices.to_row()
        assert (chosen.bundle, chosen.channels) == (str(bundle.path), channels)
        assert chosen.to_dict()["channels"] == list(channels)
    # A dropout bundle alone fed no FLAIR: its network was given PET alone.
    assert _choice(bundles.dropout).predict(paths.static_pet).channels == ("pet",)
    # A PET-only bundle leaves a FLAIR unread: a missing file is never opened.
    alone = _choice(bundles.pet).predict(paths.static_pet, flair=paths.flair.with_name("no.nii"))
    assert alone.channels == ("pet",)


def test_predict_cohort_with_two_bundles_routes_each_subject(
    bundles, paediatric_cohort, tmp_path, capsys
):
    cohort = tmp_path / "cohort"
    ids = ["sub-pd001", "sub-pd002"]
    for pid in ids:
        shutil.copytree(paediatric_cohort / pid, cohort / pid)
    table = (paediatric_cohort / "participants.tsv").read_text().splitlines()
    (cohort / "participants.tsv").write_text("\n".join(table[:3]) + "\n")
    SubjectPaths(cohort, "sub-pd002").flair.unlink()  # this child had no MRI
    out = tmp_path / "out"
    args = ["predict", "--bundle", str(bundles.dropout.path), "--bundle", str(bundles.pet.path),
            "--cohort", str(cohort), "--no-tta", "--out", str(out)]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    with (out / "indices.csv").open() as handle:
        rows = {row["participant_id"]: row for row in csv.DictReader(handle)}
    expected = {"sub-pd001": (bundles.dropout, "pet+flair"), "sub-pd002": (bundles.pet, "pet")}
    for pid, (bundle, channels) in expected.items():
        assert (rows[pid]["bundle"], rows[pid]["channels"]) == (str(bundle.path), channels)
        written = json.loads((out / f"{pid}_desc-static_pet_indices.json").read_text())
        assert written["bundle"] == str(bundle.path)
        assert written["channels"] == channels.split("+")

    # One scan: the FLAIR decides, and the line printed names the bundle.
    pet = str(SubjectPaths(cohort, "sub-pd001").static_pet)
    one = [*args[:5], "--pet", pet, "--no-tta", "--out", str(tmp_path / "one")]
    assert main(one) == 0
    assert f"({bundles.pet.path} on pet; QC" in capsys.readouterr().out
    # A strict PET + FLAIR bundle alone cannot read a child without FLAIR: one line, exit 2.
    strict = ["predict", "--bundle", str(bundles.strict.path), "--pet", pet,
              "--out", str(tmp_path / "strict")]  # fmt: skip
    assert main(strict) == 2
    err = capsys.readouterr().err
    assert "flair: the bundle was trained with a FLAIR channel" in err
    assert "+experiment=pretrain_pet" in err and len(err.strip().splitlines()) == 1
