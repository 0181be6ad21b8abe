"""Summarise the transfer-learning learning curve written by ``experiments/learning_curve.sh``.

Usage: python experiments/plot_learning_curve.py [--runs runs/levers/lc] [--out learning_curve.png]

Reads ``<runs>/<finetune|scratch>_<size>_f<fold>/validity/children_flair_given.csv`` (one row
per held-out child, FLAIR given) for every size (5, 10, all) and fold found; a size's number of
training children is the median over its runs' ``splits.csv`` (the folds of "all" may differ by
one). Per run it takes the mean tumour and striatum Dice over the held-out children and the
clinical score (the composite of ``fdopa.evaluation.score``); it prints mean ± SD over folds for
each arm and, for each of the three, two paired Wilcoxon signed-rank tests of fine-tuned vs
scratch: over the folds (each fold trains both arms on the same children) and over the held-out
children (each child's value averaged over the folds). It draws the curves with their fold SD.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import wilcoxon

from fdopa.data.splits import read_splits
from fdopa.evaluation.names import SCORE_INDICES
from fdopa.evaluation.score import subject_terms

RUN = re.compile(r"(?P<arm>finetune|scratch)_(?P<size>\d+|all)_f(?P<fold>\d+)$")


def child_table(path: Path) -> pd.DataFrame:
    """Per held-out child: tumour and striatum Dice and the child's clinical score.

    The child's score is the mean over the key indices present on either side of
    ``exp(-|auto - ref| / |ref|)`` (0 where an index exists on one side only).
    """
    children = pd.read_csv(path)
    terms = np.column_stack(
        [subject_terms(children[f"ref_{i}"], children[f"auto_{i}"]) for i in SCORE_INDICES]
    )
    counted = np.isfinite(terms).any(axis=1)
    score = np.full(len(children), np.nan)
    score[counted] = np.nanmean(terms[counted], axis=1)
    return pd.DataFrame({
        "child": children["cohort"] + "/" + children["participant_id"],
        "tumour": children["dice_tumour"], "striatum": children["dice_striatum"],
        "score": score,
    })  # fmt: skip


def load(runs: Path) -> pd.DataFrame:
    """One row per (arm, training size, fold, held-out child)."""
    tables = []
    for run in sorted(runs.glob("*_f*")):
        match = RUN.match(run.name)
        path = run / "validity" / "children_flair_given.csv"
        if match is None or not path.is_file():
            continue
        table = child_table(path)
        table["arm"] = match["arm"]
        table["size"] = match["size"]
        table["training"] = list(read_splits(run).values()).count("train")
        table["fold"] = int(match["fold"])
        tables.append(table)
    if not tables:
        raise SystemExit(f"no learning-curve runs with held-out results under {runs}")
    rows = pd.concat(tables, ignore_index=True)
    rows["size"] = rows.groupby("size")["training"].transform("median").round().astype(int)
    return rows.drop(columns="training")


def paired_p(a: pd.Series, b: pd.Series) -> tuple[int, float]:
    """Pairs present in both series and the two-sided Wilcoxon signed-rank p (NaN if < 2)."""
    both = pd.concat([a, b], axis=1, join="inner").dropna()
    if len(both) < 2 or np.allclose(both.iloc[:, 0], both.iloc[:, 1]):
        return len(both), float("nan")
    return len(both), float(wilcoxon(both.iloc[:, 0], both.iloc[:, 1]).pvalue)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± SD over folds per arm and size, and the paired Wilcoxon p of the two arms."""
    per_fold = rows.groupby(["size", "arm", "fold"])[["tumour", "striatum", "score"]].mean()
    per_child = rows.groupby(["size", "arm", "child"])[["tumour", "striatum", "score"]].mean()
    out = []
    for size in sorted(rows["size"].unique()):
        line: dict[str, float | int] = {"size": int(size)}
        for arm in ("finetune", "scratch"):
            if (size, arm) not in per_fold.index.droplevel("fold"):
                continue
            folds = per_fold.loc[(size, arm)]
            line[f"{arm}_folds"] = len(folds)
            for metric in ("tumour", "striatum", "score"):
                line[f"{arm}_{metric}_mean"] = folds[metric].mean()
                line[f"{arm}_{metric}_sd"] = folds[metric].std(ddof=1) if len(folds) > 1 else 0
        for metric in ("tumour", "striatum", "score"):
            try:
                ft, sc = per_fold.loc[(size, "finetune")], per_fold.loc[(size, "scratch")]
                line["n_folds_paired"], line[f"p_folds_{metric}"] = paired_p(ft[metric], sc[metric])
                ft, sc = per_child.loc[(size, "finetune")], per_child.loc[(size, "scratch")]
                line["n_children"], line[f"p_children_{metric}"] = paired_p(ft[metric], sc[metric])
            except KeyError:
                continue
        out.append(line)
    return pd.DataFrame(out)


def plot(table: pd.DataFrame, out: Path) -> None:
    """Tumour Dice, striatum Dice and clinical score against the number of training children."""
    figure = Figure(figsize=(11, 3.5))
    FigureCanvasAgg(figure)
    for column, (metric, label) in enumerate(
        (("tumour", "tumour Dice"), ("striatum", "striatum Dice"), ("score", "clinical score"))
    ):
        ax = figure.add_subplot(1, 3, column + 1)
        for arm in ("finetune", "scratch"):
            if f"{arm}_{metric}_mean" in table:
                mean, sd = table[f"{arm}_{metric}_mean"], table[f"{arm}_{metric}_sd"]
                ax.errorbar(table["size"], mean, yerr=sd, marker="o", capsize=3, label=arm)
        ax.set(xlabel="training children", ylabel=f"held-out {label}", ylim=(0, 1))
        ax.legend()
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)


def main() -> None:
    """Parse the arguments, print the table and write the picture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/levers/lc"))
    parser.add_argument("--out", type=Path, default=Path("runs/levers/lc/learning_curve.png"))
    args = parser.parse_args()
    table = summarise(load(args.runs))
    for _, line in table.iterrows():
        parts = [f"n={int(line['size']):>2}"]
        for arm in ("finetune", "scratch"):
            if f"{arm}_folds" in line and np.isfinite(line[f"{arm}_folds"]):
                parts.append(
                    f"{arm} ({int(line[f'{arm}_folds'])} folds): tumour "
                    f"{line[f'{arm}_tumour_mean']:.3f} ± {line[f'{arm}_tumour_sd']:.3f}, striatum "
                    f"{line[f'{arm}_striatum_mean']:.3f} ± {line[f'{arm}_striatum_sd']:.3f}, score "
                    f"{line[f'{arm}_score_mean']:.3f} ± {line[f'{arm}_score_sd']:.3f}"
                )
        for metric in ("tumour", "striatum", "score"):
            if f"p_folds_{metric}" in line:
                parts.append(
                    f"Wilcoxon {metric}: folds p={line[f'p_folds_{metric}']:.3g}, "
                    f"children (n={int(line['n_children'])}) p={line[f'p_children_{metric}']:.3g}"
                )
        print(" | ".join(parts))
    plot(table, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
