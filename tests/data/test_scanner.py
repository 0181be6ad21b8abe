"""Scanner-realistic synthetic subjects: geometry, head uptake, storage order and units.

One tiny-profile subject is built in scanner realism (RAS, SUV) and once more with LPS storage in
Bq/mL; both are compared with the brain-box subject of the same seed in the session fixture
``paediatric_cohort``. Expected positions come from the truth's pose records through an
independent composition of rotations (scipy), not from the generator's matrices.
"""

from __future__ import annotations

import dataclasses
import json

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from fdopa.cli import main
from fdopa.data.synthetic import SynthConfig
from fdopa.data.synthetic.generate import write_subject
from fdopa.data.synthetic.geometry import Warp
from fdopa.data.synthetic.scanner import Scan
from fdopa.data.synthetic.subject import build_subject
from fdopa.hospital.suv import suv_per_bqml
from fdopa.kinetics import PRESETS, reference_indices
from fdopa.layout import SubjectPaths

PID = "sub-pd001"
BRAIN_CENTRE = np.array([0.0, -17.0, 5.0])  # the warp's and the pose's centre (mm)
#: Points of head structures in template millimetres (inside each shape, away from edges).
HEAD_POINTS = {
    "parotid": (52.0, 2.0, -72.0),
    "neck_muscle": (35.0, -40.0, -150.0),
    "eye": (32.0, 58.0, -42.0),
    "face": (0.0, 75.0, -100.0),
}
#: FDOPA-typical static SUV ranges of those structures.
HEAD_RANGES = {"parotid": (2.0, 3.0), "neck_muscle": (1.0, 1.5), "eye": (0.3, 0.5),
               "face": (0.7, 1.2)}  # fmt: skip


def _seed(config: SynthConfig) -> np.random.SeedSequence:
    return np.random.SeedSequence([config.seed, 1]).spawn(config.n)[0]


@pytest.fixture(scope="module")
def scanner_config(paediatric_config) -> SynthConfig:
    return dataclasses.replace(paediatric_config, realism="scanner", scanner="tiny")


@pytest.fixture(scope="module")
def scan_subject(scanner_config):
    return build_subject(scanner_config, PID, _seed(scanner_config), True)


@pytest.fixture(scope="module")
def stored(scanner_config, tmp_path_factory):
    """The same subject stored LPS in Bq/mL, written and read back."""
    config = dataclasses.replace(scanner_config, orientation="lps", units="bqml")
    subject = build_subject(config, PID, _seed(config), True)
    root = tmp_path_factory.mktemp("scanner_lps")
    write_subject(root, subject, config)
    return subject, SubjectPaths(root, PID)


def _world(truth: dict, template_mm) -> np.ndarray:
    """Template mm → scanner world mm: the warp (scale, rotation, shift), then the pose."""
    warp, scan = truth["warp"], truth["scanner"]
    rotate = Rotation.from_euler("xyz", warp["rotation_deg"], degrees=True)
    subject = rotate.apply((np.asarray(template_mm) - BRAIN_CENTRE) * warp["scale"])
    subject += BRAIN_CENTRE + warp["translation_mm"]
    pose = Rotation.from_euler("xyz", scan["tilt_deg"], degrees=True)
    return pose.apply(subject - BRAIN_CENTRE) + BRAIN_CENTRE + scan["offset_mm"]


def _value_at(image: np.ndarray, affine: np.ndarray, world_mm: np.ndarray) -> float:
    """Value of the voxel nearest to a world point."""
    index = np.linalg.solve(affine, [*world_mm, 1.0])[:3]
    return float(image[tuple(np.round(index).astype(int))])


