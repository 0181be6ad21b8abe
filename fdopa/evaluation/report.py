"""The cohort report: agreement between delineation methods, grade and survival associations.

:func:`write_report` takes per-subject index tables of named methods (``automatic``,
``reference``, ``manual``, ``semi-automatic``, ...) and the pairs to compare, and writes into
one folder:

* ``agreement.csv`` — the first (primary) comparison, columns
  :data:`~fdopa.evaluation.agreement.AGREEMENT_COLUMNS`; every comparison also as
  ``agreement_<method>_vs_<reference>.csv``;
* ``bland_altman_<method>_vs_<reference>.png`` and ``scatter_<…>.png`` (one panel per index);
* with ``participants.tsv``: ``association.csv`` and ``roc_grade.png`` (grade), ``km.csv`` and
  ``km.png`` (Kaplan–Meier by ``T/S > 1`` for OS and PFS, log-rank), ``cox.csv`` (Cox HR per
  index and endpoint) — all on the *outcome method* (``automatic`` when present);
* ``indices_<method>.csv`` — the tables that went in;
* ``report.html`` — one self-contained page (tables, and the PNGs embedded as base64).
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fdopa.evaluation.agreement import agreement_table, paired_values
from fdopa.evaluation.association import association_table
from fdopa.evaluation.names import DEFAULT_INDICES
from fdopa.evaluation.plots import agreement_figure, km_figure, roc_figure, save_figure
from fdopa.evaluation.survival import (
    ENDPOINTS,
    KM_COLUMNS,
    cox_table,
    km_by_cutoff,
    outcome_frame,
)
from fdopa.outputs import staged_dir

__all__ = ["SEED_COMPARISONS", "ReportFiles", "default_comparisons", "write_report"]

logger = logging.getLogger(__name__)

SEED_COMPARISONS: tuple[tuple[str, str], ...] = (
    ("automatic", "reference"),
    ("automatic", "semi-automatic"),
    ("automatic", "manual"),
    ("manual", "semi-automatic"),
    ("manual", "reference"),
)
"""(method, reference) pairs compared when both are available: the network against the
reference labels, then the seed study's three comparisons, then the second operator."""


@dataclass
class ReportFiles:
    """What :func:`write_report` wrote.

    Attributes:
        page: ``report.html``.
        agreement: ``agreement.csv`` (primary comparison).
        figures: Every PNG.
        tables: Every CSV.
    """

    page: Path
    agreement: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)


def default_comparisons(
    methods: Sequence[str], first: tuple[str, str] | None = None
) -> list[tuple[str, str]]:
    """``first`` (if given), then every :data:`SEED_COMPARISONS` pair whose methods exist."""
    pairs = [] if first is None else [first]
    available = set(methods)
    pairs += [p for p in SEED_COMPARISONS if set(p) <= available and p not in pairs]
    return pairs


def _html_table(table: pd.DataFrame) -> str:
    return table.to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.4g}", border=0)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


