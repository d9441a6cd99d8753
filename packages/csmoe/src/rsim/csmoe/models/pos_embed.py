"""Fixed 2-D sine-cosine positional embeddings (MAE convention used by CSMAE)."""

from __future__ import annotations

import torch
from torch import Tensor


def _sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """Return [len(positions), dim]: first dim/2 channels sin(p·w_k), last dim/2 cos(p·w_k)."""
    if dim % 2:
        raise ValueError(f"1-D sin-cos embedding needs an even dimension, got {dim}")
    k = torch.arange(dim // 2, dtype=torch.float64)
    omega = 1.0 / 10000.0 ** (k / (dim / 2.0))
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_pos_embed_2d(embed_dim: int, grid_size: int, cls_token: bool = True) -> Tensor:
    """Build the fixed 2-D sin-cos table of CSMAE/MAE.

    For the patch at grid row ``r`` and column ``c`` (raster order) the first ``embed_dim/2`` channels
    encode the column ``c`` and the last ``embed_dim/2`` the row ``r``; each half is ``[sin(p·w_k),
    cos(p·w_k)]`` with ``w_k = 10000^(-k/(embed_dim/4))``. With ``cls_token`` a zero row is prepended.

    Args:
        embed_dim: Channel count, divisible by 4.
        grid_size: Patches per side.
        cls_token: Prepend a zero row for the cls token.

    Returns:
        Float32 tensor ``[grid_size**2 (+1), embed_dim]``.
    """
    if embed_dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs embed_dim divisible by 4, got {embed_dim}")
    rows, cols = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    emb = torch.cat([_sincos_1d(embed_dim // 2, cols.reshape(-1)), _sincos_1d(embed_dim // 2, rows.reshape(-1))], dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, embed_dim, dtype=emb.dtype), emb], dim=0)
    return emb.float()
