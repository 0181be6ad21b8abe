"""Compose the project's Hydra configs outside ``@hydra.main`` (tests, benchmarks, notebooks).

The configs ship inside the package as ``fdopa/conf`` (in a clone, a link to the repository's
``conf/``), so an installed package composes them too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from fdopa.errors import BadInput

CONF_DIR = (Path(__file__).parent / "conf").resolve()
"""The Hydra configs (``conf/`` of a clone, ``fdopa/conf`` of an installed package)."""


def compose_train(
    overrides: Sequence[str] = (), *, output_dir: str | Path | None = None
) -> DictConfig:
    """Compose ``conf/train.yaml`` with overrides, as ``train.py`` would.

    The Hydra runtime config is registered as under ``@hydra.main``, so
    ``${hydra:runtime.output_dir}`` interpolations resolve (to ``output_dir`` when given).

    Args:
        overrides: Hydra overrides, e.g. ``["+experiment=finetune", "logger=csv"]``.
        output_dir: Run directory that ``paths.output_dir`` resolves to.

    Returns:
        The composed config without its ``hydra`` node.

    Raises:
        fdopa.errors.BadInput: If a key has a value of the wrong type or range
            (:func:`validate_train_config`; input paths are checked when training starts).
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    validate_train_config(cfg, check_paths=False)
    return cfg


# --- validation of the composed training config ------------------------------------------


def _integer(minimum: int | None = None, *, unlimited: bool = False) -> Callable:
    """Check for an integer ≥ ``minimum``; ``unlimited`` also accepts -1 and null."""

    def check(value: Any) -> str | None:
        if unlimited and (value is None or (value == -1 and not isinstance(value, bool))):
            return None
        integer = isinstance(value, int) and not isinstance(value, bool)
        if integer and (minimum is None or value >= minimum):
            return None
        text = "an integer" if minimum is None else f"an integer ≥ {minimum}"
        return text + (" (or -1: no limit)" if unlimited else "")

    return check


def _number(low: float, high: float | None = None, *, low_open: bool = False) -> Callable:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            value = None
        ok = value is not None and (value > low if low_open else value >= low)
        ok = ok and (high is None or value < high)
        if ok:
            return None
        bound = f"> {low:g}" if low_open else f"≥ {low:g}"
        return f"a number {bound}" + ("" if high is None else f" and < {high:g}")

    return check


def _sizes(value: Any) -> str | None:
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    return None if ok else "a list of 3 integers ≥ 1, e.g. [32, 32, 32]"


def _normalisation(value: Any) -> str | None:
    from fdopa.data.scaling import NORMALISATIONS

    return None if value in NORMALISATIONS else f"one of {list(NORMALISATIONS)}"


def _channels(value: Any) -> str | None:
    from fdopa.layout import CHANNELS

    names = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else None
    ok = bool(names) and len(set(map(str, names))) == len(names) and set(names) <= set(CHANNELS)
    return None if ok else f"a list of distinct channels from {list(CHANNELS)}, e.g. [pet]"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _channel_dropout(value: Any) -> str | None:
    ok = value is None or (
        isinstance(value, dict)
        and all(isinstance(p, int | float) and not isinstance(p, bool) and 0 <= p <= 1
                for p in value.values())
    )  # fmt: skip
    return None if ok else "null or a mapping channel → probability in [0, 1], e.g. {flair: 0.3}"


def _jobs(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or value == -1)
    return None if ok else "a number of worker processes ≥ 1, or -1: one per core"


def _path_or_null(value: Any) -> str | None:
    return None if value is None or isinstance(value, str) else "a path or null"


TRAIN_SCHEMA: dict[str, Callable[[Any], str | None]] = {
    "seed": _integer(),
    "ckpt_path": _path_or_null,
    "trainer.max_epochs": _integer(1, unlimited=True),
    "trainer.check_val_every_n_epoch": _integer(1),
    "trainer.log_every_n_steps": _integer(1),
    "data.root": lambda v: None if isinstance(v, str) and v else "a cohort folder path",
    "data.channels": _channels,
    "data.batch_size": _integer(1),
    "data.num_workers": _integer(0),
    "data.n_folds": _integer(2),
    "data.fold": _integer(0),
    "data.split_seed": _integer(),
    "data.patch_size": _sizes,
    "data.samples_per_volume": _integer(1),
    "data.queue_length": _integer(1),
    "data.normalisation": _normalisation,
    "data.suv_scale": _number(0, low_open=True),
    "data.synth_jobs": _jobs,
    "data_only": _boolean,
    "model.num_classes": _integer(2),
    "model.optimizer.lr": _number(0, low_open=True),
    "model.optimizer.weight_decay": _number(0),
    "model.sw_patch_size": _sizes,
    "model.sw_overlap": _number(0, 1),
    "model.sw_batch_size": _integer(1),
    "finetune.pretrained": _path_or_null,
    "finetune.encoder_lr_factor": _number(0),
    "finetune.unfreeze_epoch": _integer(0),
    "data.channel_dropout": _channel_dropout,
    "predict.tta": _boolean,
    "predict.keep_brain_component": _boolean,
    "predict.min_tumour_ml": _number(0),
}
"""Config key → check of its value (None: valid; else what it must be). Keys absent from the
composed config are skipped, and keys not listed here are not checked, so new keys never fail."""


