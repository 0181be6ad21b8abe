"""Train a segmentation model: `python train.py +experiment=pretrain|finetune|scratch [k=v …]`.

Thin on purpose: Hydra composes ``conf/train.yaml`` and the overrides, the config is checked
(:func:`fdopa.config.validate_train_config`, before the slow imports), and
:func:`fdopa.pipeline.train` does the work and returns the optimised metric (for sweepers).

Errors follow ``fdopa`` (:mod:`fdopa.errors`): a bad override, config key or input path is one
line on stderr and exit status 2, Ctrl-C exit status 130; ``-v`` or ``HYDRA_FULL_ERROR=1``
shows the traceback.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fdopa.errors import exit_status, run_guarded

PROG = "train.py"
INTERRUPTED = (
    "interrupted (Ctrl-C); resume with ckpt_path=RUN_DIR/checkpoints/last.ckpt (saved at the "
    "end of each epoch)"
)
_verbose = False


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``cfg.optimized_metric`` of the finished run.

    An input error or an interrupt leaves as ``SystemExit`` with its exit status (after one
    line on stderr), so that Hydra adds no lines of its own.
    """
    try:
        return _train(cfg)
    except BaseException as err:
        code = exit_status(PROG, err, verbose=_verbose, interrupted=INTERRUPTED)
        if code is None:
            raise
        raise SystemExit(code) from None


def _train(cfg: DictConfig) -> float | None:
    from fdopa.config import validate_train_config

    try:
        validate_train_config(cfg)  # before the slow imports: a typo fails within a second
    except BaseException:
        _discard_empty_run_dir(cfg)
        raise
    from fdopa.pipeline import train

    return train(cfg)


def _discard_empty_run_dir(cfg: DictConfig) -> None:
    """Remove the run folder Hydra made for a refused config, if it holds only Hydra's files."""
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


def cli() -> int:
    """Run :func:`main` with fdopa's one-line errors and exit statuses."""
    global _verbose
    _verbose = "-v" in sys.argv[1:] or os.environ.get("HYDRA_FULL_ERROR") == "1"
    sys.argv = [sys.argv[0], *(arg for arg in sys.argv[1:] if arg != "-v")]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises; fdopa.errors makes it one line
    return run_guarded(PROG, main, verbose=_verbose, interrupted=INTERRUPTED)


if __name__ == "__main__":
    sys.exit(cli())