def _centroid_mm(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return (affine @ [*np.argwhere(mask).mean(axis=0), 1.0])[:3]


def test_grid_follows_the_profile_and_covers_head_and_neck(scan_subject):
    s = scan_subject
    assert s.static.shape == s.labels.shape == s.flair.shape == (64, 64, 64)
    assert s.dynamic.shape[:3] == (64, 64, 64)
    np.testing.assert_allclose(nib.affines.voxel_sizes(s.affine), [5.0, 5.0, 5.0])
    assert nib.aff2axcodes(s.affine) == ("R", "A", "S")
    brain = np.argwhere(s.labels > 0)
    assert brain.min() > 0 and (brain.max(axis=0) < 63).all()  # brain well inside the field
    # Face and neck: activity ≥ 120 mm below the lowest brain voxel, down to the bottom slice.
    head = np.argwhere(s.static_clean > 0.3)
    assert (brain[:, 2].min() - head[:, 2].min()) * 5.0 >= 120.0
    assert (s.static_clean[..., 0] > 0.3).sum() * 25.0 > 50.0**2  # neck cut by the field (mm²)
    assert s.static_clean[..., -1].max() < 0.05  # nothing in the top slice: head inside


def test_labels_align_with_the_pet_under_the_affine(scan_subject):
    s = scan_subject
    tumour, brain = s.labels == 3, s.labels == 1
    assert s.static_clean[tumour].mean() > 1.3 * s.static_clean[brain].mean()
    expected = _world(s.truth, s.truth["lesion"]["centre_template_mm"])
    assert np.linalg.norm(_centroid_mm(tumour, s.affine) - expected) < 10.0  # two voxels


def test_head_uptake_outside_the_brain_in_fdopa_ranges(scan_subject):
    s = scan_subject
    suv = s.truth["scanner"]["head_suv"]
    for name, point in HEAD_POINTS.items():
        low, high = HEAD_RANGES[name]
        assert low <= suv[name] <= high, name
        seen = _value_at(s.static_clean, s.affine, _world(s.truth, point))
        assert seen == pytest.approx(suv[name], rel=0.1), name
        assert _value_at(s.labels, s.affine, _world(s.truth, point)) == 0, name  # outside brain
    parotid = _value_at(s.static_clean, s.affine, _world(s.truth, HEAD_POINTS["parotid"]))
    muscle = _value_at(s.static_clean, s.affine, _world(s.truth, HEAD_POINTS["neck_muscle"]))
    assert parotid > muscle
    # Cranial vault above the brain: skull (0.3–0.6) and scalp (0.5–1.0), blurred.
    vault = _world(s.truth, (0.0, -20.0, 90.0))
    assert 0.15 < _value_at(s.static_clean, s.affine, vault) < 1.0


def test_flair_shows_the_head_as_a_registered_clinical_flair_does(scan_subject, paediatric_cohort):
    from fdopa.data.synthetic.head import STRUCTURES

    s = scan_subject
    seen = {name: _value_at(s.flair, s.affine, _world(s.truth, point))
            for name, point in HEAD_POINTS.items()}  # fmt: skip
    for name, value in seen.items():
        assert value == pytest.approx(STRUCTURES[name].flair, rel=0.15, abs=30.0), name  # noise 10
    # FLAIR contrast: fat-rich gland and face bright, muscle intermediate, vitreous (fluid) dark
    assert min(seen["parotid"], seen["face"]) > seen["neck_muscle"] > 2 * seen["eye"]
    # the scalp above the vertex is bright; a brain box's FLAIR has nothing outside the brain
    column = [
        _value_at(s.flair, s.affine, _world(s.truth, (0.0, -20.0, z))) for z in range(70, 110)
    ]
    assert max(column) > 300.0 and column[-1] < 30.0  # the thin scalp, then air
    paths = SubjectPaths(paediatric_cohort, PID)
    box_flair = np.asarray(nib.load(paths.flair).dataobj)
    box_labels = np.asarray(nib.load(paths.labels).dataobj)
    from scipy import ndimage

    outside = ~ndimage.binary_dilation(box_labels > 0, iterations=3)
    assert box_flair[outside].max() < 300.0  # at most CSF (150) and noise: no scalp


def test_head_curves_blood_falls_salivary_rises(scan_subject):
    s = scan_subject
    frames = s.truth["scanner"]["tacs_normalised"]
    mid = np.asarray(s.truth["tacs_model"]["mid_min"])
    late = mid >= 10
    assert np.all(np.diff(np.asarray(frames["blood"])[late]) < 0)
    assert np.all(np.diff(np.asarray(frames["salivary"])[late]) > 0)
    # Frames tile the static window, so its duration-weighted mean is the static image.
    starts, durations = s.framing.starts_s, s.framing.durations_s
    inside = [i for i, t in enumerate(starts) if t >= 600 and t + durations[i] <= 1800]
    weights = np.asarray([durations[i] for i in inside]) / 1200.0
    mean = np.tensordot(s.dynamic_clean[..., inside], weights, axes=([-1], [0]))
    np.testing.assert_allclose(mean, s.static_clean, rtol=1e-4, atol=1e-5)


def test_truth_is_the_indices_of_the_noise_free_scan_and_close_to_the_brain_box(
    scan_subject, paediatric_cohort
):
    s = scan_subject
    mine = reference_indices(s.static_clean, s.labels, s.affine, PRESETS["guideline"],
                             participant_id=PID)["indices"]  # fmt: skip
    truth = s.truth["indices"]["guideline"]
    for key in ("tsr", "tbr_max", "tumour_suvmax", "striatum_suvmean", "tumour_ml"):
        assert truth[key] == pytest.approx(mine[key], rel=1e-9), key
    # Same tumour and kinetics as the brain box; TBRmax, a maximum, also follows the resolution
    # (here 5 mm voxels and a 6 mm PSF against 4 mm voxels and the site's 4.5–6.5 mm PSF).
    box = json.loads(SubjectPaths(paediatric_cohort, PID).truth.read_text())["indices"]
    assert truth["tsr"] == pytest.approx(box["guideline"]["tsr"], rel=0.1)
    assert truth["tbr_max"] == pytest.approx(box["guideline"]["tbr_max"], rel=0.2)


def test_lps_bqml_storage_round_trips_to_the_ras_suv_subject(scan_subject, stored):
    ras = scan_subject
    subject, paths = stored
    image = nib.load(paths.static_pet)
    assert nib.aff2axcodes(image.affine) == ("L", "P", "S")
    for path in (paths.labels, paths.noise_free.static_pet, paths.flair, paths.dynamic_pet):
        np.testing.assert_allclose(nib.load(path).affine, image.affine, atol=1e-6)
    sidecar = json.loads(paths.static_sidecar.read_text())
    assert sidecar["Units"] == "Bq/mL" and sidecar["ImageDecayCorrected"] is True
    assert sidecar["ImageDecayCorrectionTime"] == 0
    scale = suv_per_bqml(sidecar["BodyWeight"], sidecar["InjectedRadioactivity"] * 1e6)
    suv = np.asarray(image.dataobj)[::-1, ::-1] * scale
    np.testing.assert_allclose(suv, ras.static, rtol=1e-5, atol=1e-6)  # same seed: same subject
    clean = np.asarray(nib.load(paths.noise_free.static_pet).dataobj)[::-1, ::-1] * scale
    np.testing.assert_allclose(clean, ras.static_clean, rtol=1e-5, atol=1e-6)
    labels = np.asarray(nib.load(paths.labels).dataobj)
    np.testing.assert_array_equal(labels[::-1, ::-1], ras.labels)
    np.testing.assert_allclose(
        _centroid_mm(labels == 3, image.affine),
        _centroid_mm(ras.labels == 3, ras.affine),
        atol=1e-6,
    )
    assert subject.truth["indices"] == ras.truth["indices"]  # the truth stays in SUV
    dynamic = json.loads(paths.dynamic_sidecar.read_text())
    assert dynamic["Units"] == "Bq/mL"


def test_pose_is_seeded_per_subject_and_bounded(scanner_config):
    seeds = np.random.SeedSequence([scanner_config.seed, 1]).spawn(6)
    warp = Warp.random(np.random.default_rng(0), 1.0)
    poses = [Scan.draw(scanner_config, seed, warp).placement for seed in seeds]
    assert Scan.draw(scanner_config, seeds[0], warp).placement == poses[0]
    assert len({p.tilt_deg for p in poses}) == len(poses)
    for pose in poses:
        nod, roll, turn = pose.tilt_deg
        assert 2.0 <= abs(nod) <= 15.0 and abs(roll) <= 5.0 and abs(turn) <= 5.0
        assert np.all(np.abs(pose.offset_mm) <= [20.0, 20.0, 10.0])


@pytest.mark.parametrize(
    ("field", "value"),
    [("realism", "photo"), ("scanner", "mri-3t"), ("orientation", "las"), ("units", "kbq")],
)
def test_bad_scanner_option_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field}: unknown value"):
        SynthConfig(**{field: value})


