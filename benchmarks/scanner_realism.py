"""Does a bundle hold up on scanner-realistic scans? The same children as brain boxes and as
scanner images, segmented by the same bundle.

Usage:
    python benchmarks/scanner_realism.py --bundle BUNDLE [--seed 8101 8203] [--n 4]
           [--scanner std-200] [--orientation lps] [--units bqml] [--brainbox-grid standard]
           [--brain-margin-mm 4] [--cache data/heldout]
           [--out runs/scanner_realism] [--postprocess native_grid=true]

For every ``--seed`` a paediatric cohort of ``--n`` children is generated twice with the same
seed, so the children (anatomy, tumour, kinetics) are the same: once as a brain box (on the
bundle's training grid, or on ``--brainbox-grid``: ``standard``'s 2 mm voxels are those of the
``std-200`` profile), once with ``--realism scanner`` (a tilted, off-centre head and neck in
the field of view of ``--scanner``, stored in ``--orientation`` and ``--units``). Each child
goes through :class:`fdopa.export.Predictor` with its FLAIR (the head-first crop on). Printed:
generation seconds per child in each mode; tumour Dice per geometry (against that geometry's
reference label map) and the per-child ratio scanner / brain box; the automatic T/S and TBRmax
on the scanner image relative to the brain box, and the share of children within 5 %; seconds
per prediction and the process's peak resident memory after each geometry. Per-child rows go
to ``--out/children.csv``.

The generated brain box and the scanner image of a child are not the same image (voxel size,
PSF, noise draw), so even the reference delineation's T/S and TBRmax differ between them
(``ref_*_ratio``). The share within 5 % is therefore printed twice: for the automatic indices as
they are, and for the automatic indices relative to each geometry's reference
(``*_vs_ref_ratio``: the part the segmentation adds). A third geometry isolates what the head
and the field of view cost: the brain of each scanner image, cut out of that same image
(:func:`brain_only`: every voxel farther than ``--brain-margin-mm`` from the reference brain set
to zero, the field of view cropped to what is left). Its voxels, PSF and noise are those of the
scanner image, so the reference indices are identical and the scanner image is compared with it
as well (``children_brain_only.csv``).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

# benchmarks/ is on sys.path when run as a script
from clinical_validity import add_postprocess_option, evaluate, postprocess_rules
from scipy import ndimage


def ensure(cache: Path, seed: int, n: int, **options: str) -> tuple[Path, float]:
    """Generate (or reuse) one held-out cohort; returns its root and seconds per child."""
    from fdopa.data.synthetic import SynthConfig, differing_options, generate_cohort

    config = SynthConfig(cohort="paediatric", n=n, seed=seed, dynamic_fraction=0.0, **options)
    name = "-".join([f"{k}-{v}" for k, v in sorted(options.items())] + [f"n{n}", f"seed{seed}"])
    root = cache / f"paediatric-{name}"
    if root.is_dir():  # reused only when made with the same options and head model
        if differing_options(config, root) != []:
            raise SystemExit(f"{root}: made with other options or an earlier head model; delete it")
        return root, float("nan")
    start = time.perf_counter()
    generate_cohort(config, root, n_jobs=1)
    return root, (time.perf_counter() - start) / n


def brain_only(scanner_root: Path, margin_mm: float) -> Path:
    """The brain of every image of a scanner cohort, cut out of that same image.

    Voxels farther than ``margin_mm`` from the reference brain (label > 0) are set to zero in
    the PET and FLAIR images and the field of view is cropped to the voxels left, for every
    image of the subject (label maps cropped only), so the reference delineation and its
    indices are unchanged. Written once, staged, beside ``scanner_root``
    (``…-brainonly<margin>mm-seed<seed>``).

    Args:
        scanner_root: A cohort generated with ``realism="scanner"``.
        margin_mm: Kept distance from the brain (the spill of the PSF beyond it).

    Returns:
        The derived cohort's root.
    """
    from fdopa.data.cohort import load_cohort
    from fdopa.kinetics.regions import bounding_box
    from fdopa.outputs import staged_dir

    stem, seed = scanner_root.name.rsplit("-", 1)  # the seed stays last (participant ids)
    out = scanner_root.with_name(f"{stem}-brainonly{margin_mm:g}mm-{seed}")
    if out.is_dir():
        return out
    with staged_dir(out, kind="cohort") as staging:
        shutil.copytree(scanner_root, staging, dirs_exist_ok=True)
        for subject in load_cohort(staging, channels=("pet",)):
            labels = nib.load(subject.labels)
            far = ndimage.distance_transform_edt(
                np.asarray(labels.dataobj) == 0, sampling=labels.header.get_zooms()[:3]
            )
            keep = far <= margin_mm
            box = bounding_box(keep)
            for path in staging.rglob(f"{subject.participant_id}_*.nii.gz"):
                image = nib.load(path)
                data = np.asarray(image.dataobj)
                if not path.name.endswith("_dseg.nii.gz"):
                    mask = keep if data.ndim == 3 else keep[..., None]
                    data = np.where(mask, data, 0).astype(np.float32)
                image.header.set_data_dtype(data.dtype)
                cropped = nib.Nifti1Image(data[box], image.slicer[box].affine, image.header)
                nib.save(cropped, path)
    return out


def peak_mib() -> float:
    """Peak resident memory of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Generate, predict, compare and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--seed", type=int, nargs="+", default=[8101, 8203])
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--scanner", default="std-200")
    parser.add_argument("--orientation", default="lps")
    parser.add_argument("--units", default="bqml")
    parser.add_argument(
        "--brainbox-grid",
        choices=["tiny", "standard"],
        help="grid of the brain boxes (default: the bundle's training grid)",
    )
    parser.add_argument(
        "--brain-margin-mm",
        type=float,
        default=4.0,
        help="distance from the brain kept in the brain-only images (default: 4 mm)",
    )
    parser.add_argument("--cache", type=Path, default=Path("data/heldout"))
    parser.add_argument("--out", type=Path, default=Path("runs/scanner_realism"))
    add_postprocess_option(parser)
    args = parser.parse_args()

    from fdopa.export import Predictor

    predictor = Predictor.from_bundle(
        args.bundle, device="cpu", postprocess=postprocess_rules(args.postprocess)
    )
    grid = args.brainbox_grid or ("tiny" if predictor.config.spacing_mm[0] >= 4 else "standard")
    print(f"bundle {args.bundle}, postprocess {predictor.postprocess}, brain boxes {grid}")
    args.out.mkdir(parents=True, exist_ok=True)
    geometries = {
        "brainbox": {"grid": grid},
        "scanner": {"realism": "scanner", "scanner": args.scanner,
                    "orientation": args.orientation, "units": args.units},
    }  # fmt: skip
    roots: dict[str, list[Path]] = {}
    seconds: dict[str, float] = {}
    for geometry, options in geometries.items():
        made = [ensure(args.cache, seed, args.n, **options) for seed in args.seed]
        roots[geometry] = [root for root, _ in made]
        seconds[geometry] = float(np.nanmean([per_child for _, per_child in made]))
    roots["brain_only"] = [brain_only(root, args.brain_margin_mm) for root in roots["scanner"]]
    tables = {}
    for geometry, cohorts in roots.items():
        start = time.perf_counter()
        table = evaluate(predictor, cohorts, flair=True, pictures=args.out, tag=geometry)
        predict_s = (time.perf_counter() - start) / len(table)
        print(f"{geometry:>10}: generation {seconds.get(geometry, float('nan')):.1f} s/child "
              f"(nan = reused or derived), prediction {predict_s:.2f} s/child incl. reference "
              f"indices, peak memory so far {peak_mib():.0f} MiB")  # fmt: skip
        tables[geometry] = table.set_index("participant_id")
    for reference, csv in (("brainbox", "children.csv"), ("brain_only", "children_brain_only.csv")):
        print(f"\n== scanner images ({args.scanner}) against the {reference.replace('_', '-')} "
              "images of the same children ==")  # fmt: skip
        compare(tables[reference], tables["scanner"], args.out / csv)


