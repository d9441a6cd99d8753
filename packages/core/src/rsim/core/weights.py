"""Local weight files: ``.safetensors``, torch files (Lightning/DDP wrappers unwrapped), sharded indexes, folders.

Every package loads pretrained or converted weights through :func:`read_state_dict`; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from rsim.core.errors import DataFormatError
from torch import Tensor

#: Keys under which checkpoints nest their state dict (Lightning, DeepSpeed/timm, DDP).
WRAPPERS: tuple[str, ...] = ("state_dict", "model", "module")


def _keep_all(key: str) -> bool:
    return True


def unwrap_state_dict(state: Mapping[str, Any], wrappers: Sequence[str] = WRAPPERS) -> Mapping[str, Any]:
    """The innermost mapping of tensors of a checkpoint nested under one of ``wrappers``."""
    if any(isinstance(v, Tensor) for v in state.values()):
        return state
    for wrapper in wrappers:
        inner = state.get(wrapper)
        if isinstance(inner, Mapping):
            return unwrap_state_dict(inner, wrappers)
    return state


def _read_safetensors(path: Path, keep: Callable[[str], bool]) -> dict[str, Tensor]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys() if keep(k)}
    except Exception as err:  # safetensors raises SafetensorError / OSError subclasses for bad headers and data
        raise DataFormatError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from err


def _is_tensor_tree(value: Any) -> bool:
    if isinstance(value, Tensor):
        return True
    return isinstance(value, Mapping) and all(_is_tensor_tree(v) for v in value.values())


def _read_torch(path: Path, keep: Callable[[str], bool], wrappers: Sequence[str], nested: bool) -> dict[str, Any]:
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, pickle errors, non-tensor objects
        raise DataFormatError(f"{path}: not a readable torch state dict ({type(err).__name__}: {err})") from err
    if not isinstance(raw, Mapping):
        raise DataFormatError(f"{path}: expected a state dict (mapping of names to tensors), got {type(raw).__name__}")
    state = unwrap_state_dict(raw, wrappers)
    bad = [k for k, v in state.items() if not (_is_tensor_tree(v) if nested else isinstance(v, Tensor))]
    if bad:
        raise DataFormatError(f"{path}: expected tensors, these entries are not: {bad[:5]}")
    return {str(k): v for k, v in state.items() if keep(str(k))}


def _read_index(path: Path, keep: Callable[[str], bool]) -> dict[str, Tensor]:
    try:
        weight_map: dict[str, str] = json.loads(path.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataFormatError(f"{path}: expected a sharded-checkpoint index with a 'weight_map' ({err})") from err
    shards = sorted({f for k, f in weight_map.items() if keep(k)})
    out: dict[str, Tensor] = {}
    for shard in shards:
        out.update(read_state_dict(path.parent / shard, keep=keep))
    return out


def read_state_dict(
    path: str | os.PathLike[str],
    *,
    keep: Callable[[str], bool] = _keep_all,
    wrappers: Sequence[str] = WRAPPERS,
    nested: bool = False,
) -> dict[str, Any]:
    """Tensors of a local checkpoint: ``.safetensors``, a torch file, a sharded ``*.index.json`` or a model folder.

    Args:
        path: The file or folder.
        keep: Read only the keys for which this is true (a sharded index skips shards with no wanted key).
        wrappers: Keys under which a torch checkpoint may nest its state dict (unwrapped recursively).
        nested: Accept torch checkpoints that group tensors in sub-mappings (e.g. CROMA's one state dict per
            encoder) and return them as they are; otherwise every entry must be a tensor.

    Raises:
        FileNotFoundError: ``path`` does not exist (or a folder holds no known checkpoint file).
        DataFormatError: The file is truncated, corrupt or not a mapping of tensors.
    """
    p = Path(path)
    if p.is_dir():
        for name in ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json"):
            if (p / name).is_file():
                return read_state_dict(p / name, keep=keep, wrappers=wrappers, nested=nested)
        raise FileNotFoundError(f"{p}: folder holds no model.safetensors(.index.json) or pytorch_model.bin.index.json")
    if not p.is_file():
        raise FileNotFoundError(f"weights file {p} is missing")
    if p.name.endswith(".index.json"):
        return _read_index(p, keep)
    if p.suffix == ".safetensors":
        return _read_safetensors(p, keep)
    return _read_torch(p, keep, wrappers, nested)


__all__ = ["WRAPPERS", "read_state_dict", "unwrap_state_dict"]
