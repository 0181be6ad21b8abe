"""Reading a scan from NIfTI files: every bad input raises an InputError naming file and field."""

import numpy as np
import pytest
from scans import AFFINE, DURATIONS, STARTS, scan, write

from fdopa.kinetics import InputError, compute_indices, get_preset, indices_from_files
from fdopa.kinetics.io import sidecar_for


def _set(name, index, value):
    def change(parts):
        parts[name] = parts[name].copy()
        parts[name][index] = value

    return change


def _replace(name, function):
    def change(parts):
        parts[name] = function(parts[name])

    return change


def _sidecar(**fields):
    def change(parts):
        parts["sidecar"] = {**parts["sidecar"], **fields}

    return change


def _shift(name, mm):
    def change(parts):
        affine = AFFINE.copy()
        affine[0, 3] += mm
        parts["affines"][name] = affine

    return change


BAD_INPUTS = [
    ("labels_shape", _replace("labels", lambda a: a[:-1]), "labels", "shape"),
    ("labels_affine", _shift("labels", 0.01), "labels", "affine"),
    ("labels_value", _set("labels", (0, 0, 0), 4), "labels", "labels"),
    ("labels_fraction", _replace("labels", lambda a: a + np.float32(0.5)), "labels", "labels"),
    ("static_nan", _set("static", (3, 3, 3), np.nan), "static", "voxels"),
    ("static_4d", _replace("static", lambda a: a[..., None].repeat(2, 3)), "static", "shape"),
    ("dynamic_inf", _set("dynamic", (3, 3, 3, 1), np.inf), "dynamic", "voxels"),
    ("dynamic_3d", _replace("dynamic", lambda a: a[..., 0]), "dynamic", "shape"),
    ("dynamic_grid", _replace("dynamic", lambda a: a[1:]), "dynamic", "shape"),
    ("dynamic_affine", _shift("dynamic", -2.0), "dynamic", "affine"),
    ("count", _sidecar(FrameTimesStart=STARTS[:-1]), "sidecar", "FrameTimesStart"),
    ("count_duration", _sidecar(FrameDuration=[*DURATIONS, 60.0]), "sidecar", "FrameDuration"),
    (
        "not_increasing",
        _sidecar(FrameTimesStart=[0, 60, 60, 300, 600, 1200]),
        "sidecar",
        "FrameTimesStart",
    ),
    (
        "overlap",
        _sidecar(FrameDuration=[60, 90, 180, 300, 600, 600]),
        "sidecar",
        "FrameTimesStart/FrameDuration",
    ),
    (
        "zero_duration",
        _sidecar(FrameDuration=[60, 0, 180, 300, 600, 600]),
        "sidecar",
        "FrameDuration",
    ),
    ("no_duration", _sidecar(FrameDuration=None), "sidecar", "FrameDuration"),
    (
        "text",
        _sidecar(FrameTimesStart=["0", 60, 120, 300, 600, 1200]),
        "sidecar",
        "FrameTimesStart",
    ),
]


@pytest.mark.parametrize(
    ("case", "change", "file", "field"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_names_file_and_field(tmp_path, case, change, file, field):
    parts = scan()
    change(parts)
    paths = write(tmp_path, parts)
    with pytest.raises(InputError) as caught:
        indices_from_files(paths["static"], paths["labels"], "guideline",
                           dynamic_path=paths["dynamic"])  # fmt: skip
    error = caught.value
    assert (error.source, error.field) == (str(paths[file]), field), case
    assert str(error).startswith(f"{paths[file]}: {field}: ")


def test_unreadable_files(tmp_path):
    paths = write(tmp_path, scan())
    paths["labels"].write_bytes(b"not a nifti file")
    with pytest.raises(InputError, match="format") as caught:
        indices_from_files(paths["static"], paths["labels"], "guideline")
    assert caught.value.source == str(paths["labels"])
    data = paths["static"].read_bytes()
    paths["static"].write_bytes(data[: len(data) // 2])  # truncated gzip stream
    with pytest.raises(InputError, match="voxels"):
        indices_from_files(paths["static"], paths["dynamic"], "guideline")
    paths = write(tmp_path, scan())
    paths["sidecar"].write_text("{not json")
    with pytest.raises(InputError, match="json"):
        indices_from_files(paths["static"], paths["labels"], "guideline",
                           dynamic_path=paths["dynamic"])  # fmt: skip
    with pytest.raises(FileNotFoundError, match=r"missing\.nii\.gz"):
        indices_from_files(tmp_path / "missing.nii.gz", paths["labels"], "guideline")


def test_files_equal_arrays_and_small_affine_jitter_is_accepted(tmp_path):
    parts = scan()
    parts["affines"]["labels"] = AFFINE + 1e-5  # moves voxel centres by < 1e-3 mm
    paths = write(tmp_path, parts)
    assert sidecar_for(paths["dynamic"]) == paths["sidecar"]
    result = indices_from_files(paths["static"], paths["labels"], "genoa2024",
                                dynamic_path=paths["dynamic"])  # fmt: skip
    expected = compute_indices(parts["static"], parts["labels"], AFFINE, "genoa2024",
                               parts["dynamic"], np.array(STARTS), np.array(DURATIONS))  # fmt: skip
    assert result.participant_id == "sub-01"
    assert result.to_dict() == {**expected.to_dict(), "participant_id": "sub-01"}
    assert result.missing == {} and result.tumour_side == "right"


@pytest.mark.parametrize(
    ("name", "overrides", "match"),
    [("nope", {}, "unknown preset 'nope'"), ("guideline", {"slab": 1.0}, "slab"),
     ("guideline", {"ttp_rule": "peak"}, "ttp_rule")],
)  # fmt: skip
def test_unknown_preset_or_field(name, overrides, match):
    with pytest.raises(ValueError, match=match):
        get_preset(name, **overrides)
