"""Random InternViT / InternVL checkpoints in the official key layouts (tiny sizes), for tests and demos."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
from rsim.core.io import atomic_path
from torch import Tensor

__all__ = ["internvit_state_dict", "internvl_projector_state_dict", "write_internvit_checkpoint"]


def internvit_state_dict(
    *, dim: int = 32, depth: int = 2, mlp: int = 128, patch: int = 14, image_size: int = 56, seed: int = 0
) -> dict[str, Tensor]:
    """Random tensors under the standalone InternViT-300M-448px key names (``embeddings.*``, ``encoder.layers.*``)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, s: float = 0.2) -> Tensor:
        return torch.randn(*shape, generator=g) * s

    grid = (image_size // patch) ** 2
    st = {
        "embeddings.class_embedding": r(1, 1, dim),
        "embeddings.position_embedding": r(1, 1 + grid, dim),
        "embeddings.patch_embedding.weight": r(dim, 3, patch, patch, s=0.05),
        "embeddings.patch_embedding.bias": r(dim),
    }
    for i in range(depth):
        p = f"encoder.layers.{i}."
        st |= {
            p + "attn.qkv.weight": r(3 * dim, dim),
            p + "attn.qkv.bias": r(3 * dim),
            p + "attn.proj.weight": r(dim, dim),
            p + "attn.proj.bias": r(dim),
            p + "ls1": r(dim, s=0.5),
            p + "ls2": r(dim, s=0.5),
            p + "norm1.weight": 1 + r(dim),
            p + "norm1.bias": r(dim),
            p + "norm2.weight": 1 + r(dim),
            p + "norm2.bias": r(dim),
            p + "mlp.fc1.weight": r(mlp, dim),
            p + "mlp.fc1.bias": r(mlp),
            p + "mlp.fc2.weight": r(dim, mlp),
            p + "mlp.fc2.bias": r(dim),
        }
    return st


def internvl_projector_state_dict(*, vision_dim: int = 32, llm_dim: int = 24, seed: int = 1) -> dict[str, Tensor]:
    """Random ``mlp1.{0,1,3}`` tensors (LayerNorm, Linear, -, Linear) after a 0.5 pixel shuffle."""
    g = torch.Generator().manual_seed(seed)
    d = 4 * vision_dim
    return {
        "mlp1.0.weight": 1 + 0.1 * torch.randn(d, generator=g),
        "mlp1.0.bias": 0.1 * torch.randn(d, generator=g),
        "mlp1.1.weight": 0.1 * torch.randn(llm_dim, d, generator=g),
        "mlp1.1.bias": 0.1 * torch.randn(llm_dim, generator=g),
        "mlp1.3.weight": 0.1 * torch.randn(llm_dim, llm_dim, generator=g),
        "mlp1.3.bias": 0.1 * torch.randn(llm_dim, generator=g),
    }


def write_internvit_checkpoint(
    path: str | os.PathLike[str],
    *,
    layout: Literal["standalone", "chat"] = "standalone",
    dim: int = 32,
    depth: int = 2,
    mlp: int = 128,
    patch: int = 14,
    image_size: int = 56,
    llm_dim: int = 24,
    seed: int = 0,
) -> Path:
    """Write a random checkpoint (``.safetensors`` or torch file by suffix) in an official layout (atomic).

    ``chat`` puts the encoder under ``vision_model.`` and adds the ``mlp1`` projector (width ``llm_dim``) and one
    ``language_model.*`` tensor, like an InternVL chat model.
    """
    state = internvit_state_dict(dim=dim, depth=depth, mlp=mlp, patch=patch, image_size=image_size, seed=seed)
    if layout == "chat":
        state = {f"vision_model.{k}": v for k, v in state.items()}
        state |= internvl_projector_state_dict(vision_dim=dim, llm_dim=llm_dim, seed=seed + 1)
        state["language_model.model.embed_tokens.weight"] = torch.zeros(4, llm_dim)
    out = Path(path)
    with atomic_path(out) as tmp:
        if out.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(tmp))
        else:
            torch.save(state, tmp)
    return out
