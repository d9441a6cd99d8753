"""Converter for RML_indoor checkpoints (``torch.save(model.state_dict())``, keys with or without ``model.``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from rsim.core.weights import read_state_dict
from rsim.radiomap.models.radionet import RadioNet256to32
from torch import Tensor

__all__ = ["UNUSED_KEYS", "convert_checkpoint", "convert_state_dict", "load_weights"]

#: scalar parameters in the original state dict that the forward never uses
UNUSED_KEYS = ("delta_1", "delta_2", "delta_3", "delta_4", "delta_6", "delta_10", "delta_23", "material_weights")


def convert_state_dict(state: Mapping[str, Tensor], *, source: str = "state dict") -> dict[str, Tensor]:
    """Strip the ``model.`` prefix (RadioNetAnySize / Lightning ``model.``), drop unused scalars, validate the keys.

    Args:
        state: Original state dict.
        source: Name used in error messages (the file).

    Returns:
        A state dict for :class:`RadioNet256to32` (``inputs`` inferred from ``encode1_conv.0.weight``).

    Raises:
        ValueError: Unknown or missing keys, or shapes that do not fit the architecture.
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        k = re.sub(r"^(model\.)+", "", key)
        if k in UNUSED_KEYS:
            continue
        if not isinstance(value, Tensor):
            raise ValueError(f"{source}: entry {key!r} is not a tensor ({type(value).__name__})")
        out[k] = value
    if "encode1_conv.0.weight" not in out:
        raise ValueError(f"{source}: missing 'encode1_conv.0.weight' (not a RadioNet256to32 state dict?)")
    inputs = int(out["encode1_conv.0.weight"].shape[1])
    with torch.device("meta"):
        ref = RadioNet256to32(inputs=inputs).state_dict()
    missing = sorted(set(ref) - set(out))
    unexpected = sorted(set(out) - set(ref))
    if missing or unexpected:
        raise ValueError(f"{source}: keys do not match RadioNet256to32(inputs={inputs}): "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}")  # fmt: skip
    for k, v in ref.items():
        if tuple(out[k].shape) != tuple(v.shape):
            raise ValueError(f"{source}: {k} has shape {tuple(out[k].shape)}, expected {tuple(v.shape)}")
    return {k: out[k].float().contiguous() for k in ref}


def convert_checkpoint(src: str | Path, dst: str | Path) -> dict[str, int]:
    """Convert an original ``.pt``/``.pth`` (or a Lightning ``.ckpt``) to ``.safetensors``; return ``{"inputs": n}``."""
    from rsim.core.io import atomic_path
    from safetensors.torch import save_file

    src = Path(src)
    state = convert_state_dict(read_state_dict(src), source=str(src))
    inputs = int(state["encode1_conv.0.weight"].shape[1])
    with atomic_path(dst) as tmp:
        save_file(state, str(tmp), metadata={"model": "RadioNet256to32", "inputs": str(inputs)})
    return {"inputs": inputs}


def load_weights(path: str | Path) -> RadioNet256to32:
    """Build a full-width :class:`RadioNet256to32` from an original checkpoint or a converted ``.safetensors``."""
    state = convert_state_dict(read_state_dict(path), source=str(path))
    with torch.device("meta"):  # no random init of 36 M parameters: the tensors are taken over below
        model = RadioNet256to32(inputs=int(state["encode1_conv.0.weight"].shape[1]))
    model.load_state_dict(state, assign=True)
    return model
