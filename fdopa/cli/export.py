"""``fdopa export``: a training checkpoint as a self-contained model bundle.

Errors the library raises as ``ValueError`` (bad input, a file that is not a checkpoint) or
``OSError`` (missing inputs, outputs that cannot be written) become one line on stderr and exit
status 2 (:mod:`fdopa.cli.errors`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fdopa.cli.common import Commands, add_out, add_overwrite, require_extra


def add(commands: Commands) -> None:
    """Register ``fdopa export``."""
    parser = commands.add_parser(
        "export",
        help="export a training checkpoint as a self-contained model bundle",
        description="Write a bundle (model.pt, model.ts, config.json, metadata.json, "
        "checksums.json) from a checkpoint and its run's config_resolved.yaml.",
    )
    parser.add_argument("--ckpt", type=Path, required=True, help="Lightning checkpoint")
    parser.add_argument("--config", type=Path,
                        help="run config (default: RUN_DIR/config_resolved.yaml of the "
                        "checkpoint RUN_DIR/checkpoints/x.ckpt)")  # fmt: skip
    parser.add_argument("--data-root", type=Path,
                        help="training cohort, if not at data.root of the config")  # fmt: skip
    add_out(parser, "bundle directory to create")
    add_overwrite(parser, "replace an existing bundle")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export the checkpoint and print the bundle's validation scores."""
    require_extra("torch", "train")
    from fdopa.export.run import export_checkpoint

    bundle = export_checkpoint(
        args.ckpt, args.out, config=args.config, data_root=args.data_root, overwrite=args.overwrite
    )
    monitors = bundle.metadata["validation"]["monitors"]
    shown = ", ".join(f"{m['monitor']} {m['score']}" for m in monitors)
    print(f"wrote bundle {bundle.path} ({shown or 'no monitored validation metric'})")
    return 0
