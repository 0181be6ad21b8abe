"""Report figures: Bland–Altman and scatter panels, Kaplan–Meier curves, ROC curves.

Figures are built with Matplotlib's object-oriented API on the Agg canvas: no pyplot state, no
GUI backend, safe in worker processes and on headless machines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fdopa.evaluation.association import roc_curve
from fdopa.evaluation.survival import KaplanMeierSplit

__all__ = ["agreement_figure", "km_figure", "roc_figure", "save_figure"]

_PANEL = 3.2  # inches per panel


def _grid(n: int, columns: int = 4, panel: float = _PANEL) -> tuple[Figure, list[Axes]]:
    """A figure of ``n`` panels of ``panel`` inches on an Agg canvas, ``columns`` per row."""
    cols = max(1, min(columns, n))
    rows = max(1, math.ceil(n / cols))
    width, height = panel * cols, panel * rows
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    # Fixed margins: a layout engine measures every label and costs as much as the drawing.
    figure.subplots_adjust(
        left=0.8 / width,
        right=1 - 0.1 / width,
        bottom=0.5 / height,
        top=1 - 0.35 / height,
        wspace=0.5,
        hspace=0.5,
    )
    axes = [figure.add_subplot(rows, cols, i + 1) for i in range(max(n, 1))]
    return figure, axes


def save_figure(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write a figure as PNG (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, format="png")
    return path


def _empty(ax: Axes, title: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, "no complete pair", ha="center", va="center", transform=ax.transAxes)


def agreement_figure(
    pairs: Mapping[str, pd.DataFrame], kind: str, method: str, reference: str
) -> Figure:
    """One panel per index: Bland–Altman (``kind="bland_altman"``) or scatter (``"scatter"``).

    Args:
        pairs: Index → table with ``reference`` and ``method`` columns (complete pairs).
        kind: ``bland_altman`` (difference vs mean, bias and 95 % limits) or ``scatter``
            (method vs reference with the identity line).
        method: Name of the method under test (axis labels).
        reference: Name of the reference method.

    Returns:
        The figure.

    Raises:
        ValueError: On an unknown ``kind``.
    """
    if kind not in ("bland_altman", "scatter"):
        raise ValueError(f"kind: expected bland_altman or scatter, got {kind!r}")
    figure, axes = _grid(len(pairs))
    for ax, (index, table) in zip(axes, pairs.items(), strict=False):
        ref, other = table["reference"].to_numpy(float), table["method"].to_numpy(float)
        if ref.size == 0:
            _empty(ax, index)
            continue
        if kind == "scatter":
            ax.scatter(ref, other, s=18)
            low, high = float(min(ref.min(), other.min())), float(max(ref.max(), other.max()))
            ax.plot([low, high], [low, high], color="grey", lw=1, ls="--")
            ax.set(xlabel=f"{reference}", ylabel=f"{method}", title=index)
            continue
        diff, mean = other - ref, (other + ref) / 2
        bias = float(diff.mean())
        ax.scatter(mean, diff, s=18)
        ax.axhline(bias, color="C1", lw=1.2, label=f"bias {bias:.3g}")
        if diff.size >= 2:
            half = 1.96 * float(diff.std(ddof=1))
            for level in (bias - half, bias + half):
                ax.axhline(level, color="C1", lw=1, ls="--")
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set(xlabel="mean of the two", ylabel=f"{method} − {reference}", title=index)
        ax.legend(fontsize=7, loc="best")
    return figure


def km_figure(splits: Sequence[KaplanMeierSplit]) -> Figure:
    """Kaplan–Meier curves of each split (one panel per endpoint), log-rank p in the title.

    Args:
        splits: Results of :func:`fdopa.evaluation.survival.km_by_cutoff`.

    Returns:
        The figure.
    """
    figure, axes = _grid(len(splits), columns=2)
    for ax, split in zip(axes, splits, strict=False):
        for colour, name in (("C3", "high"), ("C0", "low")):
            fitter = split.fitters.get(name)
            if fitter is None:
                continue
            curve = fitter.survival_function_.iloc[:, 0]
            ax.step(
                curve.index,
                curve.to_numpy(),
                where="post",
                color=colour,
                label=f"{fitter.label} (n={split.row[f'n_{name}']})",
            )
            censored = fitter.event_table.query("censored > 0").index
            ax.plot(censored, curve.reindex(censored, method="ffill"), "|", color=colour, ms=8)
        p = split.row["logrank_p"]
        ax.set(
            xlabel="months",
            ylabel="survival probability",
            ylim=(-0.02, 1.02),
            title=f"{split.endpoint.upper()}: log-rank p = {p:.3g}",
        )
        ax.legend(fontsize=7, loc="best")
    return figure


def roc_figure(table: pd.DataFrame, indices: Sequence[str], positive: Sequence[bool]) -> Figure:
    """ROC curves of several indices against a binary grade, AUC in the legend.

    Args:
        table: One row per subject with the index columns.
        indices: Indices drawn (absent or all-missing columns are skipped).
        positive: True for the positive grade, one per row of ``table``.

    Returns:
        The figure.
    """
    figure, (ax,) = _grid(1, panel=4.5)
    positive = np.asarray(positive, dtype=bool)
    for index in indices:
        if index not in table:
            continue
        values = pd.to_numeric(table[index], errors="coerce").to_numpy(float)
        keep = np.isfinite(values)
        if not positive[keep].any() or positive[keep].all():
            continue
        fpr, tpr, _ = roc_curve(values[keep], positive[keep])
        auc = float(np.trapezoid(tpr, fpr))
        ax.plot(fpr, tpr, drawstyle="default", label=f"{index} (AUC {auc:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="1 − specificity", ylabel="sensitivity", title="ROC vs grade")
    ax.legend(fontsize=7, loc="lower right")
    return figure