def test_record_keeps_brain_box_cohorts_unchanged():
    assert "realism" not in SynthConfig().record() and "units" not in SynthConfig().record()
    assert "head_model" not in SynthConfig().record()
    record = SynthConfig(realism="scanner", units="bqml").record()
    assert record["realism"] == "scanner" and record["units"] == "bqml"
    assert record["scanner"] == "std-200"
    assert record["head_model"] == 2  # a cohort of an earlier head model is not reused


def test_a_cached_cohort_is_compared_on_every_recorded_option(tmp_path):
    from fdopa.data.synthetic import differing_options

    assert differing_options(SynthConfig(), tmp_path) is None  # no description: not generated
    scanner = SynthConfig(realism="scanner")
    description = {"fdopa_synth": scanner.record()}
    (tmp_path / "dataset_description.json").write_text(json.dumps(description))
    assert differing_options(scanner, tmp_path) == []
    # keys the brain box leaves out still count: a scanner cohort never passes for a brain box
    assert differing_options(SynthConfig(), tmp_path) == ["head_model", "realism", "scanner"]
    earlier = {k: v for k, v in scanner.record().items() if k != "head_model"}
    (tmp_path / "dataset_description.json").write_text(json.dumps({"fdopa_synth": earlier}))
    assert differing_options(scanner, tmp_path) == ["head_model"]


def test_cli_rejects_an_unknown_scanner_profile(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["synth", "--realism", "scanner", "--scanner", "mri-3t", "--out", str(out)]) == 2
    assert "fdopa synth: error: scanner:" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_cli_writes_a_scanner_subject_lps_in_bqml(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["synth", "--n", "1", "--dynamic-fraction", "0", "--jobs", "1", "--realism", "scanner",
            "--scanner", "tiny", "--orientation", "lps", "--units", "bqml"]  # fmt: skip
    assert main([*argv, "--out", str(out)]) == 0
    assert "wrote 1 paediatric subjects (tiny scanner" in capsys.readouterr().out
    paths = SubjectPaths(out, PID)
    assert nib.aff2axcodes(nib.load(paths.static_pet).affine) == ("L", "P", "S")
    assert nib.load(paths.static_pet).shape == (64, 64, 64)
    assert json.loads(paths.static_sidecar.read_text())["Units"] == "Bq/mL"
    described = json.loads((out / "dataset_description.json").read_text())["fdopa_synth"]
    assert (described["realism"], described["scanner"]) == ("scanner", "tiny")
