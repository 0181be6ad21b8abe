"""Speed of the PET indices: fast path vs a per-region, per-frame loop, on a 2 mm subject.

Usage: python benchmarks/indices_speed.py [--repeat 5] [--seed 0]

Generates one synthetic subject on the 2 mm ``standard`` grid with the default 27-frame 4-D
image (about 10 s), writes it as NIfTI, reads it back, and times every static + dynamic index
(``guideline`` preset) on the loaded arrays with:

* ``fast``: :func:`fdopa.kinetics.compute_indices` (validation included);
* ``loop``: the reference implementation with its TACs computed by a straightforward loop over
  regions and frames (one masked mean and SD per region and frame);
* ``reference``: the reference implementation as shipped (vectorised over frames).

It checks that all three agree to 1e-9 and prints the median seconds and the ratios, then
the time to read the files (``indices_from_files`` = reading + validation + indices).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from fdopa.data.synthetic import SynthConfig
from fdopa.data.synthetic.generate import write_subject
from fdopa.data.synthetic.subject import build_subject
from fdopa.kinetics import compute_indices, indices_from_files, load_inputs, reference_indices
from fdopa.layout import SubjectPaths


def loop_region_tac(dynamic: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and SD of a region, one frame at a time."""
    if not mask.any():
        return None
    n_frames = dynamic.shape[3]
    mean, sd = np.empty(n_frames), np.empty(n_frames)
    for frame in range(n_frames):
        values = np.asarray(dynamic[..., frame][mask], dtype=float)
        mean[frame], sd[frame] = values.mean(), values.std()
    return mean, sd


def median_seconds(repeat: int, function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple:
    """Median wall time of ``repeat`` calls of ``function(*args, **kwargs)``, last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def max_relative_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest relative difference over the float indices; inf when anything else differs."""
    worst = 0.0
    for key, value in a.items():
        if isinstance(value, float) and isinstance(b[key], float):
            worst = max(worst, abs(value - b[key]) / max(abs(value), 1e-12))
        elif value != b[key]:
            return float("inf")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = SynthConfig(grid="standard", n=1, seed=args.seed)
    seed = np.random.SeedSequence([args.seed, 1]).spawn(1)[0]
    subject = build_subject(config, "sub-bench", seed, dynamic=True)
    with tempfile.TemporaryDirectory() as tmp:
        write_subject(Path(tmp), subject, config)
        paths = SubjectPaths(Path(tmp), "sub-bench")
        files = (paths.static_pet, paths.labels)
        read_s, inputs = median_seconds(1, load_inputs, *files, paths.dynamic_pet)
        files_s, _ = median_seconds(
            1, indices_from_files, *files, "guideline", dynamic_path=paths.dynamic_pet
        )
    arrays = (inputs.static, inputs.labels, inputs.affine, "guideline")
    shape = "x".join(str(n) for n in inputs.dynamic.shape)
    print(f"subject: {shape} voxels x frames at 2 mm, median of {args.repeat} runs")
    print(f"{'4-D layout':20} {'implementation':23} {'seconds':>8} {'x fast':>7}")
    layouts = (("as read (Fortran)", inputs.dynamic),
               ("in memory (C order)", np.ascontiguousarray(inputs.dynamic)))  # fmt: skip
    for layout, dynamic in layouts:
        timing = {"dynamic": dynamic, "frame_start_s": inputs.frame_start_s,
                  "frame_duration_s": inputs.frame_duration_s}  # fmt: skip
        fast_s, fast = median_seconds(args.repeat, compute_indices, *arrays, **timing)
        reference_s, reference = median_seconds(args.repeat, reference_indices, *arrays, **timing)
        with mock.patch("fdopa.kinetics.reference.region_tac", loop_region_tac):
            loop_s, loop = median_seconds(args.repeat, reference_indices, *arrays, **timing)
        for name, other in (("reference", reference), ("loop", loop)):
            difference = max_relative_difference(other["indices"], fast.to_dict())
            if difference > 1e-9:
                raise SystemExit(f"{name} and fast disagree (max relative difference {difference})")
        for name, seconds in (("fast (compute_indices)", fast_s), ("loop (region x frame)", loop_s),
                              ("reference (shipped)", reference_s)):  # fmt: skip
            print(f"{layout:20} {name:23} {seconds:8.4f} {seconds / fast_s:7.1f}")
    print(f"reading + validating the NIfTI files: {read_s:.3f} s; indices_from_files "
          f"(reading + indices): {files_s:.3f} s")  # fmt: skip


if __name__ == "__main__":
    main()
