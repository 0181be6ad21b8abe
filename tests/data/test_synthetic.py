"""The synthetic FDOPA cohort: files, sidecars, ground truth, noise, outcomes.

Most tests read the session fixtures ``paediatric_cohort`` and ``adult_cohort`` of
``tests/conftest.py`` (generated once) and check numbers against independently computed truth:
frame physics, the reference indices, the kinetic model, the noise calibration. Only the
determinism and CLI tests generate subjects of their own.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

import fdopa.data.synthetic.generate as cohort_module
from fdopa.cli import main
from fdopa.data.synthetic import SynthConfig, generate_cohort
from fdopa.data.synthetic.geometry import pull
from fdopa.data.synthetic.imaging import gaussian_blur
from fdopa.data.synthetic.outcomes import draw_age
from fdopa.data.synthetic.subject import SyntheticSubject, build_subject
from fdopa.data.synthetic.tracer import (
    Framing,
    KineticParams,
    simulate_tacs,
    static_window_mean,
)
from fdopa.kinetics import PRESETS, reference_indices
from fdopa.layout import SubjectPaths

COHORT_FIXTURES = ("paediatric_cohort", "adult_cohort")
CONFIG_OF = {"paediatric_cohort": "paediatric_config", "adult_cohort": "adult_config"}

# Independent constants (cohort layout, index output names, the synthetic-cohort model and
# physics), never imported from the generator.
PARTICIPANT_COLUMNS = (
    "participant_id", "cohort", "age", "sex", "grade", "os_months", "os_event", "pfs_months",
    "pfs_event", "site",
)  # fmt: skip
INDEX_KEYS = (
    "participant_id", "preset", "tumour_suvmax", "tumour_suvmean", "tumour_suvpeak", "tumour_ml",
    "striatum_suvmax", "striatum_suvmean", "reference_suvmean", "reference_suvmax",
    "reference_ml", "reference_rule", "tsr", "tbr_max", "tbr_mean", "mtv_ml", "measurable",
    "ttp_min", "slope_tumour_per_h", "slope_striatum_per_h", "dsr", "curve_pattern",
    "ki_ref_tumour", "ki_ref_striatum", "missing",
)  # fmt: skip
KINETIC_TRUTH_KEYS = (
    "tsr", "ttp_min", "slope_tumour_per_h", "slope_striatum_per_h", "dsr", "curve_pattern",
    "ki_ref_tumour", "ki_ref_striatum",
)  # fmt: skip
COMPARTMENTS = ("cortex", "white_matter", "striatum", "tumour", "necrosis")
F18_LAMBDA = math.log(2.0) / 6586.2  # 1/s
VOXEL_ML_TINY = 4.0**3 / 1000.0
#: Typical (median) K1, k2, k3; the necrotic core is the generator's own addition.
TYPICAL_RATES = {
    "striatum": (0.050, 0.050, 0.060),
    "cortex": (0.035, 0.050, 0.0),
    "white_matter": (0.020, 0.040, 0.0),
    "hgg": (0.160, 0.160, 0.020),
    "hgg_fast": (0.250, 0.400, 0.015),
    "lgg": (0.040, 0.040, 0.012),
    "necrosis": (0.005, 0.050, 0.0),
}
#: Paediatric linear brain-size factors per age band (years).
AGE_BANDS = ((2.0, 6.0, 0.83, 0.90), (6.0, 13.0, 0.88, 0.96), (13.0, 18.0, 0.95, 1.00))
LOCATIONS = {
    "adult": {"frontal", "temporal", "insular", "parietal"},
    "paediatric": {
        "pons", "thalamus", "cerebellum", "optic_pathway", "frontal", "temporal", "insular",
        "parietal",
    },
}  # fmt: skip


# --- helpers -------------------------------------------------------------------------------


def load(path: Path) -> np.ndarray:
    """The array exactly as stored (no float64 conversion, no scaling surprises)."""
    return np.asarray(nib.load(path).dataobj)


def participants(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "participants.tsv", sep="\t")


def truth_of(root: Path, pid: str) -> dict:
    return json.loads(SubjectPaths(root, pid).truth.read_text())


def sidecar(path: Path) -> dict:
    return json.loads(path.read_text())


def world_x(affine: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """World x (mm) of every voxel of ``mask``."""
    ijk = np.argwhere(mask).T
    return affine[0, :3] @ ijk + affine[0, 3]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def dcf(starts_s: np.ndarray, durations_s: np.ndarray) -> np.ndarray:
    """F-18 decay-correction factor to injection, including decay during the frame."""
    x = F18_LAMBDA * durations_s
    return np.exp(F18_LAMBDA * starts_s) * x / (1.0 - np.exp(-x))


def window_mean(frames: np.ndarray, starts: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Duration-weighted mean (float64) of the frames inside 10–30 min."""
    inside = (starts >= 600.0 - 1e-6) & (starts + durations <= 1800.0 + 1e-6)
    assert durations[inside].sum() == pytest.approx(1200.0)
    weights = durations[inside] / durations[inside].sum()
    return np.tensordot(frames[..., inside].astype(np.float64), weights, axes=([-1], [0]))


