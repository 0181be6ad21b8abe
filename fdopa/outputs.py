"""Output safety for every fdopa writer: nothing lost, nothing half-written.

Rules, shared by every command and library writer:

* paths are resolved first (``~`` expanded, symlinks followed) and checked **before** any long
  work: the parent must be a writable directory, a file target must not be a directory;
* a file is written under a hidden temporary name in its own directory and renamed into place
  (:func:`write_text_atomic`, :func:`write_bytes_atomic`, :func:`save_nifti_atomic`);
* a directory artefact (a cohort, a bundle, a predictions folder, a report) is built in a hidden
  *sibling* of its target and renamed into place only when complete (:func:`staged_dir`); on an
  error or Ctrl-C only the staging directory is removed;
* ``overwrite`` replaces only a folder that is recognisably an fdopa artefact of the same kind
  (see :data:`MARKERS`); the current directory, the home directory, the file-system root, any
  folder holding them and any non-empty folder of other files are refused.

Errors are ``OSError`` subclasses (``FileExistsError``, ``NotADirectoryError``,
``IsADirectoryError``, ``PermissionError``, ``FileNotFoundError``) or ``ValueError``, each with
a one-line message naming the path and what to do. This module imports only the standard
library, numpy and nibabel, so that torch-free packages can use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

__all__ = [
    "MARKERS",
    "PREDICTIONS_MARKER",
    "check_artefact_dir",
    "check_output_dir",
    "check_output_file",
    "copy_file_atomic",
    "is_artefact",
    "save_nifti_atomic",
    "staged_dir",
    "staged_files",
    "write_bytes_atomic",
    "write_nifti",
    "write_text_atomic",
]

PREDICTIONS_MARKER = ".fdopa-predictions.json"
"""Marker file that makes a folder recognisably a set of fdopa predictions."""

MARKERS: dict[str, str] = {
    "cohort": "dataset_description.json",
    "bundle": "checksums.json",
    "predictions": PREDICTIONS_MARKER,
    "report": "report.html",
}
"""Artefact kind → the file that marks a folder as an fdopa artefact of that kind.

A cohort counts only when its ``dataset_description.json`` names fdopa in ``GeneratedBy``, so a
BIDS dataset made elsewhere is never replaced.
"""


def _resolve(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def _probe_writable(directory: Path, shown: str | Path) -> None:
    """Raise ``PermissionError`` unless a file can be created (and removed) in ``directory``."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".fdopa-probe-", dir=directory)
    except OSError as err:
        reason = err.strerror or str(err)
        raise PermissionError(
            f"{shown}: cannot write in {directory} ({reason}); choose a writable folder"
        ) from err
    os.close(handle)
    os.unlink(probe)


def check_output_dir(
    path: str | Path, *, parents: bool = True, shown: str | Path | None = None
) -> Path:
    """Check that files can be written into the directory ``path``.

    Args:
        path: Directory that will receive files.
        parents: Allow a missing directory (and missing ancestors); they are created later by
            the writer. The nearest existing ancestor must then be a writable directory.
        shown: The path the user gave (named in messages); default ``path``.

    Returns:
        The resolved path.

    Raises:
        NotADirectoryError: If ``path`` or an ancestor is a file.
        FileNotFoundError: If ``path`` is missing and ``parents`` is false.
        PermissionError: If the directory (or nearest existing ancestor) is not writable.
    """
    target = _resolve(path)
    shown = path if shown is None else shown
    existing = target
    while not existing.exists():
        if not parents:
            raise FileNotFoundError(f"{shown}: no such folder {target}; create it first")
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(
            f"{shown}: {existing} is a file, not a folder; choose another path"
        )
    _probe_writable(existing, shown)
    return target


def check_output_file(
    path: str | Path, *, overwrite: bool = True, parents: bool = False, what: str = "--out"
) -> Path:
    """Check, before any long work, that ``path`` can be written as a file.

    Args:
        path: Target file.
        overwrite: Allow replacing an existing file.
        parents: Allow missing parent folders (created by the writer).
        what: How the caller names the path (an option or config key) in messages.

    Returns:
        The resolved path.

    Raises:
        IsADirectoryError: If ``path`` is a directory.
        FileExistsError: If ``path`` exists and ``overwrite`` is false.
        NotADirectoryError, FileNotFoundError, PermissionError: If the parent folder is not a
            writable directory (see :func:`check_output_dir`).
    """
    target = _resolve(path)
    if target.is_dir():
        raise IsADirectoryError(f"{what} {path}: is a folder; give a file name inside it")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{what} {path}: already exists (use --overwrite to replace it)")
    try:
        check_output_dir(target.parent, parents=parents, shown=f"{what} {path}")
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{what} {path}: folder {target.parent} does not exist; create it first"
        ) from err
    return target


