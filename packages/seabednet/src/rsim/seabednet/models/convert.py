"""Convert the published Seabed-Net checkpoints (``.pth``) to safetensors and load them.

The original state-dict keys are kept unchanged (our module tree mirrors the original), so conversion means:
unwrapping checkpoint containers, stripping wrapper prefixes (``module.``, ``model.``, ``_orig_mod.``),
inferring the constructor arguments from tensor shapes, validating every key and shape, and storing the
configuration in the safetensors metadata. ``pos_embed`` tensors of shape ``(1, N, C)`` are accepted for
any N.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from rsim.core.errors import DataFormatError
from rsim.core.io import atomic_path
from rsim.seabednet.models.seabednet import SeabedNet
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

__all__ = [
    "FORMAT_TAG",
    "convert_checkpoint",
    "infer_config",
    "load_converted",
    "read_original_checkpoint",
    "validate_state_dict",
]

FORMAT_TAG = "rsim-seabednet/1"
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights")
_PREFIXES = ("module.", "model.", "net.", "_orig_mod.")
_FIRST = "bathy_encoder.enc1.double_conv.0.weight"


def _unwrap(obj: Any, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, torch.nn.Module):
        return dict(obj.state_dict())
    if not isinstance(obj, Mapping):
        raise DataFormatError(f"{path}: expected a state dict or a checkpoint dict, got {type(obj).__name__}")
    if obj and all(isinstance(v, Tensor) for v in obj.values()):
        return {str(k): v for k, v in obj.items()}
    for key in _CONTAINER_KEYS:
        if key in obj:
            return _unwrap(obj[key], path)
    raise DataFormatError(
        f"{path}: checkpoint dict has no tensor state dict; looked for keys {list(_CONTAINER_KEYS)}, "
        f"found {sorted(map(str, obj))[:10]}"
    )


def _strip_prefixes(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if sd and all(k.startswith(p) for k in sd):
                sd = {k[len(p) :]: v for k, v in sd.items()}
                changed = True
    return sd


def read_original_checkpoint(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> dict[str, Tensor]:
    """Read an original ``.pth`` file (plain state dict, checkpoint dict or pickled module).

    Args:
        path: Checkpoint file.
        trust_pickle: Allow full unpickling (needed only for pickled ``nn.Module`` objects; runs code from the
            file, so use it for trusted files only).

    Returns:
        The state dict with wrapper prefixes removed.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        DataFormatError: If the file cannot be read or holds no state dict.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: checkpoint file not found")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:
        hint = "" if trust_pickle else " (a pickled model object needs --trust-pickle)"
        raise DataFormatError(f"{p}: cannot read as a PyTorch checkpoint{hint}: {exc}") from exc
    return _strip_prefixes(_unwrap(obj, p))


def _build(config: Mapping[str, int], *, reference_compatible: bool, input_size: int = 256) -> SeabedNet:
    return SeabedNet(
        in_channels=int(config["in_channels"]),
        features=int(config["features"]),
        bathymetry_out_channels=int(config["bathymetry_out_channels"]),
        segmentation_out_channels=int(config["segmentation_out_channels"]),
        reference_compatible=reference_compatible,
        input_size=input_size,
    )


def infer_config(sd: Mapping[str, Tensor], source: str = "state dict") -> dict[str, int]:
    """Infer the ``SeabedNet`` constructor arguments from tensor shapes.

    Args:
        sd: State dict with original key names.
        source: Name used in error messages.

    Returns:
        ``{"in_channels", "features", "bathymetry_out_channels", "segmentation_out_channels"}``.
    """
    keys = {
        _FIRST: "encoder input",
        "bathy_decoder.out_conv.weight": "depth head",
        "seg_decoder.out_conv.weight": "class head",
    }
    for k, what in keys.items():
        if k not in sd:
            raise DataFormatError(f"{source}: missing key {k!r} ({what}); not a Seabed-Net state dict")
    first = sd[_FIRST]
    return {
        "in_channels": int(first.shape[1]),
        "features": int(first.shape[0]),
        "bathymetry_out_channels": int(sd["bathy_decoder.out_conv.weight"].shape[0]),
        "segmentation_out_channels": int(sd["seg_decoder.out_conv.weight"].shape[0]),
    }


def validate_state_dict(sd: Mapping[str, Tensor], config: Mapping[str, int], source: str = "state dict") -> None:
    """Check keys and shapes against a meta-device model; ``pos_embed`` may have any token count.

    Raises:
        DataFormatError: Listing missing/unexpected keys and shape mismatches.
    """
    with torch.device("meta"):
        model = _build(config, reference_compatible=True)
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    bad = []
    for k, t in expected.items():
        if k not in sd:
            continue
        got, want = tuple(sd[k].shape), tuple(t.shape)
        if k.endswith("pos_embed"):
            if len(got) != 3 or got[0] != 1 or got[2] != want[2]:
                bad.append(f"{k}: expected (1, N, {want[2]}), got {got}")
        elif got != want:
            bad.append(f"{k}: expected {want}, got {got}")
    if missing or unexpected or bad:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        if bad:
            parts.append(f"shape mismatches: {bad[:3]}")
        raise DataFormatError(f"{source}: not a Seabed-Net state dict for {dict(config)}: " + "; ".join(parts))


def convert_checkpoint(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, trust_pickle: bool = False
) -> dict[str, int]:
    """Convert an original checkpoint to a safetensors file with the model configuration in its metadata.

    Args:
        src: Original ``.pth`` (state dict or checkpoint dict) or an already converted ``.safetensors``.
        dst: Output ``.safetensors`` path (written atomically).
        trust_pickle: See :func:`read_original_checkpoint`.

    Returns:
        The inferred constructor configuration.
    """
    src_path = Path(src)
    if src_path.suffix == ".safetensors":
        sd = _read_safetensors(src_path)[0]
    else:
        sd = read_original_checkpoint(src_path, trust_pickle=trust_pickle)
    config = infer_config(sd, str(src_path))
    validate_state_dict(sd, config, str(src_path))
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}
    meta = {"format": FORMAT_TAG, "config": json.dumps(config), "source": src_path.name}
    with atomic_path(dst) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return config


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            return {k: fh.get_tensor(k) for k in fh.keys()}, meta
    except Exception as exc:
        raise DataFormatError(f"{path}: cannot read as safetensors: {exc}") from exc


def load_converted(
    path: str | os.PathLike[str],
    *,
    reference_compatible: bool = True,
    input_size: int = 256,
    map_location: str | torch.device = "cpu",
) -> SeabedNet:
    """Build a ``SeabedNet`` from a safetensors file (converted or a raw state dict without metadata).

    Args:
        path: ``.safetensors`` file.
        reference_compatible: Model mode; keep ``True`` for imported original weights.
        input_size: Positional-embedding size for the default mode.
        map_location: Device of the returned model.

    Returns:
        The model in eval mode.
    """
    p = Path(path)
    sd, meta = _read_safetensors(p)
    config = json.loads(meta["config"]) if "config" in meta else infer_config(sd, str(p))
    validate_state_dict(sd, config, str(p))
    model = _build(config, reference_compatible=reference_compatible, input_size=input_size)
    model.load_state_dict(sd, strict=True)
    return model.to(map_location).eval()
