"""``fdopa synth``: generate a synthetic FDOPA PET cohort with exact ground truth."""

from __future__ import annotations

import argparse
import time

from fdopa.cli.common import Commands, add_out, add_overwrite


def add(commands: Commands) -> None:
    """Register ``fdopa synth``."""
    parser = commands.add_parser(
        "synth",
        help="generate a synthetic FDOPA PET cohort with exact ground truth",
        description="Generate a synthetic [18F]F-DOPA PET cohort with exact ground truth.",
    )
    parser.add_argument("--cohort", default="paediatric", help="adult or paediatric")
    parser.add_argument("--n", type=int, default=40, help="number of subjects")
    parser.add_argument("--grid", default="tiny", help="tiny (4 mm) or standard (2 mm)")
    parser.add_argument("--dynamic-fraction", type=float, default=0.3,
                        help="fraction of subjects with a 4D dynamic image")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="cohort seed")
    parser.add_argument("--framing", default="6x10,4x30,7x60,10x120",
                        help="dynamic framing, NxD groups in seconds")  # fmt: skip
    parser.add_argument("--no-flair", action="store_true", help="do not write the FLAIR channel")
    parser.add_argument("--noise-free", action="store_true",
                        help="write noise-free images in place of noisy ones")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=-1,
                        help="worker processes (-1: all cores)")  # fmt: skip
    parser.add_argument("--realism", default="brainbox",
                        help="brainbox (a brain-sized box, fast), scanner (head and neck in a "
                        "scanner's field of view, tilted and off-centre) or mixed (a share "
                        "--scanner-fraction of scanner subjects, the others brain "
                        "boxes)")  # fmt: skip
    parser.add_argument("--scanner-fraction", type=float, default=0.5,
                        help="share of scanner subjects of --realism mixed")  # fmt: skip
    parser.add_argument("--scanner", default=None,
                        help="scanner profile of --realism scanner: hr-256, std-256, std-200 "
                        "(default), wb-200, tiny, or random (a clinical profile drawn per subject "
                        "with its voxel size, PSF and noise jittered by up to 15 %%)")  # fmt: skip
    parser.add_argument("--orientation", default="ras", help="storage order: ras or lps")
    parser.add_argument("--units", default="suv",
                        help="PET units: suv (g/mL) or bqml (Bq/mL, dose and weight in the "
                        "sidecar)")  # fmt: skip
    add_out(parser, "output cohort directory")
    add_overwrite(parser, "replace an earlier fdopa cohort (never other files)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the cohort and print one summary line."""
    from fdopa.data.synthetic import SynthConfig, generate_cohort

    config = SynthConfig(
        cohort=args.cohort, n=args.n, grid=args.grid, dynamic_fraction=args.dynamic_fraction,
        seed=args.seed, framing=args.framing, flair=not args.no_flair, noise=not args.noise_free,
        realism=args.realism, orientation=args.orientation, units=args.units,
        scanner_fraction=args.scanner_fraction,
        **({"scanner": args.scanner} if args.scanner else {}),
    )  # fmt: skip
    start = time.perf_counter()
    table = generate_cohort(config, args.out, overwrite=args.overwrite, n_jobs=args.jobs)
    seconds = time.perf_counter() - start
    print(
        f"wrote {len(table)} {config.cohort} subjects ({config.geometry}, "
        f"{int(table['dynamic'].sum())} dynamic) to {args.out} in {seconds:.1f} s "
        f"({len(table) / seconds:.2f} subjects/s)"
    )
    return 0