class _Writer:
    """Collects files and the HTML body of one report folder."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.files = ReportFiles(out / "report.html", out / "agreement.csv")
        self.body: list[str] = []

    def table(self, name: str, table: pd.DataFrame, show: bool = True) -> None:
        path = self.out / name
        path.write_text(table.to_csv(index=False), encoding="utf-8")
        self.files.tables.append(path)
        if show:
            self.body.append(_html_table(table))

    def figure(self, name: str, figure: Figure) -> None:
        path = save_figure(figure, self.out / name)
        self.files.figures.append(path)
        self.body.append(_img(path))

    def text(self, tag: str, text: str) -> None:
        self.body.append(f"<{tag}>{html.escape(text)}</{tag}>")


def _agreement_section(
    writer: _Writer,
    methods: Mapping[str, pd.DataFrame],
    pair: tuple[str, str],
    indices: Sequence[str],
    primary: bool,
) -> None:
    method, reference = pair
    table = agreement_table(methods[reference], methods[method], indices)
    stem = f"{method}_vs_{reference}"
    writer.table(f"agreement_{stem}.csv", table, show=False)
    if primary:
        writer.table("agreement.csv", table, show=False)
    pairs, missing = {}, []
    for index in indices:
        if index in methods[reference] and index in methods[method]:
            pairs[index], counts = paired_values(methods[reference], methods[method], index)
            missing.append(counts["n_missing_reference"] + counts["n_missing_method"])
        else:
            missing.append(np.nan)
    writer.text("h3", f"{method} vs {reference}" + (" (agreement.csv)" if primary else ""))
    writer.body.append(_html_table(table.assign(n_missing_one_side=missing)))
    for kind in ("bland_altman", "scatter"):
        writer.figure(f"{kind}_{stem}.png", agreement_figure(pairs, kind, method, reference))


def _outcome_sections(
    writer: _Writer,
    table: pd.DataFrame,
    indices: Sequence[str],
    cutoff_index: str,
    cutoff: float,
) -> None:
    writer.text("h2", "Association with grade (HGG positive)")
    if "grade" in table:
        grades = association_table(table, indices)
        writer.table("association.csv", grades)
        writer.figure("roc_grade.png", roc_figure(table, indices, table["grade"] == "HGG"))
    else:
        writer.text("p", "participants.tsv has no grade column.")
    endpoints = [e for e in ENDPOINTS if {f"{e}_months", f"{e}_event"} <= set(table)]
    writer.text("h2", f"Survival: Kaplan–Meier by {cutoff_index} > {cutoff:g}, Cox per index")
    if not endpoints or cutoff_index not in table:
        writer.text("p", f"no survival columns or no {cutoff_index} values.")
        return
    splits = [km_by_cutoff(table, cutoff_index, cutoff, e) for e in endpoints]
    km = pd.DataFrame([s.row for s in splits], columns=list(KM_COLUMNS))
    writer.table("km.csv", km)
    writer.figure("km.png", km_figure(splits))
    writer.text("h3", "Cox proportional hazards (HR per unit of the index)")
    writer.table("cox.csv", cox_table(table, indices, endpoints))


_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1400px}"
    "table{border-collapse:collapse;font-size:12px;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "img{max-width:100%;display:block;margin:0.5em 0}"
)


def write_report(
    out: str | Path,
    methods: Mapping[str, pd.DataFrame],
    comparisons: Sequence[tuple[str, str]],
    participants: pd.DataFrame | None = None,
    *,
    indices: Sequence[str] = DEFAULT_INDICES,
    outcome_method: str | None = None,
    cutoff_index: str = "tsr",
    cutoff: float = 1.0,
    title: str = "fdopa clinical evaluation",
    notes: Sequence[str] = (),
    overwrite: bool = False,
) -> ReportFiles:
    """Write the report folder (module docstring), all or nothing.

    Args:
        out: Report folder: absent, empty, or (with ``overwrite``) an earlier report; staged
            beside its target and renamed into place (:func:`fdopa.outputs.staged_dir`).
        methods: Method name → one row per subject (``participant_id`` and index columns).
        comparisons: ``(method, reference)`` pairs; the first is written as ``agreement.csv``.
        participants: ``participants.tsv`` table for grade and survival, or None.
        indices: Indices compared and analysed.
        outcome_method: Method whose indices go into the grade and survival analyses; default
            ``automatic`` when present, else the first method of the first comparison.
        cutoff_index: Index of the Kaplan–Meier split.
        cutoff: High group: ``cutoff_index`` > ``cutoff``.
        title: Page title.
        notes: Lines shown under the title (provenance: run, epoch, preset, ...).
        overwrite: Replace an earlier report in ``out``.

    Returns:
        The :class:`ReportFiles`.

    Raises:
        ValueError: Without a comparison, or when one names an unknown method.
        FileExistsError: If ``out`` holds a report and ``overwrite`` is false, or anything else.
    """
    if not comparisons:
        raise ValueError("report: nothing to compare (need at least two delineation methods)")
    unknown = sorted({m for pair in comparisons for m in pair} - set(methods))
    if unknown:
        raise ValueError(f"report: comparisons name unknown methods {unknown}")
    with staged_dir(out, kind="report", overwrite=overwrite) as staging:
        files = _write_pages(
            _Writer(staging), methods, comparisons, participants, indices, outcome_method,
            cutoff_index, cutoff, title, notes,
        )  # fmt: skip
    out = Path(out)
    files = ReportFiles(
        out / files.page.name, out / files.agreement.name,
        [out / p.name for p in files.figures], [out / p.name for p in files.tables],
    )  # fmt: skip
    logger.info(
        "report: %s (%d figures, %d tables)", files.page, len(files.figures), len(files.tables)
    )
    return files


def _write_pages(
    writer: _Writer,
    methods: Mapping[str, pd.DataFrame],
    comparisons: Sequence[tuple[str, str]],
    participants: pd.DataFrame | None,
    indices: Sequence[str],
    outcome_method: str | None,
    cutoff_index: str,
    cutoff: float,
    title: str,
    notes: Sequence[str],
) -> ReportFiles:
    """Write every table, figure and the page through ``writer`` (see :func:`write_report`)."""
    writer.text("h1", title)
    for line in notes:
        writer.text("p", line)
    for name, table in methods.items():
        writer.table(f"indices_{name}.csv", table, show=False)
    writer.text("h2", "Agreement between delineations (bias = method − reference)")
    for i, pair in enumerate(comparisons):
        _agreement_section(writer, methods, pair, indices, primary=i == 0)
    if outcome_method is None:
        outcome_method = "automatic" if "automatic" in methods else comparisons[0][0]
    if participants is not None:
        table = outcome_frame(methods[outcome_method], participants)
        writer.text(
            "p", f"Outcome analyses on the {outcome_method} indices ({len(table)} subjects)."
        )
        _outcome_sections(writer, table, indices, cutoff_index, cutoff)
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(writer.body)
        + "\n</body></html>\n"
    )
    writer.files.page.write_text(page, encoding="utf-8")
    return writer.files
