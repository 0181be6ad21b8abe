"""Synthetic-cohort generation speed: subjects/s, tiny vs standard grid, static vs dynamic.

Usage: python benchmarks/synth_speed.py [--n 4] [--jobs 2]
Prints one line per configuration; the anatomy cache is warmed first so it is not counted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fdopa.data.synthetic import SynthConfig, generate_cohort
from fdopa.data.synthetic.anatomy import load_anatomy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    load_anatomy()
    print(f"{'grid':9} {'images':8} {'n':>3} {'jobs':>4} {'seconds':>8} {'subjects/s':>10}")
    for grid in ("tiny", "standard"):
        for dynamic in (0.0, 1.0):
            config = SynthConfig(n=args.n, grid=grid, dynamic_fraction=dynamic, seed=0)
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                generate_cohort(config, Path(tmp) / "c", n_jobs=args.jobs, progress=False)
                seconds = time.perf_counter() - start
            kind = "dynamic" if dynamic else "static"
            rate = args.n / seconds
            print(f"{grid:9} {kind:8} {args.n:3d} {args.jobs:4d} {seconds:8.1f} {rate:10.2f}")


if __name__ == "__main__":
    main()
