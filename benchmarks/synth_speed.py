"""Synthetic-cohort generation speed: subjects/s by realism, grid or scanner, static vs dynamic.

Usage: python benchmarks/synth_speed.py [--n 4] [--jobs 2] [--realism brainbox scanner]
       [--scanner std-200]
Prints one line per configuration; the anatomy cache is warmed first so it is not counted (the
scanner realism's head model is built once per worker process, about 3 s, and is counted).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fdopa.data.synthetic import SynthConfig, generate_cohort
from fdopa.data.synthetic.anatomy import load_anatomy
from fdopa.data.synthetic.scanner import DEFAULT_PROFILE, PROFILES, REALISMS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--realism", nargs="+", choices=REALISMS, default=["brainbox"])
    parser.add_argument("--scanner", nargs="+", choices=sorted(PROFILES), default=[DEFAULT_PROFILE])
    args = parser.parse_args()
    load_anatomy()
    runs = [("brainbox", grid, {"grid": grid}) for grid in ("tiny", "standard")]
    runs = [r for r in runs if "brainbox" in args.realism] + [
        ("scanner", name, {"realism": "scanner", "scanner": name})
        for name in args.scanner
        if "scanner" in args.realism
    ]
    print(f"{'realism':9} {'grid':9} {'images':8} {'n':>3} {'jobs':>4} {'seconds':>8} "
          f"{'subjects/s':>10}")  # fmt: skip
    for realism, grid, options in runs:
        for dynamic in (0.0, 1.0):
            config = SynthConfig(n=args.n, dynamic_fraction=dynamic, seed=0, **options)
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                generate_cohort(config, Path(tmp) / "c", n_jobs=args.jobs, progress=False)
                seconds = time.perf_counter() - start
            kind = "dynamic" if dynamic else "static"
            rate = args.n / seconds
            print(f"{realism:9} {grid:9} {kind:8} {args.n:3d} {args.jobs:4d} {seconds:8.1f} "
                  f"{rate:10.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
