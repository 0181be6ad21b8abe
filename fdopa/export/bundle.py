"""Writing and reading a model bundle: a directory that runs without the training code.

Layout (every name fixed)::

    BUNDLE/model.pt        state dict of the network only (torch.load(weights_only=True))
    BUNDLE/model.ts        TorchScript program traced on a (1, C, *patch_size) input
    BUNDLE/model.onnx      the same as ONNX, only when the ``onnx`` package is importable
    BUNDLE/config.json     network, preprocessing and inference (:class:`BundleConfig`)
    BUNDLE/metadata.json   versions, label map, input spec, training data, validation metrics
    BUNDLE/checksums.json  sha256 of every other file

A bundle is written into a hidden directory beside its target and renamed into place when
complete (:func:`fdopa.outputs.staged_dir`); ``overwrite`` replaces only an earlier bundle.
:func:`read_bundle` verifies every checksum before it reads anything else and refuses a bundle
with a changed, missing or unlisted file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fdopa.export.bundle_config import BundleConfig, BundleError
from fdopa.outputs import check_artefact_dir, staged_dir

__all__ = [
    "CHECKSUMS_FILE",
    "CONFIG_FILE",
    "METADATA_FILE",
    "MODEL_FILE",
    "ONNX_FILE",
    "TORCHSCRIPT_FILE",
    "Bundle",
    "read_bundle",
    "sha256",
    "verify_checksums",
    "write_bundle",
]

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
TORCHSCRIPT_FILE = "model.ts"
ONNX_FILE = "model.onnx"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
CHECKSUMS_FILE = "checksums.json"
TRACE_TOLERANCE = 1e-4
"""Largest |traced − eager| logit accepted when the TorchScript program is written, relative
to the largest |logit| where that exceeds 1 (float32 rounding grows with the logits)."""


def sha256(path: str | Path) -> str:
    """Hex sha256 digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _quiet_torchscript() -> Iterator[None]:
    """Silence TorchScript's deprecation notices and smp's benign shape-check TracerWarning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk.

    Attributes:
        path: Bundle directory.
        config: Its :class:`BundleConfig`.
        metadata: Parsed ``metadata.json``.
    """

    path: Path
    config: BundleConfig
    metadata: Mapping[str, Any]

    def load_network(self, device: str | torch.device = "cpu") -> nn.Module:
        """The eager network with the bundle's weights, in eval mode on ``device``.

        The module is built on the ``meta`` device (no random initialisation, no memory) and
        the bundle's tensors are assigned as its parameters and buffers; a network with state
        outside its state dict is built normally instead.
        """
        state = torch.load(self.path / MODEL_FILE, map_location="cpu", weights_only=True, mmap=True)
        with torch.device("meta"):
            net = self.config.build_network()
        net.load_state_dict(state, strict=True, assign=True)
        if any(t.is_meta for t in (*net.parameters(), *net.buffers())):
            net = self.config.build_network()
            net.load_state_dict(state, strict=True)
        return net.to(device).eval()

    def load_torchscript(self, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
        """The traced program (fixed patch size, any batch size), in eval mode on ``device``."""
        with _quiet_torchscript():
            program = torch.jit.load(str(self.path / TORCHSCRIPT_FILE), map_location=device)
        return program.eval()


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    text = json.dumps(payload, indent=2, allow_nan=False, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def _trace(net: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Trace ``net`` on ``example``, save it, and check it against the eager network."""
    with torch.no_grad(), _quiet_torchscript():
        program = torch.jit.trace(net, example, check_trace=False)  # checked below, once
        torch.jit.save(program, str(path))
        probe = torch.randn(example.shape, generator=torch.Generator().manual_seed(0))
        eager = net(probe)
        error = float((program(probe) - eager).abs().max()) / max(1.0, float(eager.abs().max()))
    if error > TRACE_TOLERANCE:
        raise BundleError(
            f"{path.name}: traced logits differ from eager ones by {error:.3g} (relative)"
        )


def _export_onnx(net: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Write ONNX when ``onnx`` is importable; a failure is logged, never fatal (an extra)."""
    if importlib.util.find_spec("onnx") is None:
        log.info("onnx is not installed: no %s in the bundle", path.name)
        return
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch = {0: "batch"}
            torch.onnx.export(
                net, (example,), str(path), dynamo=False, input_names=["image"],
                output_names=["logits"], dynamic_axes={"image": batch, "logits": batch},
            )  # fmt: skip
    except Exception as err:  # an optional extra must not sink the bundle
        for leftover in path.parent.glob(f"{path.name}*"):
            leftover.unlink()
        log.warning("ONNX export failed, bundle written without it: %s", err)


def write_bundle(
    out: str | Path,
    net: nn.Module,
    config: BundleConfig,
    metadata: Mapping[str, Any],
    *,
    overwrite: bool = False,
) -> Bundle:
    """Write a bundle directory atomically.

    Args:
        out: Target directory: absent, empty, or (with ``overwrite``) an fdopa bundle; it is
            staged as a hidden sibling and renamed into place (:func:`fdopa.outputs.staged_dir`).
        net: Trained network; its state dict must load strictly into
            ``config.build_network()``. It is not modified (a rebuilt copy is traced).
        config: Network, preprocessing and inference settings.
        metadata: JSON-serialisable metadata (see :func:`fdopa.export.run.build_metadata`).
        overwrite: Replace an existing ``out``.

    Returns:
        The written bundle, read back and verified.

    Raises:
        FileExistsError: If ``out`` holds a bundle and ``overwrite`` is false, or holds
            anything else.
        ValueError: If ``out`` is the current, home or root folder (or holds one).
        BundleError: If the weights do not fit the configured network or tracing changes them.
    """
    out = check_artefact_dir(out, kind="bundle", overwrite=overwrite)
    rebuilt = config.build_network()
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    try:
        rebuilt.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise BundleError(f"the weights do not fit network {config.network}: {err}") from err
    rebuilt.eval()
    example = torch.zeros(1, len(config.channels), *config.patch_size)
    with staged_dir(out, kind="bundle", overwrite=overwrite) as staging:
        torch.save(state, staging / MODEL_FILE)
        _trace(rebuilt, example, staging / TORCHSCRIPT_FILE)
        _export_onnx(rebuilt, example, staging / ONNX_FILE)
        _write_json(staging / CONFIG_FILE, config.to_dict())
        _write_json(staging / METADATA_FILE, metadata)
        files = {p.name: sha256(p) for p in sorted(staging.iterdir())}
        _write_json(staging / CHECKSUMS_FILE, {"algorithm": "sha256", "files": files})
    log.info("wrote bundle %s (%s)", out, ", ".join(files))
    return read_bundle(out)


def verify_checksums(path: str | Path) -> dict[str, str]:
    """Check every file of a bundle against ``checksums.json``.

    Args:
        path: Bundle directory.

    Returns:
        File name → sha256 of the verified files.

    Raises:
        BundleError: If the directory or ``checksums.json`` is missing or malformed, a listed
            file is missing or changed, or a file is not listed.
    """
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle directory")
    listing = root / CHECKSUMS_FILE
    try:
        payload = json.loads(listing.read_text())
        expected, algorithm = dict(payload["files"]), payload["algorithm"]
    except FileNotFoundError as err:
        raise BundleError(f"{listing}: missing; cannot verify the bundle") from err
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise BundleError(f"{listing}: malformed ({err})") from err
    if algorithm != "sha256":
        raise BundleError(f"{listing}: algorithm {algorithm!r} is not sha256")
    present = {p.name for p in root.iterdir() if p.name != CHECKSUMS_FILE}
    unlisted = sorted(present - set(expected))
    if unlisted:
        raise BundleError(f"{root}: file(s) {unlisted} not in {CHECKSUMS_FILE}; refusing it")
    for name, digest in expected.items():
        file = root / name
        if not file.is_file():
            raise BundleError(f"{file}: listed in {CHECKSUMS_FILE} but missing")
        if sha256(file) != digest:
            raise BundleError(
                f"{file}: sha256 differs from {CHECKSUMS_FILE}; the bundle was modified or "
                "corrupted, refusing it"
            )
    for required in (MODEL_FILE, TORCHSCRIPT_FILE, CONFIG_FILE, METADATA_FILE):
        if required not in expected:
            raise BundleError(f"{root}: incomplete bundle, no {required}")
    return expected


def read_bundle(path: str | Path) -> Bundle:
    """Verify a bundle's checksums, then read its configuration and metadata.

    Args:
        path: Bundle directory.

    Returns:
        The :class:`Bundle`.

    Raises:
        BundleError: On a failed checksum (see :func:`verify_checksums`) or an invalid config.
    """
    root = Path(path)
    verify_checksums(root)
    try:
        config_payload = json.loads((root / CONFIG_FILE).read_text(encoding="utf-8"))
        metadata = json.loads((root / METADATA_FILE).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BundleError(f"{root}: invalid JSON ({err})") from err
    config = BundleConfig.from_dict(config_payload, source=root / CONFIG_FILE)
    return Bundle(root, config, metadata)
