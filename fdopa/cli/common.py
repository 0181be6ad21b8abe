"""What the ``fdopa`` sub-commands share: options, argument checks and the cohort loop.

Every cohort command runs its subjects through one :class:`CohortRun`: one rich progress bar on
stderr, one row per subject (a failed subject's row carries its error), and one exit status —
0 when every subject succeeded, 1 when some failed (one line on stderr naming them). Bad input
raises ``ValueError`` / ``OSError``, which :func:`fdopa.cli.errors.run_guarded` turns into one line
and exit status 2. This module imports only the standard library at import time.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fdopa.cli.errors import EXIT_OK, EXIT_SUBJECTS_FAILED
from fdopa.errors import BadInput

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from fdopa.kinetics import Preset

__all__ = [
    "CohortRun",
    "add_out",
    "add_overwrite",
    "add_preset",
    "preset_from",
    "print_table",
    "reject_options",
    "require_extra",
    "require_one",
]

Commands = argparse._SubParsersAction
"""The ``add_subparsers`` object every command module registers itself on."""

T = TypeVar("T")


def add_preset(parser: argparse.ArgumentParser, help: str = "guideline or genoa2024") -> None:
    """Add the ``--preset NAME`` / ``--set FIELD=VALUE`` pair of the index presets."""
    parser.add_argument("--preset", default="guideline", help=help)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a preset field, e.g. slab_mm=20 (repeatable)")  # fmt: skip


def preset_from(args: argparse.Namespace) -> Preset:
    """The preset named by ``--preset`` with the ``--set`` overrides applied."""
    from fdopa.kinetics import get_preset, parse_overrides

    return get_preset(args.preset, **parse_overrides(args.set))


def add_out(parser: argparse.ArgumentParser | argparse._ArgumentGroup, help: str,
            *, required: bool = True) -> None:  # fmt: skip
    """Add ``--out PATH``."""
    parser.add_argument("--out", type=Path, required=required, help=help)


def add_overwrite(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--overwrite`` (its help says what is replaced; fdopa never deletes other files)."""
    parser.add_argument("--overwrite", action="store_true", help=help)


def require_one(args: argparse.Namespace, scan: str = "pet", cohort: str = "cohort") -> None:
    """Refuse unless exactly one of ``--pet`` (one scan) and ``--cohort`` (a cohort) is given."""
    if (getattr(args, scan) is None) == (getattr(args, cohort) is None):
        raise ValueError(f"give either --{scan} (one scan) or --{cohort} (a cohort)")


def reject_options(args: argparse.Namespace, names: Sequence[str], why: str) -> None:
    """Refuse the one-scan options ``names`` with a cohort: ``--a/--b: one-scan options; why``."""
    if any(getattr(args, name) for name in names):
        shown = "/".join(f"--{name.replace('_', '-')}" for name in names)
        raise ValueError(f"{shown}: one-scan options; {why}")


def require_extra(module: str, extra: str, alternative: str = "") -> None:
    """Refuse with the one line that names the extra to install when ``module`` is missing.

    Only looks the module up (nothing is imported), so the check costs no start-up time.

    Args:
        module: Module that must be importable (``"torch"``, ``"wandb"``, ``"hydra"``).
        extra: The ``fdopa[...]`` extra that provides it.
        alternative: What else the user can do (``"logger=csv"``), appended after " or ".

    Raises:
        fdopa.errors.BadInput: If the module is not installed (exit status 2).
    """
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package
        found = False
    if not found:
        instead = f" or {alternative}" if alternative else ""
        raise BadInput(f"{module} is not installed: pip install 'fdopa[{extra}]'{instead}")


def print_table(rows: Iterable[Sequence[Any]], columns: Sequence[str], title: str) -> None:
    """Print a summary table (one row per subject) on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[str(v) for v in row])
    Console(width=160).print(table)


class CohortRun:
    """The cohort loop of every command: one progress bar, failed subjects, the exit status.

    Args:
        prog: Command name of the failure line (``fdopa indices``).
        description: Label of the progress bar.
        total: Number of subjects (None until :meth:`plan` says).
        show: Draw the progress bar (on stderr).

    Examples:
        >>> with CohortRun("fdopa demo", "demo", total=2, show=False) as run:
        ...     for item in run.track([("sub-a", None), ("sub-b", "unreadable")], lambda i: i):
        ...         pass
        >>> run.failed
        ['sub-b']
    """

    def __init__(self, prog: str, description: str, total: int | None = None,
                 *, show: bool = True) -> None:  # fmt: skip
        self.prog = prog
        self.description = description
        self.total = total
        self.show = show
        self.failed: list[str] = []
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> CohortRun:
        if self.show:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn())  # fmt: skip
            self._bar = Progress(*columns, console=Console(stderr=True))
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def plan(self, total: int) -> None:
        """Set the number of subjects once it is known."""
        self.total = total
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=total)

    def advance(self, *_: object) -> None:
        """One more subject done (usable as an ``on_subject`` callback)."""
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task)

    def record(self, participant_id: str, error: str | None) -> None:
        """Note one subject's outcome (``error`` None: success)."""
        if error is not None:
            self.failed.append(participant_id)

    def track(
        self, outcomes: Iterable[T], outcome: Callable[[T], tuple[str, str | None]]
    ) -> Iterator[T]:
        """Yield each outcome, recording it (``outcome(item) -> (participant_id, error)``)."""
        for item in outcomes:
            self.record(*outcome(item))
            yield item
            self.advance()

    def exit_status(self, noun: str = "subject", hint: str = "see the error column") -> int:
        """0, or 1 after one line on stderr naming the failed subjects."""
        if not self.failed:
            return EXIT_OK
        print(f"{self.prog}: {len(self.failed)} {noun}(s) failed: "
              f"{', '.join(sorted(self.failed))} ({hint})", file=sys.stderr)  # fmt: skip
        return EXIT_SUBJECTS_FAILED
