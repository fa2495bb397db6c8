"""Checkpoints: a plain state_dict in NAME.pt and its metadata in NAME.json beside it.

Loading treats a checkpoint as data, never as code: torch.load(weights_only=True)
refuses anything but tensors and plain containers, and the result is then checked
against the architecture (keys, shapes, finite values) before any model sees it.
Saving is atomic (temporary file, fsync, rename), so a crash mid-save leaves the
previous checkpoint whole.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from rotinv.architectures import ARCHITECTURES, build_model

# A LeNet-5 checkpoint is about 3 MB; anything far bigger is not one of ours.
MAX_CHECKPOINT_BYTES = 20 * 1024 * 1024


class CheckpointError(ValueError):
    """A checkpoint that cannot be used. The message is one sentence for a person."""


# --- saving -----------------------------------------------------------------------------


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on every platform; the rename is still atomic
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temporary(path: Path, payload: bytes) -> Path:
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def state_dict_bytes(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def save_checkpoint(model: nn.Module, path: str | os.PathLike, metadata: Mapping) -> None:
    """Write PATH (.pt, the state_dict) and PATH with .json (metadata), both atomically.

    Both files are written to temporary names and synced first, then renamed one after
    the other, so an interrupted save leaves the previous pair in place.
    """
    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"A checkpoint file name must end in .pt, got {path.name!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = state_dict_bytes(model)
    # The metadata names the exact bytes it describes, so a pair torn by a crash between
    # the two renames is recognised on load instead of mislabelling the weights.
    metadata = {**dict(metadata), "weights_sha256": hashlib.sha256(payload).hexdigest()}
    weights = _write_temporary(path, payload)
    try:
        meta = _write_temporary(metadata_path(path), metadata_text(metadata).encode())
    except BaseException:
        os.unlink(weights)
        raise
    os.replace(weights, path)
    os.replace(meta, metadata_path(path))
    _fsync_directory(path.parent)


def update_metadata(path: str | os.PathLike, metadata: Mapping) -> None:
    """Rewrite PATH's .json sidecar (atomically), leaving the weights file untouched.

    The sidecar is bound to the weights file's bytes as it is now (weights_sha256), so
    metadata added later, such as recorded sweeps, can never describe other weights.
    """
    path = Path(path)
    payload = path.read_bytes()
    metadata = {**dict(metadata), "weights_sha256": hashlib.sha256(payload).hexdigest()}
    meta = _write_temporary(metadata_path(path), metadata_text(metadata).encode())
    os.replace(meta, metadata_path(path))
    _fsync_directory(path.parent)


# A JSON list of plain numbers, spread over lines by json.dumps(indent=...).
_NUMBER_LIST = re.compile(r"\[(?:\s*-?[0-9][0-9.eE+-]*\s*,)*\s*-?[0-9][0-9.eE+-]*\s*\]")


def metadata_text(metadata: Mapping) -> str:
    """The sidecar's JSON: indented, with each list of numbers (a confusion-matrix row) on one line."""
    text = json.dumps(metadata, indent=2, sort_keys=False)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(n.strip() for n in m.group(0)[1:-1].split(",")) + "]",
                            text) + "\n"


def metadata_path(checkpoint: str | os.PathLike) -> Path:
    return Path(checkpoint).with_suffix(".json")


# --- loading ----------------------------------------------------------------------------


def _too_large(size: int) -> str:
    return (f"The file is {size / 2**20:.1f} MB, more than a checkpoint of these models can be "
            f"({MAX_CHECKPOINT_BYTES // 2**20} MB).")