def _select(cfg: DictConfig, key: str) -> tuple[bool, Any]:
    """``(present, value)`` of a dotted key, resolved; raises naming the key if unresolvable."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig) or leaf not in node:
        return False, None
    if OmegaConf.is_missing(node, leaf):
        raise BadInput(f"{key}: required: set it on the command line, e.g. {key}=/path")
    try:
        value = node[leaf]
    except OmegaConfBaseException as err:
        raise BadInput(f"{key}: cannot be resolved ({' '.join(str(err).split())})") from err
    if isinstance(value, ListConfig | DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    return True, value


def validate_train_config(cfg: DictConfig, *, check_paths: bool = True) -> None:
    """Refuse a training config with a mistyped or out-of-range value, naming the key.

    Only the keys of :data:`TRAIN_SCHEMA` are checked; unknown and new keys pass. With
    ``check_paths`` the input paths must exist too: ``data.root`` (unless the embedded
    synthetic cohort may be generated there: ``data.synth`` set and ``data.root`` inside
    ``data.synth_dir``), ``finetune.pretrained`` and ``ckpt_path`` (these two not with
    ``data_only``, which reads no checkpoint).

    Args:
        cfg: The composed ``train.yaml`` config.
        check_paths: Check that the input paths exist.

    Raises:
        fdopa.errors.BadInput: Naming the first invalid key, what it must be and the value.
        FileNotFoundError: If ``check_paths`` and a checkpoint path is missing.
    """
    for key, check in TRAIN_SCHEMA.items():
        present, value = _select(cfg, key)
        if not present:
            continue
        expected = check(value)
        if expected is not None:
            if value is None:
                raise BadInput(f"{key}: required: expected {expected}; set {key}=<value>")
            raise BadInput(f"{key}: expected {expected}, got {value!r}; set {key}=<value>")
    if check_paths:
        _check_input_paths(cfg)


def may_generate(root: str | Path, synth: Any, synth_dir: str | Path | None) -> bool:
    """Whether the embedded synthetic cohort may be generated into ``root``.

    Only the embedded-data configs may generate: ``synth`` must be set and ``root`` must lie
    inside ``synth_dir`` (``${paths.data_dir}/synthetic``); a user's ``data.root`` elsewhere
    never receives a generated cohort.
    """
    if synth is None or synth_dir is None:
        return False
    return Path(root).resolve().is_relative_to(Path(synth_dir).resolve())


def _check_input_paths(cfg: DictConfig) -> None:
    _, root = _select(cfg, "data.root")
    _, synth = _select(cfg, "data.synth")
    _, synth_dir = _select(cfg, "data.synth_dir")
    if root is not None and not Path(root).is_dir() and not may_generate(root, synth, synth_dir):
        raise BadInput(
            f"data.root: {root}: no such cohort folder; point data.root at the folder holding "
            "participants.tsv (fdopa never generates data into a user's data.root)"
        )
    if cfg.get("data_only"):
        return
    _, pretrained = _select(cfg, "finetune.pretrained")
    if pretrained and not Path(pretrained).is_file():
        raise FileNotFoundError(missing_pretrained(pretrained))
    _, resume = _select(cfg, "ckpt_path")
    if resume and not Path(resume).is_file():
        raise FileNotFoundError(
            f"ckpt_path: no checkpoint at {resume}; point it at a checkpoint of the run to resume"
        )


def missing_pretrained(path: str | Path) -> str:
    """The message for a missing ``finetune.pretrained`` checkpoint: how to make one."""
    return (
        f"finetune.pretrained: no pretraining checkpoint at {path}. Make one with "
        "`python train.py +experiment=pretrain` (it publishes its best checkpoint there), "
        "or point the config key at another file: `finetune.pretrained=/path/to/last.ckpt`."
    )
