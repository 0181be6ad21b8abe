"""``fdopa report``: the clinical-evaluation report of a run, of two indices CSVs or of a cohort."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fdopa.cli.common import Commands, add_out, add_overwrite, add_preset, preset_from
from fdopa.cli.errors import EXIT_HELP
from fdopa.evaluation.names import DEFAULT_INDICES

if TYPE_CHECKING:
    import pandas as pd

    from fdopa.kinetics import Preset

log = logging.getLogger(__name__)


def add(commands: Commands) -> None:
    """Register ``fdopa report``."""
    parser = commands.add_parser(
        "report",
        help="clinical-evaluation report: agreement, grade and survival",
        description="Write DIR/report.html, DIR/agreement.csv and PNG figures: agreement "
        "between delineation methods (ICC, Bland-Altman, Wilcoxon, MAPE, Spearman), ROC vs "
        "grade, Kaplan-Meier by T/S > 1 with log-rank, Cox HR. With a cohort holding manual "
        "labels it adds the seed study's comparisons: automatic vs semi-automatic, automatic "
        "vs manual, manual vs semi-automatic.",
        epilog="Forms: --run RUN_DIR | --indices auto.csv --against other.csv | --cohort ROOT "
        f"[--auto-labels DIR]. {EXIT_HELP}",
    )
    source = parser.add_argument_group("sources (one of --run, --indices, --cohort)")
    source.add_argument("--run", type=Path, help="training run directory (callbacks=clinical)")
    source.add_argument(
        "--epoch", type=int, help="epoch of --run (default: best checkpoint, else last)"
    )
    source.add_argument("--indices", type=Path, help="indices CSV of the automatic method")
    source.add_argument("--against", type=Path, help="indices CSV compared with --indices")
    source.add_argument("--against-name", help="method name of --against (default: its file stem)")
    source.add_argument(
        "--participants", type=Path, help="participants.tsv (default: ROOT/participants.tsv)"
    )
    source.add_argument(
        "--cohort",
        type=Path,
        metavar="ROOT",
        help="cohort root: adds manual / semi-automatic delineations (default "
        "with --run: data.root of the run)",
    )
    source.add_argument(
        "--auto-labels",
        help="with --cohort alone: automatic label folder (e.g. the output of "
        "fdopa predict --cohort), relative to the current folder or to ROOT",
    )
    add_preset(parser, "index preset of cohort computations (--run: the run's)")
    parser.add_argument(
        "--compare",
        default=",".join(DEFAULT_INDICES),
        help="comma-separated indices (default: %(default)s)",
    )
    parser.add_argument(
        "--cutoff",
        type=float,
        default=1.0,
        help="Kaplan-Meier split: --cutoff-index > this (%(default)s)",
    )
    parser.add_argument("--cutoff-index", default="tsr", help="index split for Kaplan-Meier")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for a cohort")
    add_out(parser, "report folder to create")
    add_overwrite(parser, "replace an earlier report")
    parser.set_defaults(func=run)


@dataclass
class _Sources:
    """What goes into the report, gathered from the arguments."""

    preset: Preset
    cohort: Path | None
    methods: dict[str, pd.DataFrame] = field(default_factory=dict)
    first: tuple[str, str] | None = None
    notes: list[str] = field(default_factory=list)


def _read_table(path: Path, sep: str = ",") -> pd.DataFrame:
    """A CSV/TSV keyed by ``participant_id`` (kept as text)."""
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    table = pd.read_csv(path, sep=sep, dtype={"participant_id": str})
    if "participant_id" not in table:
        raise ValueError(f"{path}: no participant_id column")
    return table


def _given_methods(args: argparse.Namespace, report: _Sources) -> None:
    """The methods of ``--run`` or ``--indices``/``--against``, and the cohort they imply."""
    from fdopa.evaluation.runs import read_run

    if args.run is not None:
        run = read_run(args.run, args.epoch)
        report.methods = {"automatic": run.predicted, "reference": run.reference}
        report.first, report.preset = ("automatic", "reference"), run.preset
        report.notes.append(f"Run {args.run}, epoch {run.epoch} ({run.source}).")
        if report.cohort is None and run.cohort is not None:
            if run.cohort.is_dir():
                report.cohort = run.cohort
            else:
                log.warning("the run's cohort %s is absent: give --cohort", run.cohort)
    elif args.indices is not None:
        name = args.against_name or args.against.stem
        report.methods = {"automatic": _read_table(args.indices), name: _read_table(args.against)}
        report.first = ("automatic", name)
        report.notes.append(f"Indices {args.indices} against {args.against} ({name}).")


def _cohort_methods(args: argparse.Namespace, report: _Sources) -> None:
    """Add the cohort's delineations (reference, manual, semi-automatic, automatic labels)."""
    from fdopa.evaluation.delineations import METHODS, cohort_method_indices

    cohort = report.cohort
    if not cohort.is_dir():
        raise FileNotFoundError(f"--cohort: {cohort} is not a folder")
    methods = report.methods
    extra = cohort_method_indices(
        cohort,
        report.preset,
        auto_labels=args.auto_labels,
        participants=list(methods["automatic"]["participant_id"]) if methods else None,
        methods=[m for m in METHODS if m not in methods],
        n_jobs=args.jobs,
    )
    methods |= extra
    report.notes.append(
        f"Cohort {cohort}: {', '.join(extra)} computed with preset {report.preset.name}."
    )


def run(args: argparse.Namespace) -> int:
    """Gather the methods of the given sources and write the report."""
    from fdopa.evaluation.report import default_comparisons, write_report
    from fdopa.outputs import check_artefact_dir

    given = (args.run is not None) + (args.indices is not None)
    if given > 1 or (given == 0 and args.cohort is None):
        raise ValueError("give one of --run, --indices or --cohort")
    if (args.indices is None) != (args.against is None):
        raise ValueError("--indices and --against go together")
    if args.auto_labels is not None and (args.run or args.indices or args.cohort is None):
        raise ValueError("--auto-labels: only with --cohort alone")
    check_artefact_dir(args.out, kind="report", overwrite=args.overwrite)  # before any work
    report = _Sources(preset_from(args), args.cohort)
    _given_methods(args, report)
    if report.cohort is not None:
        _cohort_methods(args, report)
    participants = None
    if args.participants is not None:
        participants = _read_table(args.participants, sep="\t")
    elif report.cohort is not None and (report.cohort / "participants.tsv").is_file():
        participants = _read_table(report.cohort / "participants.tsv", sep="\t")
    files = write_report(
        args.out,
        report.methods,
        default_comparisons(list(report.methods), report.first),
        participants,
        indices=[i.strip() for i in args.compare.split(",") if i.strip()],
        cutoff_index=args.cutoff_index,
        cutoff=args.cutoff,
        notes=report.notes,
        overwrite=args.overwrite,
    )
    print(f"wrote {files.page} ({len(files.figures)} figures, {len(files.tables)} tables)")
    return 0