def assert_same(actual, expected, rel: float, where: str = "") -> None:
    """Recursive comparison of JSON-like records; numbers to ``rel``, the rest exactly."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        assert set(actual) == set(expected), f"{where}: keys {set(actual) ^ set(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], rel, f"{where}.{key}")
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, rel, f"{where}[{i}]")
    elif expected is None or isinstance(expected, bool | str):
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"
    else:
        assert actual == pytest.approx(expected, rel=rel, abs=1e-12), where


def subject_images(paths: SubjectPaths, dynamic: bool) -> list[Path]:
    """Every image file of a subject (cohort layout plus the synthetic derivatives)."""
    images = [
        paths.static_pet,
        paths.flair,
        paths.labels,
        paths.manual_labels,
        paths.noise_free.static_pet,
    ]
    if dynamic:
        images += [paths.dynamic_pet, paths.noise_free.dynamic_pet]
    return images


def subject_from_files(root: Path, pid: str, config: SynthConfig) -> SyntheticSubject:
    """A :class:`SyntheticSubject` rebuilt from written files (a cheap stand-in for tests)."""
    paths = SubjectPaths(root, pid)
    row = participants(root).set_index("participant_id").loc[pid]
    dynamic = paths.dynamic_pet.exists()
    return SyntheticSubject(
        participant_id=pid,
        affine=nib.load(paths.static_pet).affine,
        static=load(paths.static_pet),
        static_clean=load(paths.noise_free.static_pet),
        labels=load(paths.labels),
        manual=load(paths.manual_labels),
        dynamic=load(paths.dynamic_pet) if dynamic else None,
        dynamic_clean=load(paths.noise_free.dynamic_pet) if dynamic else None,
        flair=load(paths.flair),
        framing=Framing.from_spec(config.framing),
        participant={
            "participant_id": pid,
            **{k: getattr(v, "item", lambda v=v: v)() for k, v in row.items()},
        },
        truth=truth_of(root, pid),
    )


@pytest.fixture(params=COHORT_FIXTURES)
def cohort(request) -> tuple[Path, SynthConfig]:
    """Each session cohort with its configuration."""
    return (
        request.getfixturevalue(request.param),
        request.getfixturevalue(CONFIG_OF[request.param]),
    )


# --- 1. files, grids and labels ------------------------------------------------------------


def test_every_image_shares_one_grid_and_labels_are_valid(cohort):
    root, config = cohort
    table = participants(root)
    assert len(table) == config.n
    n_frames = Framing.from_spec(config.framing).n_frames
    for pid, dynamic in zip(table["participant_id"], table["dynamic"], strict=True):
        paths = SubjectPaths(root, pid)
        ref = nib.load(paths.static_pet)
        assert ref.shape == (44, 52, 44)  # 176 × 208 × 176 mm at 4 mm
        np.testing.assert_allclose(ref.header.get_zooms()[:3], (4.0, 4.0, 4.0))
        for path in subject_images(paths, bool(dynamic)):
            image = nib.load(path)
            assert image.shape[:3] == ref.shape, path
            np.testing.assert_allclose(image.affine, ref.affine, rtol=0, atol=1e-3, err_msg=path)
        if dynamic:
            image = nib.load(paths.dynamic_pet)
            assert image.shape == (*ref.shape, n_frames)
            assert image.header.get_xyzt_units() == ("mm", "sec")
            assert nib.load(paths.noise_free.dynamic_pet).shape == image.shape
        else:
            assert not paths.dynamic_pet.exists()
            assert not paths.noise_free.dynamic_pet.exists()

        labels = load(paths.labels)
        assert np.issubdtype(labels.dtype, np.integer)
        assert set(np.unique(labels).tolist()) == {0, 1, 2, 3}, pid
        midline = world_x(ref.affine, labels > 0).mean()
        striatum_x = world_x(ref.affine, labels == 2)
        assert (labels == 3).sum() > 0, f"{pid}: empty tumour"
        assert (striatum_x < midline).sum() > 5, f"{pid}: no left striatum"
        assert (striatum_x > midline).sum() > 5, f"{pid}: no right striatum"
        # PET is in SUV: background is ~0, normal brain of the order of 1.
        static = load(paths.noise_free.static_pet)
        assert static.dtype == np.float32
        assert 0.5 < float(static[labels == 1].mean()) < 3.0, pid


def test_lesion_side_matches_truth_hemisphere(cohort):
    root, _ = cohort
    for pid in participants(root)["participant_id"]:
        paths = SubjectPaths(root, pid)
        affine = nib.load(paths.labels).affine
        labels = load(paths.labels)
        offset = world_x(affine, labels == 3).mean() - world_x(affine, labels > 0).mean()
        lesion = truth_of(root, pid)["lesion"]
        side = truth_of(root, pid)["indices"]["guideline"]["tumour_side"]
        if lesion["hemisphere"] == "midline":
            assert lesion["location"] in {"pons", "optic_pathway"}
            assert abs(offset) < 5.0, pid
            assert side == "midline"
        else:
            assert offset * (1 if lesion["hemisphere"] == "right" else -1) > 5.0, pid  # RAS x
            assert side == lesion["hemisphere"]


# --- 2. participants.tsv -------------------------------------------------------------------


def test_participants_table_has_spec_columns_and_valid_values(cohort):
    root, config = cohort
    table = participants(root)
    assert set(PARTICIPANT_COLUMNS) <= set(table.columns)
    assert table["participant_id"].tolist() == config.participant_ids()
    assert table["participant_id"].is_unique
    assert (table["cohort"] == config.cohort).all()
    assert set(table["grade"]) <= {"LGG", "HGG"}
    assert set(table["sex"]) <= {"F", "M"}
    assert table["site"].str.match(r"^site-\d\d$").all()
    for event in ("os_event", "pfs_event"):
        assert set(table[event]) <= {0, 1}
    assert (table["os_months"] > 0).all()
    assert (table["pfs_months"] > 0).all()
    assert (table["pfs_months"] <= table["os_months"]).all()
    # Death counts as progression; without a PFS event both times are the censoring time.
    assert (table.loc[table["os_event"] == 1, "pfs_event"] == 1).all()
    censored = table[table["pfs_event"] == 0]
    np.testing.assert_array_equal(censored["pfs_months"], censored["os_months"])
    ages = table["age"]
    if config.cohort == "paediatric":
        assert ((ages >= 2.0) & (ages < 18.0)).all(), ages.tolist()
    else:
        assert ((ages >= 20.0) & (ages <= 80.0)).all(), ages.tolist()
    assert (table["weight_kg"] > 5).all() and (table["injected_mbq"] > 0).all()
    for row in table.itertuples():
        truth = truth_of(root, row.participant_id)
        kinetic = truth["kinetic_classes"]["tumour"]
        assert row.kinetic_class == kinetic
        assert row.grade == ("HGG" if kinetic.startswith("hgg") else "LGG")
        assert row.location == truth["lesion"]["location"]
        assert row.location in LOCATIONS[config.cohort]


def test_dynamic_column_matches_4d_files_and_seed_derivation(cohort):
    root, config = cohort
    table = participants(root)
    has_4d = [SubjectPaths(root, pid).dynamic_pet.exists() for pid in table["participant_id"]]
    assert table["dynamic"].astype(bool).tolist() == has_4d
    assert sum(has_4d) == round(config.dynamic_fraction * config.n)
    # Same derivation as cohort.py: dynamic subjects drawn by default_rng([seed, 0]).
    expected = np.zeros(config.n, bool)
    rng = np.random.default_rng([config.seed, 0])
    expected[rng.choice(config.n, round(config.dynamic_fraction * config.n), replace=False)] = 1
    assert has_4d == expected.tolist()


def test_dataset_description_records_the_config(cohort):
    root, config = cohort
    description = json.loads((root / "dataset_description.json").read_text())
    recorded = description["fdopa_synth"]
    assert recorded["cohort"] == config.cohort
    assert recorded["n"] == config.n
    assert recorded["seed"] == config.seed
    assert recorded["dynamic_fraction"] == config.dynamic_fraction
    assert recorded["static_window_s"] == [600.0, 1800.0]


# --- 3. sidecars ---------------------------------------------------------------------------


def test_sidecars_are_physically_consistent(cohort):
    root, _ = cohort
    table = participants(root).set_index("participant_id")
    for pid, row in table.iterrows():
        paths = SubjectPaths(root, pid)
        pairs = [(paths.static_sidecar, None), (paths.noise_free.static_sidecar, None)]
        if row["dynamic"]:
            pairs += [
                (paths.dynamic_sidecar, paths.dynamic_pet),
                (paths.noise_free.dynamic_sidecar, paths.noise_free.dynamic_pet),
            ]
        for path, image in pairs:
            meta = sidecar(path)
            assert meta["TracerRadionuclide"] == "F18", path
            assert meta["TracerName"] == "FDOPA"
            assert meta["Units"] == "g/mL"
            assert meta["InjectedRadioactivity"] == row["injected_mbq"], path
            assert meta["BodyWeight"] == row["weight_kg"], path
            starts = np.asarray(meta["FrameTimesStart"], float)
            durations = np.asarray(meta["FrameDuration"], float)
            factors = np.asarray(meta["DecayCorrectionFactor"], float)
            assert starts.size == durations.size == factors.size
            np.testing.assert_allclose(factors, dcf(starts, durations), rtol=1e-9)
            assert (factors >= 1.0).all()
            if image is None:  # static: one 10–30 min frame
                assert meta["FrameTimesStart"] == [600.0]
                assert meta["FrameDuration"] == [1200.0]
                continue
            assert starts.size == nib.load(image).shape[3]
            assert (durations > 0).all()
            assert (np.diff(starts) > 0).all()
            assert (starts[1:] >= starts[:-1] + durations[:-1] - 1e-9).all()  # no overlap
            assert starts[0] == 0.0
            assert starts[-1] + durations[-1] == pytest.approx(1800.0)


# --- 4. static = window mean of the dynamic frames ------------------------------------------


def test_static_is_duration_weighted_mean_of_10_to_30_min_frames(paediatric_cohort):
    root = paediatric_cohort
    table = participants(root)
    dynamic_ids = table.loc[table["dynamic"] == 1, "participant_id"].tolist()
    assert len(dynamic_ids) == 4
    for pid in dynamic_ids:
        paths = SubjectPaths(root, pid)
        meta = sidecar(paths.dynamic_sidecar)
        starts = np.asarray(meta["FrameTimesStart"], float)
        durations = np.asarray(meta["FrameDuration"], float)
        for subject in (paths, paths.noise_free):
            static = load(subject.static_pet).astype(np.float64)
            expected = window_mean(load(subject.dynamic_pet), starts, durations)
            scale = float(np.abs(expected).max())
            np.testing.assert_allclose(static, expected, rtol=1e-5, atol=1e-6 * scale)
            brain = load(paths.labels) > 0
            np.testing.assert_allclose(static[brain], expected[brain], rtol=1e-5)


# --- 5. determinism ------------------------------------------------------------------------


def _cohort_seeds(config: SynthConfig) -> tuple[list[np.random.SeedSequence], np.ndarray]:
    """The per-subject seeds and dynamic flags, derived as in ``generate_cohort``."""
    flags = np.zeros(config.n, bool)
    rng = np.random.default_rng([config.seed, 0])
    flags[rng.choice(config.n, round(config.dynamic_fraction * config.n), replace=False)] = True
    return np.random.SeedSequence([config.seed, 1]).spawn(config.n), flags


@pytest.fixture(scope="module")
def rebuilt_dynamic_subject(paediatric_config) -> tuple[int, SyntheticSubject]:
    """The first dynamic subject of ``paediatric_cohort``, rebuilt in this process."""
    seeds, flags = _cohort_seeds(paediatric_config)
    index = int(np.flatnonzero(flags)[0])
    pid = paediatric_config.participant_ids()[index]
    return index, build_subject(paediatric_config, pid, seeds[index], True)


def _assert_subject_matches_files(
    subject: SyntheticSubject, root: Path, table_root: Path | None = None
) -> None:
    """Arrays, truth and participants row of ``subject`` equal the files under ``root``."""
    paths = SubjectPaths(root, subject.participant_id)
    pairs = {
        "static": (subject.static, paths.static_pet),
        "static_clean": (subject.static_clean, paths.noise_free.static_pet),
        "labels": (subject.labels, paths.labels),
        "manual": (subject.manual, paths.manual_labels),
        "flair": (subject.flair, paths.flair),
    }
    if subject.dynamic is not None:
        pairs["dynamic"] = (subject.dynamic, paths.dynamic_pet)
        pairs["dynamic_clean"] = (subject.dynamic_clean, paths.noise_free.dynamic_pet)
    else:
        assert not paths.dynamic_pet.exists()
    for name, (array, path) in pairs.items():
        stored = load(path)
        assert stored.dtype == array.dtype, name
        np.testing.assert_array_equal(stored, array, err_msg=name)
    np.testing.assert_allclose(nib.load(paths.static_pet).affine, subject.affine, atol=1e-6)
    assert json.loads(json.dumps(subject.truth)) == truth_of(root, subject.participant_id)
    table = participants(table_root or root).set_index("participant_id")
    row = table.loc[subject.participant_id]
    for key, value in subject.participant.items():
        if key != "participant_id":
            assert row[key] == value, key


@pytest.mark.slow
def test_build_subject_reproduces_the_written_subject(rebuilt_dynamic_subject, paediatric_cohort):
    # The fixture cohort was written by 2 workers; the rebuild runs here, alone.
    _, subject = rebuilt_dynamic_subject
    assert subject.dynamic is not None
    _assert_subject_matches_files(subject, paediatric_cohort)


@pytest.mark.slow
def test_another_seed_gives_another_subject(
    rebuilt_dynamic_subject, paediatric_config, paediatric_cohort
):
    index, same = rebuilt_dynamic_subject
    other_seed = np.random.SeedSequence([paediatric_config.seed + 1, 1]).spawn(index + 1)[index]
    other = build_subject(paediatric_config, same.participant_id, other_seed, True)
    assert other.static.shape == same.static.shape
    assert not np.allclose(other.static_clean, same.static_clean)
    assert not np.allclose(other.static, same.static)
    assert not np.array_equal(other.labels, same.labels)
    assert other.truth["microparameters"] != same.truth["microparameters"]
    assert other.truth["warp"] != same.truth["warp"]


def test_write_subject_round_trips_written_files(paediatric_cohort, paediatric_config, tmp_path):
    table = participants(paediatric_cohort)
    static_id = table.loc[table["dynamic"] == 0, "participant_id"].iloc[0]
    dynamic_id = table.loc[table["dynamic"] == 1, "participant_id"].iloc[0]
    for pid in (static_id, dynamic_id):
        subject = subject_from_files(paediatric_cohort, pid, paediatric_config)
        cohort_module.write_subject(tmp_path, subject, paediatric_config)
        _assert_subject_matches_files(subject, tmp_path, table_root=paediatric_cohort)
        mine, theirs = SubjectPaths(tmp_path, pid), SubjectPaths(paediatric_cohort, pid)
        assert sidecar(mine.static_sidecar) == sidecar(theirs.static_sidecar)
        if subject.dynamic is not None:
            assert sidecar(mine.dynamic_sidecar) == sidecar(theirs.dynamic_sidecar)


# --- 6. ground truth -----------------------------------------------------------------------


def test_truth_indices_equal_reference_indices_of_noise_free_images(cohort):
    root, _ = cohort
    for row in participants(root).itertuples():
        pid = row.participant_id
        paths = SubjectPaths(root, pid)
        truth = truth_of(root, pid)
        static = load(paths.noise_free.static_pet)
        labels = load(paths.labels)
        affine = nib.load(paths.labels).affine
        dynamic: dict = {}
        if row.dynamic:
            meta = sidecar(paths.noise_free.dynamic_sidecar)
            dynamic = {
                "dynamic": load(paths.noise_free.dynamic_pet),
                "frame_start_s": np.asarray(meta["FrameTimesStart"]),
                "frame_duration_s": np.asarray(meta["FrameDuration"]),
            }
        assert set(truth["indices"]) == {"guideline", "genoa2024"}
        for name in ("guideline", "genoa2024"):
            result = reference_indices(
                static, labels, affine, PRESETS[name], participant_id=pid, **dynamic
            )
            assert_same(truth["indices"][name], result["indices"], 1e-9, f"{pid}.{name}")
            if row.dynamic and name == "guideline":
                assert_same(truth["tacs_image"], result["tacs"], 1e-9, f"{pid}.tacs")
        # Kinetic truth always exists (from the noise-free 4D, written or not) and equals the
        # guideline indices whenever the 4D image is part of the cohort.
        kinetic = truth["kinetic_truth"]
        assert set(kinetic) == set(KINETIC_TRUTH_KEYS)
        assert kinetic["tsr"] == truth["indices"]["guideline"]["tsr"]
        assert 0.0 < kinetic["ttp_min"] <= 30.0
        assert kinetic["curve_pattern"] in {"increasing", "plateau", "decreasing"}
        if row.dynamic:
            for key in KINETIC_TRUTH_KEYS:
                assert kinetic[key] == truth["indices"]["guideline"][key], key
        else:
            assert truth["indices"]["guideline"]["missing"]["ttp_min"] == "no_dynamic"


def test_truth_has_spec_index_names(cohort):
    root, _ = cohort
    for pid in participants(root)["participant_id"]:
        truth = truth_of(root, pid)
        assert {"microparameters", "tacs_model", "indices", "kinetic_truth"} <= set(truth)
        for name in ("guideline", "genoa2024"):
            indices = truth["indices"][name]
            assert list(indices)[: len(INDEX_KEYS)] == list(INDEX_KEYS)
            assert indices["participant_id"] == pid
            assert indices["preset"] == name
            for key in INDEX_KEYS[2:-1]:  # a value, or a reason why not — never both
                assert (indices[key] is None) == (key in indices["missing"]), (pid, key)
            assert indices["tumour_ml"] == pytest.approx(truth["lesion"]["volume_ml_labels"])


def test_tacs_model_equals_simulation_of_truth_microparameters(cohort):
    root, config = cohort
    framing = Framing.from_spec(config.framing)
    sigma = math.sqrt(math.log1p(config.parameter_cv**2))
    for pid in participants(root)["participant_id"]:
        truth = truth_of(root, pid)
        kinetic_class = truth["kinetic_classes"]["tumour"]
        model = truth["tacs_model"]
        np.testing.assert_allclose(model["mid_min"], framing.mid_s / 60.0, rtol=1e-12)
        assert set(truth["microparameters"]) == set(COMPARTMENTS)
        for compartment in COMPARTMENTS:
            rates = truth["microparameters"][compartment]
            k1, k2, k3 = rates["K1"], rates["k2"], rates["k3"]
            assert rates["Ki"] == pytest.approx(k1 * k3 / (k2 + k3), rel=1e-12)
            # Lognormal around the typical (median) values: every draw within ±4.5 σ.
            typical = TYPICAL_RATES[kinetic_class if compartment == "tumour" else compartment]
            for value, median in zip((k1, k2, k3), typical, strict=True):
                if median == 0:
                    assert value == 0.0
                else:
                    assert abs(math.log(value / median)) < 4.5 * sigma, (pid, compartment)
            sim = simulate_tacs({compartment: KineticParams(k1, k2, k3)}, framing)
            np.testing.assert_allclose(
                model[compartment], sim["frames"][compartment], rtol=1e-6, atol=1e-9
            )
            window = static_window_mean(sim, start_min=10.0, end_min=30.0)[compartment]
            assert truth["static_window_model"][compartment] == pytest.approx(window, rel=1e-6)
        np.testing.assert_allclose(truth["input_function"]["cp"], sim["cp_frames"], rtol=1e-6)


def test_noise_free_dynamic_is_a_mix_of_the_truth_tacs(paediatric_cohort):
    """Each noise-free voxel TAC is Σ_k w_k·TAC_k of the five compartment curves."""
    root = paediatric_cohort
    table = participants(root)
    for pid in table.loc[table["dynamic"] == 1, "participant_id"]:
        paths = SubjectPaths(root, pid)
        model = truth_of(root, pid)["tacs_model"]
        basis = np.array([model[c] for c in COMPARTMENTS])  # (5, F)
        for image, noisy in ((paths.noise_free.dynamic_pet, False), (paths.dynamic_pet, True)):
            frames = load(image).reshape(-1, basis.shape[1]).astype(np.float64)
            norms = np.linalg.norm(frames, axis=1)
            keep = norms > 1e-2 * norms.max()
            weights = np.linalg.lstsq(basis.T, frames[keep].T, rcond=None)[0]
            residual = np.linalg.norm(frames[keep] - weights.T @ basis, axis=1) / norms[keep]
            if noisy:
                assert np.median(residual) > 1e-2, pid  # noise is really there
            else:
                assert residual.max() < 1e-5, pid


def test_lesion_and_volume_truth(cohort):
    root, config = cohort
    for pid in participants(root)["participant_id"]:
        truth = truth_of(root, pid)
        labels = load(SubjectPaths(root, pid).labels)
        lesion = truth["lesion"]
        assert 1.0 <= lesion["target_volume_ml"] <= 80.0
        assert lesion["volume_ml_labels"] == pytest.approx(
            (labels == 3).sum() * VOXEL_ML_TINY, rel=1e-9
        )
        assert lesion["volume_ml_1mm"] == pytest.approx(lesion["target_volume_ml"], rel=0.3)
        assert lesion["volume_ml_labels"] == pytest.approx(lesion["volume_ml_1mm"], rel=0.25)
        assert 0.10 <= lesion["heterogeneity_cv"] <= 0.20
        if lesion["necrotic"]:
            assert truth["kinetic_classes"]["tumour"].startswith("hgg")
        assert truth["brain_ml"] == pytest.approx((labels > 0).sum() * VOXEL_ML_TINY, rel=1e-9)
        assert 4.5 <= truth["imaging"]["psf_fwhm_mm"] <= 6.5
        assert truth["cohort"] == config.cohort and truth["grid"] == "tiny"


def test_outcome_log_hazard_follows_true_tsr_ttp_and_grade(cohort):
    root, _ = cohort
    for row in participants(root).itertuples():
        truth = truth_of(root, row.participant_id)
        kinetic = truth["kinetic_truth"]
        expected = (
            math.log(math.log(2) / 36.0)
            + 1.2 * (kinetic["tsr"] - 1.0)
            + 0.4 * (15.0 - kinetic["ttp_min"]) / 10.0
            + 0.7 * (row.grade == "HGG")
        )
        assert truth["outcome_model"]["log_hazard"] == pytest.approx(expected, rel=1e-12)


# --- 7. noise ------------------------------------------------------------------------------


def test_static_noise_cov_in_normal_brain_equals_truth_target(cohort):
    root, config = cohort
    low, high = (0.10, 0.15) if config.cohort == "adult" else (0.12, 0.225)
    for pid in participants(root)["participant_id"]:
        paths = SubjectPaths(root, pid)
        normal = load(paths.labels) == 1
        noisy = load(paths.static_pet).astype(np.float64)
        clean = load(paths.noise_free.static_pet).astype(np.float64)
        cov = float((noisy - clean)[normal].std() / clean[normal].mean())
        imaging = truth_of(root, pid)["imaging"]
        assert low <= cov <= high, (pid, cov)
        assert cov == pytest.approx(imaging["target_cov"], rel=1e-4), pid
        assert imaging["noise"] is True and imaging["noise_gain"] > 0


# --- 8. cohort-level behaviour -------------------------------------------------------------


def test_children_have_smaller_brains_scaled_by_age(paediatric_cohort, adult_cohort):
    volumes = {}
    for name, root in (("paediatric", paediatric_cohort), ("adult", adult_cohort)):
        table = participants(root)
        volumes[name] = []
        for row in table.itertuples():
            image = nib.load(SubjectPaths(root, row.participant_id).labels)
            voxel_ml = float(np.prod(image.header.get_zooms()[:3])) / 1000.0
            volumes[name].append(float((np.asarray(image.dataobj) > 0).sum()) * voxel_ml)
            scale = truth_of(root, row.participant_id)["warp"]["scale"]
            if name == "adult":
                low, high = 0.96, 1.03
            else:
                low, high = next((lo, hi) for a, b, lo, hi in AGE_BANDS if a <= row.age < b)
            assert all(0.97 * low - 1e-4 <= s <= 1.03 * high + 1e-4 for s in scale), (
                row.participant_id,
                row.age,
                scale,
            )
    assert np.median(volumes["paediatric"]) < np.median(volumes["adult"])
    # A 2–5-year-old brain (factor ≤ 0.90 → volume ≤ 0.73) is well below every adult brain.
    young = [
        v
        for v, age in zip(
            volumes["paediatric"], participants(paediatric_cohort)["age"], strict=True
        )
        if age < 6
    ]
    assert young, "paediatric fixture has no child under 6: change its seed"
    assert max(young) < 0.85 * min(volumes["adult"])


def test_hgg_peaks_earlier_and_has_higher_tsr_than_lgg(paediatric_cohort):
    root = paediatric_cohort
    table = participants(root)
    by_class: dict[str, list[dict]] = {"hgg": [], "lgg": []}
    for row in table.itertuples():
        truth = truth_of(root, row.participant_id)["kinetic_truth"]
        by_class.setdefault(row.kinetic_class, []).append(truth)
    for name in ("hgg", "lgg"):
        assert len(by_class[name]) >= 2, (
            f"paediatric fixture has {len(by_class[name])} {name} subjects: change its seed"
        )
    ttp = {k: np.median([t["ttp_min"] for t in v]) for k, v in by_class.items() if v}
    tsr = {k: np.mean([t["tsr"] for t in v]) for k, v in by_class.items() if v}
    assert ttp["hgg"] < ttp["lgg"]
    assert tsr["hgg"] > tsr["lgg"]
    # Intended behaviours: LGG rising to scan end, HGG peaking early (≈ 12 min) then flat/down.
    assert all(t["curve_pattern"] == "increasing" for t in by_class["lgg"])
    assert all(t["curve_pattern"] != "increasing" for t in by_class["hgg"])
    assert all(t["ttp_min"] <= 20.0 for t in by_class["hgg"])


# --- 9. manual delineation -----------------------------------------------------------------


def test_manual_delineation_differs_but_not_too_much(cohort):
    root, _ = cohort
    for pid in participants(root)["participant_id"]:
        paths = SubjectPaths(root, pid)
        reference, manual = load(paths.labels), load(paths.manual_labels)
        assert set(np.unique(manual).tolist()) <= {0, 1, 2, 3}
        assert np.array_equal(manual > 0, reference > 0), pid  # same head
        tumour = dice(manual == 3, reference == 3)
        striatum = dice(manual == 2, reference == 2)
        assert 0.5 <= tumour <= 0.98, (pid, tumour)
        assert striatum > 0.6, (pid, striatum)


# --- 10. bad arguments and atomic writing --------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n": 0}, "n"),
        ({"n": -3}, "n"),
        ({"n": 2.5}, "n"),
        ({"n": True}, "n"),
        ({"cohort": "elderly"}, "cohort"),
        ({"grid": "huge"}, "grid"),
        ({"dynamic_fraction": 1.5}, "dynamic_fraction"),
        ({"dynamic_fraction": -0.1}, "dynamic_fraction"),
        ({"dynamic_fraction": float("nan")}, "dynamic_fraction"),
        ({"parameter_cv": 1.0}, "parameter_cv"),
        ({"static_window_s": (600.0, 1700.0)}, "static_window_s"),
        ({"static_window_s": (600.0, 2400.0)}, "static_window_s"),
    ],
)
def test_bad_config_raises_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        SynthConfig(**kwargs)


@pytest.fixture
def fake_build(monkeypatch, paediatric_cohort, paediatric_config):
    """Replace ``build_subject`` by a copy of a written subject; ``fail_at`` raises."""
    template = subject_from_files(paediatric_cohort, "sub-pd001", paediatric_config)
    calls: list[str] = []
    state = {"fail_at": None}

    def build(config, participant_id, seed, dynamic):
        calls.append(participant_id)
        if len(calls) == state["fail_at"]:
            raise RuntimeError(f"boom in {participant_id}")
        participant = {**template.participant, "participant_id": participant_id}
        return dataclasses.replace(template, participant_id=participant_id, participant=participant)

    monkeypatch.setattr(cohort_module, "build_subject", build)
    return state, calls, template


def _staging_dirs(parent: Path, name: str) -> list[Path]:
    return sorted(parent.glob(f".{name}.tmp-*"))


def test_non_empty_target_is_refused_and_left_untouched(tmp_path, fake_build):
    _, calls, _ = fake_build
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    config = SynthConfig(n=1, flair=False)
    with pytest.raises(FileExistsError, match="not empty"):
        generate_cohort(config, out, progress=False)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "precious"
    assert calls == []
    assert _staging_dirs(tmp_path, "cohort") == []
    # A file in place of the directory is refused too.
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        generate_cohort(config, tmp_path / "file", progress=False)


def test_overwrite_replaces_an_fdopa_cohort_only(tmp_path, fake_build):
    _, calls, template = fake_build
    out = tmp_path / "cohort"
    generate_cohort(SynthConfig(n=2, flair=False), out, progress=False)
    (out / "keep.txt").write_text("old")
    with pytest.raises(FileExistsError, match=r"already exists \(an fdopa cohort\)"):
        generate_cohort(SynthConfig(n=1, flair=False), out, progress=False)
    calls.clear()
    table = generate_cohort(SynthConfig(n=1, flair=False), out, overwrite=True, progress=False)
    assert calls == ["sub-pd001"]
    assert table["participant_id"].tolist() == ["sub-pd001"]
    assert not (out / "keep.txt").exists()
    assert participants(out)["participant_id"].tolist() == ["sub-pd001"]
    np.testing.assert_array_equal(load(SubjectPaths(out, "sub-pd001").static_pet), template.static)
    assert _staging_dirs(tmp_path, "cohort") == []


def test_failure_mid_generation_leaves_nothing_behind(tmp_path, fake_build):
    state, calls, _ = fake_build
    state["fail_at"] = 2
    parent = tmp_path / "work"
    out = parent / "cohort"
    with pytest.raises(RuntimeError, match="boom in sub-pd002"):
        generate_cohort(SynthConfig(n=3, flair=False), out, n_jobs=1, progress=False)
    assert calls[:2] == ["sub-pd001", "sub-pd002"]
    assert not out.exists()
    assert _staging_dirs(parent, "cohort") == []
    assert list(parent.iterdir()) == []


def test_failure_with_overwrite_keeps_the_old_cohort(tmp_path, fake_build):
    state, _, _ = fake_build
    out = tmp_path / "cohort"
    generate_cohort(SynthConfig(n=1, flair=False), out, progress=False)
    (out / "keep.txt").write_text("old")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    state["fail_at"] = 2
    with pytest.raises(RuntimeError, match="boom"):
        generate_cohort(SynthConfig(n=2), out, overwrite=True, n_jobs=1, progress=False)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert _staging_dirs(tmp_path, "cohort") == []


# --- 11. command line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--n", "0"], "n"),
        (["--grid", "huge"], "grid"),
        (["--cohort", "elderly"], "cohort"),
        (["--dynamic-fraction", "1.5"], "dynamic_fraction"),
    ],
)
def test_cli_bad_arguments_exit_2_naming_the_field(args, field, tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["synth", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"fdopa synth: error: {field}:", err), err
    assert not out.exists()


def test_cli_refuses_non_empty_out(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert main(["synth", "--n", "1", "--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.slow
def test_cli_generates_one_subject_identical_to_the_cohort_fixture(
    tmp_path, capsys, paediatric_cohort
):
    # Same seed and settings as the fixture, one worker instead of two: subject 1 depends
    # only on (seed, index, dynamic flag), so its files must be identical.
    out = tmp_path / "cli"
    argv = ["synth", "--n", "1", "--seed", "0", "--dynamic-fraction", "0", "--jobs", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "wrote 1 paediatric subjects (tiny grid, 0 dynamic)" in capsys.readouterr().out
    assert participants(out)["participant_id"].tolist() == ["sub-pd001"]
    assert (
        not participants(paediatric_cohort).set_index("participant_id").loc["sub-pd001", "dynamic"]
    )
    mine, theirs = SubjectPaths(out, "sub-pd001"), SubjectPaths(paediatric_cohort, "sub-pd001")
    for path, other in zip(subject_images(mine, False), subject_images(theirs, False), strict=True):
        np.testing.assert_array_equal(load(path), load(other), err_msg=str(path))
    assert truth_of(out, "sub-pd001") == truth_of(paediatric_cohort, "sub-pd001")
    assert sidecar(mine.static_sidecar) == sidecar(theirs.static_sidecar)
    row = participants(out).iloc[0]
    expected = participants(paediatric_cohort).iloc[0]
    pd.testing.assert_series_equal(row, expected)


# --- demographics -------------------------------------------------------------------------


def test_paediatric_ages_stay_below_18():
    # seed 82 drew 17.95+ before the range was capped at 17.9 (rounded to 18.0)
    ages = [draw_age(np.random.default_rng(seed), "paediatric") for seed in range(200)]
    assert min(ages) >= 2.0
    assert max(ages) <= 17.9


def sparse_map(shape: tuple[int, int, int] = (40, 36, 32)) -> np.ndarray:
    """A smooth blob in one corner of an otherwise empty map (a lesion or the striatum)."""
    rng = np.random.default_rng(11)
    volume = np.zeros(shape, np.float32)
    volume[5:14, 20:30, 3:12] = rng.random((9, 10, 9))
    return volume


@pytest.mark.parametrize("order", [0, 1])
def test_pull_of_a_sparse_map_equals_the_plain_interpolation(order):
    volume = sparse_map()
    rng = np.random.default_rng(4)
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in (30, 34, 28)],
                                indexing="ij"))  # fmt: skip
    linear = (1.1 * np.eye(3) + 0.1 * rng.normal(size=(3, 3))).astype(np.float32)
    coordinates = np.einsum("ij,j...->i...", linear, grid) + 2 * rng.random((3, 1, 1, 1))
    coordinates = (coordinates + rng.normal(0, 0.3, coordinates.shape)).astype(np.float32)
    expected = ndimage.map_coordinates(volume, coordinates, order=order, mode="constant")
    sampled = pull(volume, coordinates, order=order)
    assert np.count_nonzero(expected) > 100  # the blob is reached
    np.testing.assert_array_equal(sampled, expected)
    assert not pull(np.zeros_like(volume), coordinates).any()


@pytest.mark.parametrize("sigma", [2.5, (1.2, 0.0, 3.0)])
def test_gaussian_blur_of_a_sparse_map_equals_scipys(sigma):
    volume = sparse_map()
    expected = ndimage.gaussian_filter(volume, sigma, mode="constant")
    np.testing.assert_array_equal(gaussian_blur(volume, sigma), expected)
    assert not gaussian_blur(np.zeros_like(volume), sigma).any()