def _temporary_sibling(target: Path) -> Path:
    """A hidden, unused name beside ``target`` that keeps its extensions (for nibabel)."""
    return target.with_name(f".tmp-{os.getpid()}-{secrets.token_hex(4)}-{target.name}")


def _write_atomic(path: str | Path, write: Any, parents: bool) -> Path:
    """Write ``path`` through ``write(temporary_path)``, then rename it into place."""
    target = check_output_file(path, parents=parents, what="output")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(target)
    try:
        write(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def write_bytes_atomic(path: str | Path, data: bytes, *, parents: bool = True) -> Path:
    """Write bytes under a hidden temporary name beside ``path``, then rename it into place.

    Args:
        path: Target file.
        data: Content.
        parents: Create missing parent folders.

    Returns:
        The resolved target.
    """

    def write(temporary: Path) -> None:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)

    return _write_atomic(path, write, parents)


def copy_file_atomic(source: str | Path, path: str | Path) -> Path:
    """Copy ``source`` to ``path`` under a hidden temporary name, then rename it into place."""
    return _write_atomic(path, lambda temporary: shutil.copyfile(source, temporary), True)


def write_text_atomic(path: str | Path, text: str, *, parents: bool = True) -> Path:
    """Write UTF-8 text atomically (see :func:`write_bytes_atomic`)."""
    return write_bytes_atomic(path, text.encode("utf-8"), parents=parents)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, *, seconds: bool = False) -> None:
    """Write one image of the cohort layout (inside a staged folder: not atomic by itself).

    Units mm (and s for a 4-D image with ``seconds``), qform and sform both set to ``affine``
    with code 1 (scanner coordinates), the parent folder created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec" if seconds else None)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)


def save_nifti_atomic(img: nib.spatialimages.SpatialImage, path: str | Path) -> Path:
    """``nib.save`` under a hidden temporary name beside ``path``, then rename it into place."""
    return _write_atomic(path, lambda temporary: nib.save(img, temporary), True)


def is_artefact(path: str | Path, kind: str) -> bool:
    """Whether the folder ``path`` is recognisably an fdopa artefact of ``kind``.

    Args:
        path: Folder.
        kind: ``cohort``, ``bundle``, ``predictions`` or ``report`` (:data:`MARKERS`).

    Raises:
        ValueError: On an unknown kind.
    """
    if kind not in MARKERS:
        raise ValueError(f"kind: expected one of {sorted(MARKERS)}, got {kind!r}")
    marker = Path(path) / MARKERS[kind]
    if not marker.is_file():
        return False
    if kind != "cohort":
        return True
    try:
        payload = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    generated = payload.get("GeneratedBy") if isinstance(payload, dict) else None
    return isinstance(generated, list) and any(
        isinstance(g, dict) and g.get("Name") == "fdopa" for g in generated
    )


def _refuse_special(target: Path, shown: str | Path, kind: str) -> None:
    """Refuse the file-system root, the home and current folders, and any folder above them."""
    places = {"the current folder": Path.cwd().resolve(), "your home folder": Path.home()}
    if target.parent == target:
        raise ValueError(f"{shown}: is the file-system root; name a new folder, e.g. /data/{kind}")
    for name, place in places.items():
        if place == target or place.is_relative_to(target):
            where = name if place == target else f"a folder holding {name}"
            raise ValueError(f"{shown}: is {where}; name a new folder, e.g. {shown}/{kind}")


def check_artefact_dir(out: str | Path, *, kind: str, overwrite: bool = False) -> Path:
    """Resolve and vet the target folder of :func:`staged_dir` before any long work.

    Args:
        out: Target folder.
        kind: ``cohort``, ``bundle``, ``predictions`` or ``report`` (:data:`MARKERS`).
        overwrite: An existing artefact of the same kind may be replaced.

    Returns:
        The resolved target.

    Raises:
        ValueError, FileExistsError, NotADirectoryError, PermissionError: See :func:`staged_dir`.
    """
    if kind not in MARKERS:
        raise ValueError(f"kind: expected one of {sorted(MARKERS)}, got {kind!r}")
    target = _resolve(out)
    what = "predictions folder" if kind == "predictions" else kind
    _refuse_special(target, out, kind)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{out}: exists and is not a directory; choose a new folder")
    if target.is_dir() and any(target.iterdir()):
        if not is_artefact(target, kind):
            raise FileExistsError(
                f"{out}: folder is not empty and is not an fdopa {what} (no fdopa "
                f"{MARKERS[kind]}); fdopa never replaces other files: choose a new or empty folder"
            )
        if not overwrite:
            raise FileExistsError(
                f"{out}: already exists (an fdopa {what}); use --overwrite to replace it"
            )
    check_output_dir(target.parent, shown=out)
    return target


def _write_marker(staging: Path, kind: str) -> None:
    from fdopa import __version__

    marker = staging / MARKERS[kind]
    if kind == "predictions" and not marker.exists():
        payload = {"GeneratedBy": [{"Name": "fdopa", "Version": __version__}]}
        marker.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if not is_artefact(staging, kind):
        raise RuntimeError(f"{staging}: the {kind} writer did not write {MARKERS[kind]}")


@contextlib.contextmanager
def staged_dir(out: str | Path, *, kind: str, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder artefact in a hidden sibling of ``out``; rename it into place on success.

    The checks run when the ``with`` block is entered, before any work:

    * ``out`` is resolved; the file-system root, the home and current folders and any folder
      holding them are refused (``ValueError``);
    * a file at ``out`` is refused; a non-empty folder is refused unless it is an fdopa artefact
      of the same ``kind`` (:func:`is_artefact`) **and** ``overwrite`` is true
      (``FileExistsError``);
    * the nearest existing ancestor must be a writable folder (missing ones are created).

    On success the marker of a ``predictions`` folder is added, the old artefact (if any) is
    moved aside, the staging folder renamed to ``out``, and the old one removed. On any
    exception, including ``KeyboardInterrupt``, only the staging folder is removed.

    Args:
        out: Target folder.
        kind: ``cohort``, ``bundle``, ``predictions`` or ``report`` (:data:`MARKERS`).
        overwrite: Replace an existing artefact of the same kind.

    Yields:
        The staging folder to write into.

    Raises:
        ValueError, FileExistsError, NotADirectoryError, PermissionError: See above.
        RuntimeError: If the block did not write the kind's marker file (a cohort's fdopa
            ``dataset_description.json``, a bundle's ``checksums.json``).
    """
    target = check_artefact_dir(out, kind=kind, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private
        yield staging
        _write_marker(staging, kind)
        check_artefact_dir(out, kind=kind, overwrite=overwrite)  # it may have changed since
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; an existing ``target`` is moved aside, then removed."""
    if not target.exists():
        staging.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_files(paths: Mapping[str, Path], *, overwrite: bool = False) -> Iterator[dict]:
    """Write a set of files in one folder all or nothing.

    The files are written in a hidden folder beside them (in their common folder, never
    replacing anything else) and renamed into place only when the block succeeds.

    Args:
        paths: Kind → target file; all in one folder.
        overwrite: Replace existing targets.

    Yields:
        Kind → staging path to write.

    Raises:
        FileExistsError: If a target exists and ``overwrite`` is false.
        IsADirectoryError, NotADirectoryError, PermissionError: If a target cannot be written.
        ValueError: If the targets are not in one folder.
    """
    targets = {kind: check_output_file(p, overwrite=overwrite, parents=True, what="output")
               for kind, p in paths.items()}  # fmt: skip
    folders = {t.parent for t in targets.values()}
    if len(folders) != 1:
        raise ValueError(f"staged_files: targets in several folders {sorted(map(str, folders))}")
    folder = folders.pop()
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fdopa-tmp-", dir=folder))
    try:
        staged = {kind: staging / target.name for kind, target in targets.items()}
        yield staged
        for kind, target in targets.items():
            os.replace(staged[kind], target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