def compare(box: pd.DataFrame, scan: pd.DataFrame, csv: Path) -> None:
    """Print (and write to ``csv``) the scanner images' Dice and indices against ``box``'s."""
    rows = pd.DataFrame({
        "dice_tumour_brainbox": box["dice_tumour"], "dice_tumour_scanner": scan["dice_tumour"],
        "dice_ratio": scan["dice_tumour"] / box["dice_tumour"],
        "tsr_ratio": scan["auto_tsr"] / box["auto_tsr"],
        "tbr_max_ratio": scan["auto_tbr_max"] / box["auto_tbr_max"],
        "ref_tsr_ratio": scan["ref_tsr"] / box["ref_tsr"],
        "ref_tbr_max_ratio": scan["ref_tbr_max"] / box["ref_tbr_max"],
        **{f"{index}_vs_ref_ratio": (scan[f"auto_{index}"] / scan[f"ref_{index}"])
           / (box[f"auto_{index}"] / box[f"ref_{index}"]) for index in ("tsr", "tbr_max")},
        "qc_flag_scanner": scan["qc_flag"], "qc_reasons_scanner": scan["qc_reasons"],
    })  # fmt: skip
    rows.to_csv(csv)

    def within(suffix: str) -> pd.Series:
        return ((rows[f"tsr{suffix}"] - 1).abs() <= 0.05) & (
            (rows[f"tbr_max{suffix}"] - 1).abs() <= 0.05
        )

    print(rows.drop(columns="qc_reasons_scanner").round(3).to_string())
    for pid, reasons in rows["qc_reasons_scanner"].items():
        if reasons:
            print(f"  QC {pid}: {reasons}")
    print(
        f"tumour Dice brain box {rows['dice_tumour_brainbox'].mean():.3f}, scanner "
        f"{rows['dice_tumour_scanner'].mean():.3f}; ratio of means "
        f"{rows['dice_tumour_scanner'].mean() / rows['dice_tumour_brainbox'].mean():.3f} "
        "(target >= 0.95)"
    )
    for suffix, what in (("_ratio", "as measured"), ("_vs_ref_ratio", "relative to the reference")):
        hits = within(suffix)
        passed = hits[~rows["qc_flag_scanner"].astype(bool)]
        print(f"T/S and TBRmax within 5 % of the brain box ({what}): {hits.sum()} of {len(rows)} "
              f"children ({100 * hits.mean():.0f} %, target >= 90 %); of the {len(passed)} "
              f"scanner images QC passes: {passed.sum()}")  # fmt: skip
    print(f"wrote {csv}")


if __name__ == "__main__":
    main()
