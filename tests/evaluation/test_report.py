"""`fdopa report` on the fixture cohort: files, page, agreement columns, numbers vs lifelines."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test

from fdopa.cli import main
from fdopa.evaluation.agreement import AGREEMENT_COLUMNS, agreement_table
from fdopa.evaluation.report import default_comparisons
from fdopa.kinetics import get_preset

COMPARE = ["tsr", "tbr_max", "mtv_ml"]
SEED = ["automatic_vs_semi-automatic", "automatic_vs_manual", "manual_vs_semi-automatic"]


def _report(out: Path, *argv: str) -> int:
    return main(["report", *argv, "--compare", ",".join(COMPARE), "--out", str(out)])


@pytest.fixture(scope="module")
def cohort_report(paediatric_cohort, tmp_path_factory) -> Path:
    """The cohort form, the manual labels standing in for the network's."""
    out = tmp_path_factory.mktemp("report") / "cohort"
    assert (
        _report(out, "--cohort", str(paediatric_cohort), "--auto-labels", "derivatives/manual") == 0
    )
    return out


def _agreement(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    assert tuple(table.columns) == AGREEMENT_COLUMNS
    assert table["index"].tolist() == COMPARE
    return table.set_index("index")


@pytest.mark.slow
def test_cohort_report_writes_every_figure_the_page_and_agreement(cohort_report):
    stems = ["automatic_vs_reference", *SEED, "manual_vs_reference"]
    figures = [f"{kind}_{stem}.png" for stem in stems for kind in ("bland_altman", "scatter")]
    for name in [*figures, "km.png", "roc_grade.png"]:
        assert (cohort_report / name).read_bytes().startswith(b"\x89PNG"), name
    page = (cohort_report / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(figures) + 2
    assert all(stem.replace("_vs_", " vs ") in page for stem in stems)
    primary = _agreement(cohort_report / "agreement.csv")
    pd.testing.assert_frame_equal(primary, _agreement(cohort_report / f"agreement_{stems[0]}.csv"))
    same = _agreement(cohort_report / "agreement_automatic_vs_manual.csv")  # identical labels
    assert (same["icc_a1"] == 1.0).all() and (same["bias"] == 0.0).all()
    assert (same["n"] == 8).all()


@pytest.mark.slow
def test_km_and_log_rank_of_the_report_equal_lifelines(cohort_report, paediatric_cohort):
    indices = pd.read_csv(cohort_report / "indices_automatic.csv")
    participants = pd.read_csv(paediatric_cohort / "participants.tsv", sep="\t")
    data = indices[["participant_id", "tsr"]].merge(participants, on="participant_id")
    km = pd.read_csv(cohort_report / "km.csv").set_index("endpoint")
    for endpoint in ("os", "pfs"):
        high, low = data[data["tsr"] > 1.0], data[data["tsr"] <= 1.0]
        time, event = f"{endpoint}_months", f"{endpoint}_event"
        test = logrank_test(high[time], low[time], high[event], low[event])
        row = km.loc[endpoint]
        assert row["logrank_p"] == pytest.approx(test.p_value, abs=1e-12)
        assert row["logrank_chi2"] == pytest.approx(test.test_statistic, abs=1e-12)
        assert (row["n_high"], row["n_low"]) == (len(high), len(low))
        for name, group in (("high", high), ("low", low)):
            fitter = KaplanMeierFitter().fit(group[time], group[event])
            assert row[f"median_{name}"] == pytest.approx(fitter.median_survival_time_)


@pytest.mark.slow
def test_indices_form_reproduces_the_cohort_comparison(cohort_report, tmp_path):
    out = tmp_path / "pair"
    auto, other = cohort_report / "indices_automatic.csv", cohort_report / "indices_reference.csv"
    assert (
        _report(out, "--indices", str(auto), "--against", str(other), "--against-name", "reference")
        == 0
    )
    pd.testing.assert_frame_equal(
        _agreement(out / "agreement.csv"), _agreement(cohort_report / "agreement.csv")
    )
    assert not (out / "km.csv").exists()  # no participants.tsv given


@pytest.mark.slow
def test_run_form_reads_the_best_epoch_and_adds_the_cohort_comparisons(
    cohort_report, paediatric_cohort, tmp_path
):
    run = tmp_path / "run"
    (run / "clinical").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "epoch_000.ckpt").touch()
    (run / "checkpoints" / "last.ckpt").touch()
    (run / "config_resolved.yaml").write_text(f"data:\n  root: {paediatric_cohort}\n")
    preset = get_preset("guideline").__dict__
    (run / "clinical" / "preset.json").write_text(json.dumps(preset))
    reference = pd.read_csv(cohort_report / "indices_reference.csv")
    for epoch, method in ((0, "automatic"), (1, "semi-automatic")):
        predicted = pd.read_csv(cohort_report / f"indices_{method}.csv")
        table = pd.DataFrame({"participant_id": reference["participant_id"], "epoch": epoch})
        for index in COMPARE:
            table[f"{index}_reference"] = reference[index]
            table[f"{index}_predicted"] = predicted[index]
        table.to_csv(run / "clinical" / f"epoch_{epoch:03d}.csv", index=False)
    out = tmp_path / "out"
    assert _report(out, "--run", str(run)) == 0
    pd.testing.assert_frame_equal(
        _agreement(out / "agreement.csv"), _agreement(cohort_report / "agreement.csv")
    )
    for stem in SEED:
        assert (out / f"agreement_{stem}.csv").is_file()
    assert "epoch 0 (best checkpoint)" in (out / "report.html").read_text()
    assert _report(tmp_path / "e1", "--run", str(run), "--epoch", "1") == 0
    semi = pd.read_csv(cohort_report / "indices_semi-automatic.csv")
    expected = agreement_table(reference, semi, COMPARE).set_index("index")
    pd.testing.assert_frame_equal(_agreement(tmp_path / "e1" / "agreement.csv"), expected)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give one of --run, --indices or --cohort"),
        (["--indices", "a.csv"], "--indices and --against go together"),
        (["--run", "nowhere"], "holds no epoch_"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message, tmp_path, capsys):
    assert main(["report", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_default_comparisons_order():
    methods = ["automatic", "reference", "manual", "semi-automatic"]
    assert default_comparisons(methods)[:4] == [
        ("automatic", "reference"),
        ("automatic", "semi-automatic"),
        ("automatic", "manual"),
        ("manual", "semi-automatic"),
    ]
    assert default_comparisons(["automatic", "x"], ("automatic", "x")) == [("automatic", "x")]
