"""Plot the transfer-learning learning curve written by ``experiments/learning_curve.sh``.

Usage: python experiments/plot_learning_curve.py [--runs runs/levers] [--all-finetune NAME]
       [--all-scratch NAME] [--out learning_curve.png]

Reads ``<runs>/lc_<finetune|scratch>_<n>/validity/summary.json`` (and, for all 19 training
children, ``<runs>/<--all-finetune|--all-scratch>/summary.json``) and draws held-out tumour
and striatum Dice (mean ± SD, FLAIR given) against the number of training children; prints the
table it plots.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ALL_TRAINING = 19  # 24 children in 5 folds: 19 train, 5 validation


def load(runs: Path, names: dict[str, dict[int, str]]) -> dict[str, dict[int, dict]]:
    """Experiment → number of training children → the FLAIR-given summary."""
    curves: dict[str, dict[int, dict]] = {}
    for experiment, sizes in names.items():
        for n, name in sizes.items():
            path = runs / name / "summary.json"
            if path.is_file():
                summary = json.loads(path.read_text())["variants"]["given"]
                curves.setdefault(experiment, {})[n] = summary
    return curves


def main() -> None:
    """Parse the arguments, print the table and write the picture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/levers"))
    parser.add_argument("--all-finetune", default="label_probs/validity_tta")
    parser.add_argument("--all-scratch", default="scratch/validity_tta")
    parser.add_argument("--out", type=Path, default=Path("runs/levers/learning_curve.png"))
    args = parser.parse_args()
    names = {
        experiment: {
            5: f"lc_{experiment}_5/validity",
            10: f"lc_{experiment}_10/validity",
            ALL_TRAINING: every,
        }
        for experiment, every in (("finetune", args.all_finetune), ("scratch", args.all_scratch))
    }
    curves = load(args.runs, names)
    figure = Figure(figsize=(8, 3.5))
    FigureCanvasAgg(figure)
    print("experiment  n  tumour Dice      striatum Dice")
    for column, region in enumerate(("tumour", "striatum")):
        ax = figure.add_subplot(1, 2, column + 1)
        for experiment, points in curves.items():
            sizes = sorted(points)
            mean = [points[n]["dice"][region]["mean"] for n in sizes]
            sd = [points[n]["dice"][region]["sd"] for n in sizes]
            ax.errorbar(sizes, mean, yerr=sd, marker="o", capsize=3, label=experiment)
        ax.set(xlabel="training children", ylabel=f"held-out {region} Dice", ylim=(0, 1))
        ax.legend()
    for experiment, points in curves.items():
        for n in sorted(points):
            dice = points[n]["dice"]
            print(f"{experiment:<10} {n:>2}  {dice['tumour']['mean']:.3f} ± "
                  f"{dice['tumour']['sd']:.3f}   {dice['striatum']['mean']:.3f}")  # fmt: skip
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
