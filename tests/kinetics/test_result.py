"""The typed result (dict / JSON / CSV forms), preset overrides, and kinetics' dependencies."""

import csv
import dataclasses
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from fdopa.kinetics import (
    CSV_COLUMNS,
    DYNAMIC_KEYS,
    EXTRA_KEYS,
    INDEX_KEYS,
    IndexResult,
    compute_indices,
    parse_overrides,
)


def _scan(dynamic=True):
    labels = np.zeros((20, 12, 12), dtype=np.int16)
    labels[1:19, 1:11, 1:11] = 1
    labels[5:7, 5:7, 5:7] = 2
    labels[13:15, 5:7, 5:7] = 2
    labels[2:4, 2:4, 5:7] = 3  # left tumour: right striatum is contralateral
    static = labels.astype(float) + 0.5
    if not dynamic:
        return compute_indices(static, labels, np.diag([4.0, 4, 4, 1]), "guideline")
    starts, durations = np.array([0.0, 300, 600, 1200]), np.array([300.0, 300, 600, 600])
    curve = np.array([1.0, 2.0, 2.5, 2.7])
    return compute_indices(
        static, labels, np.diag([4.0, 4, 4, 1]), "guideline", static[..., None] * curve,
        starts, durations, participant_id="sub-9",
    )  # fmt: skip


def test_fields_are_the_spec_names_in_order():
    names = [f.name for f in dataclasses.fields(IndexResult)]
    assert names == [*INDEX_KEYS, *EXTRA_KEYS, "tacs"]
    assert CSV_COLUMNS == INDEX_KEYS + EXTRA_KEYS


def test_dict_json_and_csv_row():
    result = _scan()
    assert result.tumour_side == "left" and result.tsr == pytest.approx(3.5 / 2.5)
    assert result.ttp_min == pytest.approx(25.0) and result.missing == {}
    payload = json.loads(result.to_json())
    assert list(payload) == [*INDEX_KEYS, *EXTRA_KEYS, "tacs"]
    assert payload["tacs"]["tumour_mean"] == pytest.approx([3.5, 7.0, 8.75, 9.45])
    row = next(csv.DictReader(io.StringIO(result.tacs.to_csv())))
    assert row["frame"] == "0" and float(row["striatum_mean"]) == pytest.approx(2.5)
    assert float(row["frame_mid_min"]) == pytest.approx(2.5)
    row = result.to_row()
    assert list(row) == list(CSV_COLUMNS) and row["missing"] == "{}"
    static_only = _scan(dynamic=False)
    assert static_only.tacs is None and json.loads(static_only.to_json())["tacs"] is None
    assert json.loads(static_only.to_row()["missing"]) == dict.fromkeys(DYNAMIC_KEYS, "no_dynamic")


def test_result_rejects_unexplained_values():
    with pytest.raises(ValueError, match="tsr"):
        IndexResult("sub-1", "guideline", missing={"tsr": "x"}, tsr=1.0)
    with pytest.raises(ValueError, match="tumour_suvmax"):
        dataclasses.replace(_scan(), tumour_suvmax=None)


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (["slab_mm=20"], {"slab_mm": 20.0}),
        (["slope_window_min=[5, 25]", "striatum_labels=2"],
         {"slope_window_min": (5.0, 25.0), "striatum_labels": (2,)}),
        (["tumour_tac=tumour_hot", "tumour_label=3"],
         {"tumour_tac": "tumour_hot", "tumour_label": 3}),
    ],
)  # fmt: skip
def test_parse_overrides(pairs, expected):
    assert parse_overrides(pairs) == expected


@pytest.mark.parametrize(
    ("pairs", "match"),
    [(["slab_mm"], "FIELD=VALUE"), (["slab=3"], "'slab'"), (["slab_mm=wide"], "'slab_mm'"),
     (["name=x"], "'name'")],
)  # fmt: skip
def test_parse_overrides_errors(pairs, match):
    with pytest.raises(ValueError, match=match):
        parse_overrides(pairs)


LIGHT_IMPORT = """
import importlib, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for info in pkgutil.walk_packages(getattr(package, "__path__", []), package.__name__ + "."):
    importlib.import_module(info.name)
heavy = ("torch", "lightning", "fdopa.data")
print(sorted(n for n in sys.modules if any(n == h or n.startswith(h + ".") for h in heavy)))
"""


@pytest.mark.parametrize(
    "package", ["fdopa.kinetics", "fdopa.evaluation", "fdopa.labels", "fdopa.layout"]
)
def test_light_packages_import_neither_torch_nor_data(package):
    """Every module of the package (imported one by one) loads no torch and no fdopa.data."""
    out = subprocess.run(
        [sys.executable, "-c", LIGHT_IMPORT, package], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