def read_state_dict(payload: bytes) -> dict[str, torch.Tensor]:
    """Bytes of a .pt file to a state_dict of tensors, refusing anything that is not data."""
    if len(payload) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(_too_large(len(payload)))
    if len(payload) == 0:
        raise CheckpointError("The file is empty; it is not a PyTorch checkpoint.")
    try:
        with warnings.catch_warnings():  # an unusual pickle protocol warns before it is refused
            warnings.simplefilter("ignore")
            loaded = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:
        # weights_only names the global it refused; any other failure is unreadable bytes.
        if re.search(r"Unsupported (global|class)|GLOBAL|REDUCE|BUILD", str(error)):
            raise CheckpointError(
                "The file contains Python objects, not just weights, and was refused for safety; "
                "save the model's state_dict() instead."
            ) from None
        raise CheckpointError(
            "The file is not a readable PyTorch checkpoint (it may be truncated or not a .pt file)."
        ) from None
    if isinstance(loaded, Mapping) and "state_dict" in loaded and isinstance(loaded["state_dict"], Mapping):
        loaded = loaded["state_dict"]  # a common wrapper; accept it
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise CheckpointError("The file holds something other than a state_dict of named tensors.")
    return dict(loaded)


def infer_architecture(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The architecture whose parameter names and shapes match the state_dict's.

    Names alone do not tell C4CNN from C8CNN (the same stages, other shapes).
    """
    def shapes(tensors: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
        return {name: tuple(getattr(tensor, "shape", ())) for name, tensor in tensors.items()}

    given = shapes(state_dict)
    expected = {arch: shapes(build_model(arch).state_dict()) for arch in ARCHITECTURES}
    named_alike = [arch for arch, wanted in expected.items() if set(wanted) == set(given)]
    for arch in named_alike:
        if expected[arch] == given:
            return arch
    if named_alike:  # the right names, wrong shapes: model_from_state_dict says which tensor is off
        return named_alike[0]
    raise CheckpointError(
        f"The weights do not belong to any known architecture ({', '.join(sorted(ARCHITECTURES))})."
    )


def model_from_state_dict(state_dict: Mapping[str, torch.Tensor], arch: str | None = None) -> nn.Module:
    """A model of `arch` (inferred when None) with these weights, after checking them."""
    if arch is None:
        arch = infer_architecture(state_dict)
    try:
        model = build_model(arch)
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"The weights do not fit the {arch} architecture ({detail}).")
    for name, tensor in expected.items():
        given = state_dict[name]
        if tuple(given.shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"The weights do not fit the {arch} architecture: {name} has shape "
                f"{tuple(given.shape)}, expected {tuple(tensor.shape)}."
            )
        if given.is_floating_point() != tensor.is_floating_point():
            # weights are floats; batch norm's count of batches seen is a whole number
            kind = "float" if tensor.is_floating_point() else "whole-number"
            raise CheckpointError(f"The weights hold the wrong kind of values in {name} (expected {kind}).")
        if given.is_floating_point() and not torch.isfinite(given).all():
            raise CheckpointError(f"The weights contain NaN or infinite values (in {name}).")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state_dict.items()})
    model.eval()
    return model


def load_checkpoint_bytes(payload: bytes, arch: str | None = None) -> nn.Module:
    """A model from the bytes of an uploaded .pt file. Raises CheckpointError."""
    return model_from_state_dict(read_state_dict(payload), arch)


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata beside a checkpoint, or {} when there is none or it is unreadable."""
    try:
        meta = json.loads(metadata_path(path).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def load_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """(model, metadata) from NAME.pt and NAME.json. Raises CheckpointError."""
    path = Path(path)
    if path.suffix != ".pt":
        raise CheckpointError(f"{path.name} is not a .pt checkpoint file.")
    if not path.is_file():
        raise CheckpointError(f"There is no checkpoint file at {path}.")
    if path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(_too_large(path.stat().st_size))
    try:
        payload = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{path} could not be read ({error.strerror}).") from None
    metadata = read_metadata(path)
    recorded = metadata.get("weights_sha256")
    if recorded is not None and recorded != hashlib.sha256(payload).hexdigest():
        metadata = {}  # the sidecar describes other weights (e.g. a save was interrupted)
    arch = metadata.get("architecture")
    arch = arch if isinstance(arch, str) and arch in ARCHITECTURES else None
    return load_checkpoint_bytes(payload, arch), metadata



def weights_fingerprint(model: nn.Module) -> str:
    """A content hash of the weights: equal weights, equal fingerprint, whatever the name.

    Caches key sweep results by this, so two different models called "my model" never
    share a result, and the same weights loaded twice do.
    """
    digest = hashlib.sha256()
    digest.update(type(model).__name__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
