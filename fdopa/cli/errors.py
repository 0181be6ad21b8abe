"""The one place where an error becomes one line on stderr and an exit status (the CLI's).

Every command (``fdopa …`` and ``train.py``) runs through :func:`run_guarded`:

* ``0`` — success;
* ``1`` — the command ran, but some cohort subjects failed (their rows carry the error);
* ``2`` — bad input: a ``ValueError`` (including :class:`fdopa.errors.BadInput`, invalid
  images, labels, sidecars, bundles, checkpoints and config keys) or an ``OSError`` (missing,
  unreadable or unwritable paths); one line naming the file or key and what to do;
* ``130`` — interrupted (Ctrl-C); outputs are staged, so nothing partial is left behind.

Anything else is a bug and keeps its traceback. ``-v`` (or ``HYDRA_FULL_ERROR=1`` for
``train.py``) shows the traceback of input errors too. This module imports only the standard
library.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_HELP",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SUBJECTS_FAILED",
    "exit_status",
    "one_line",
    "run_guarded",
]

EXIT_OK = 0
EXIT_SUBJECTS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

EXIT_HELP = (
    "Exit status: 0 success; 1 some cohort subjects failed (their rows carry the error); "
    "2 bad input or output path (one line naming the file or key and what to do; nothing "
    "written, no input changed); 130 interrupted (Ctrl-C; nothing partial left). -v shows "
    "the traceback."
)
"""Epilog of ``fdopa --help`` and of every sub-command."""


def _bad_input_types() -> tuple[type[BaseException], ...]:
    """``ValueError``, ``OSError`` and OmegaConf / Hydra config errors (when importable)."""
    types: list[type[BaseException]] = [ValueError, OSError]
    omegaconf = sys.modules.get("omegaconf.errors")
    if omegaconf is not None:
        types.append(omegaconf.OmegaConfBaseException)
    hydra = sys.modules.get("hydra.errors")
    if hydra is not None:
        types.append(hydra.HydraException)
    return tuple(types)


def one_line(err: BaseException) -> str:
    """The error as one line: its message with whitespace collapsed.

    An ``OSError`` raised by the system (``[Errno 13] Permission denied: 'x'``) reads
    ``x: Permission denied``; an error without a message reads as its type.
    """
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        text = f"{err.filename}: {err.strerror}"
        if err.filename2 is not None:
            text += f" (to {err.filename2})"
    else:
        text = str(err) or type(err).__name__
        text = text.split("\nConfig search path")[0]  # Hydra's missing-option listing
    return " ".join(text.split())


INTERRUPTED = "interrupted (Ctrl-C); outputs are staged, nothing partial was left behind"
"""What an interrupted ``fdopa`` command says after its name."""


def exit_status(
    prog: str, err: BaseException, *, verbose: bool = False, interrupted: str = INTERRUPTED
) -> int | None:
    """Print the one line of an interrupt or a bad-input error; return its exit status.

    Args:
        prog: Command name printed before the message.
        err: The exception.
        verbose: Also print the traceback of input errors.
        interrupted: The line's text after ``prog`` on ``KeyboardInterrupt``.

    Returns:
        130 for ``KeyboardInterrupt``, 2 for bad input, None for anything else (a bug, which
        the caller re-raises with its traceback).
    """
    if isinstance(err, KeyboardInterrupt):
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not isinstance(err, _bad_input_types()):
        return None
    if verbose:
        traceback.print_exception(err)
    print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run_guarded(
    prog: str,
    func: Callable[[], int | None],
    *,
    verbose: bool = False,
    interrupted: str = INTERRUPTED,
) -> int:
    """Run ``func`` and turn its outcome into an exit status (see the module docstring).

    Args:
        prog: Command name printed before the message (``fdopa synth``, ``train.py``).
        func: The command; returns 0, 1 or None (0).
        verbose: Also print the traceback of input errors.
        interrupted: The line's text after ``prog`` on ``KeyboardInterrupt``.

    Returns:
        The exit status.
    """
    try:
        status = func()
    except BaseException as err:
        code = exit_status(prog, err, verbose=verbose, interrupted=interrupted)
        if code is None:
            raise
        return code
    return EXIT_OK if status is None else int(status)
