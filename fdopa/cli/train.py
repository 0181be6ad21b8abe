"""``fdopa train`` (and ``python train.py``): Hydra training with the configs shipped in fdopa.

``fdopa train +experiment=NAME [key=value …]`` (NAME: a file of ``conf/experiment/``) composes
``conf/train.yaml`` (shipped inside the package as ``fdopa/conf``, so an installed package
trains without a clone) with the overrides, checks the config
(:func:`fdopa.config.validate_train_config`, before the slow imports) and runs
:func:`fdopa.pipeline.train`, which returns the optimised metric (for sweepers). Everything
after ``train`` goes to Hydra verbatim (``--cfg job``, ``-m``, …).

Errors follow :mod:`fdopa.cli.errors`: a bad override, config key or input path is one line on
stderr and exit status 2 (a missing optional dependency names the ``fdopa[...]`` extra to
install), Ctrl-C exit status 130; ``-v`` or ``HYDRA_FULL_ERROR=1`` shows the traceback.
Hydra, OmegaConf and torch are imported only when a training starts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from fdopa.cli.common import Commands, require_extra
from fdopa.cli.errors import EXIT_HELP, exit_status, run_guarded

if TYPE_CHECKING:
    from omegaconf import DictConfig

INTERRUPTED = (
    "interrupted (Ctrl-C); resume with ckpt_path=RUN_DIR/checkpoints/last.ckpt (saved at the "
    "end of each epoch)"
)

_EXTRAS = (  # (override prefix, module, extra): Hydra plugins named by an override
    ("hparams_search=", "hydra_plugins.hydra_optuna_sweeper", "sweeps"),
    ("hydra/sweeper=optuna", "hydra_plugins.hydra_optuna_sweeper", "sweeps"),
    ("hydra/launcher=submitit", "hydra_plugins.hydra_submitit_launcher", "slurm"),
)

_prog = "train.py"
_verbose = False


def experiments() -> list[str]:
    """The names ``+experiment=`` takes: the files of ``conf/experiment/`` (without Hydra)."""
    folder = resources.files("fdopa") / "conf" / "experiment"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def add(commands: Commands) -> None:
    """Register ``fdopa train`` (its arguments are split off in :func:`fdopa.cli.main`)."""
    parser = commands.add_parser(
        "train",
        help="train a segmentation model (Hydra; needs fdopa[train])",
        description="Train with Hydra exactly as `python train.py`: fdopa train "
        f"+experiment={'|'.join(experiments())} [key=value ...]. Every argument "
        "after `train` goes to Hydra (e.g. --cfg job prints the composed config, -m runs a "
        "sweep).",
        epilog=EXIT_HELP,
    )
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra override")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``fdopa train`` with the overrides of ``args``."""
    return train_cli(args.overrides, prog="fdopa train", verbose=args.verbose)


def _task(cfg: DictConfig) -> float | None:
    """Hydra task; returns ``cfg.optimized_metric`` of the finished run.

    An input error or an interrupt leaves as ``SystemExit`` with its exit status (after one
    line on stderr), so that Hydra adds no lines of its own.
    """
    try:
        return _train(cfg)
    except BaseException as err:
        code = exit_status(_prog, err, verbose=_verbose, interrupted=INTERRUPTED)
        if code is None:
            raise
        raise SystemExit(code) from None


def _train(cfg: DictConfig) -> float | None:
    from fdopa.config import validate_train_config

    try:
        validate_train_config(cfg)  # before the slow imports: a typo fails within a second
        for module in ("torch", "lightning"):
            require_extra(module, "train")
        loggers = (cfg.get("logger") or {}).values()
        if any("Wandb" in str(node.get("_target_", "")) for node in loggers if node):
            require_extra("wandb", "wandb", "logger=csv")
    except BaseException:
        _discard_empty_run_dir(cfg)
        raise
    from fdopa.pipeline import train

    value = train(cfg)
    if cfg.get("data_only"):  # no run to keep: only Hydra's bookkeeping was written
        _discard_empty_run_dir(cfg)
    return value


def _discard_empty_run_dir(cfg: DictConfig) -> None:
    """Remove the run folder Hydra made for a refused config, if it holds only Hydra's files."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    bookkeeping = {".hydra", f"{hydra_cfg.job.name}.log"}
    if not run_dir.is_dir() or not {p.name for p in run_dir.iterdir()} <= bookkeeping:
        return
    shutil.rmtree(run_dir)
    log_dir = Path(cfg.paths.log_dir).resolve()
    for parent in run_dir.resolve().parents:  # the empty task folders made for it
        if not parent.is_relative_to(log_dir) or any(parent.iterdir()):
            break
        parent.rmdir()


def _hydra_main() -> int:
    """Run the Hydra application on ``sys.argv``; the exit status."""
    for module in ("hydra", "omegaconf"):
        require_extra(module, "train")
    for prefix, module, extra in _EXTRAS:
        if any(arg.startswith(prefix) for arg in sys.argv[1:]):
            require_extra(module, extra)
    import hydra

    from fdopa.config import CONF_DIR

    main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")(_task)
    try:
        main()
    except SystemExit as done:  # from _task (bad input, Ctrl-C) or Hydra (--help)
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    return 0


def train_cli(
    overrides: Sequence[str] | None = None, *, prog: str = "train.py", verbose: bool = False
) -> int:
    """Train with Hydra: the overrides (default: ``sys.argv[1:]``) under the name ``prog``.

    Args:
        overrides: Hydra arguments (``+experiment=finetune``, ``trainer.max_epochs=1``,
            ``--cfg job``, ``-m`` …); ``-v`` among them shows tracebacks.
        prog: Command name of the error lines (``train.py`` or ``fdopa train``).
        verbose: Show the traceback of input errors.

    Returns:
        The exit status (:data:`fdopa.cli.errors.EXIT_HELP`).
    """
    global _prog, _verbose
    overrides = list(sys.argv[1:] if overrides is None else overrides)
    _prog = prog
    _verbose = verbose or "-v" in overrides or os.environ.get("HYDRA_FULL_ERROR") == "1"
    argv, sys.argv = sys.argv, [prog, *(arg for arg in overrides if arg != "-v")]
    full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises; fdopa.cli.errors makes it one line
    try:
        return run_guarded(prog, _hydra_main, verbose=_verbose, interrupted=INTERRUPTED)
    finally:
        sys.argv = argv
        if full_error is None:
            del os.environ["HYDRA_FULL_ERROR"]
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error
