"""Pure functions of the pixel-grounded chain of thought (Algorithm 1).

Mask → token grid, token selection, uniform spatial sampling, gathering, optical/SAR selection and "Image: t"
temporal routing.
"""

from __future__ import annotations

import math
import re
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

GridResize = Literal["area", "nearest"]
FusionSoftmaxDim = Literal["tokens", "modality", "text"]

__all__ = [
    "frame_from_text",
    "gather_tokens",
    "mask_to_grid",
    "region_token_indices",
    "select_modality",
    "select_tokens",
    "uniform_sample",
]


def mask_to_grid(mask: Tensor, grid: tuple[int, int], mode: GridResize = "area") -> Tensor:
    """Fraction of each token cell covered by a (H, W) mask (``area``), or the nearest-resized mask (0/1).

    Args:
        mask: (H, W) bool or probability mask.
        grid: Token grid (rows, cols).
        mode: ``area`` = exact cell coverage (paper: "> 50 % covered"); ``nearest`` = nearest resize (released code).
    """
    m = mask.float()[None, None]
    if mode == "area":
        return F.adaptive_avg_pool2d(m, grid)[0, 0]
    if mode == "nearest":
        return F.interpolate(m, size=grid, mode="nearest")[0, 0]
    raise ValueError(f"unknown grid_resize {mode!r}; expected 'area' or 'nearest'")


def select_tokens(coverage: Tensor, threshold: float = 0.5) -> Tensor:
    """Flat (row-major) indices of cells whose coverage exceeds ``threshold``."""
    return torch.nonzero(coverage.flatten() > threshold).flatten()


def uniform_sample(indices: Tensor, grid: tuple[int, int], max_tokens: int) -> Tensor:
    """Keep at most ``max_tokens`` of ``indices`` by spatially uniform sampling.

    A ⌈√λ⌉×⌈√λ⌉ lattice is laid over the bounding box of the selected cells; for each lattice-cell centre the
    nearest selected token is kept (duplicates dropped, order = lattice order, then truncated to λ).
    """
    if len(indices) <= max_tokens:
        return indices
    cols = grid[1]
    rows_i, cols_i = (indices // cols).float(), (indices % cols).float()
    side = math.ceil(math.sqrt(max_tokens))
    r0, r1 = float(rows_i.min()), float(rows_i.max()) + 1.0
    c0, c1 = float(cols_i.min()), float(cols_i.max()) + 1.0
    centres_r = r0 + (torch.arange(side, dtype=torch.float32) + 0.5) * (r1 - r0) / side
    centres_c = c0 + (torch.arange(side, dtype=torch.float32) + 0.5) * (c1 - c0) / side
    cr, cc = torch.meshgrid(centres_r, centres_c, indexing="ij")
    d2 = (rows_i[None, :] + 0.5 - cr.flatten()[:, None]) ** 2 + (cols_i[None, :] + 0.5 - cc.flatten()[:, None]) ** 2
    nearest = d2.argmin(dim=1).tolist()
    seen: list[int] = []
    for n in nearest:
        if n not in seen:
            seen.append(n)
    return indices[torch.tensor(seen[:max_tokens], dtype=torch.long)]


def region_token_indices(
    mask: Tensor,
    grid: tuple[int, int],
    *,
    max_tokens: int = 128,
    threshold: float = 0.5,
    mode: GridResize = "area",
) -> Tensor:
    """Tokens injected for one mask: covered cells, uniformly subsampled to ``max_tokens``; empty → centre token."""
    idx = select_tokens(mask_to_grid(mask, grid, mode), threshold)
    if len(idx) == 0:
        return torch.tensor([(grid[0] // 2) * grid[1] + grid[1] // 2], dtype=torch.long, device=mask.device)
    return uniform_sample(idx.cpu(), grid, max_tokens).to(mask.device)


def gather_tokens(tokens: Tensor, indices: Tensor) -> Tensor:
    """(K, D) rows of the (N, D) projected visual tokens of one image."""
    return tokens.index_select(0, indices.to(tokens.device))


def select_modality(
    optical: Tensor, sar: Tensor, query: Tensor, *, softmax_dim: FusionSoftmaxDim = "tokens"
) -> tuple[Tensor, Tensor]:
    """Text-guided optical/SAR choice per masked position.

    ``β^μ_j = mean_ℓ softmax(v^μ qᵀ/√D)``; the SAR feature is injected where ``β^SAR_j > β^opt_j``.
    ``softmax_dim``: ``tokens`` (over the K masked tokens, released code), ``modality`` (over {opt, SAR} per
    (j, ℓ)), ``text`` (over ℓ as the paper's formula reads; then β ≡ 1/L and optical always wins, kept for parity).

    Args:
        optical: (K, D) optical region features.
        sar: (K, D) SAR region features at the same positions.
        query: (L, D) text-token embeddings.
        softmax_dim: Normalisation of the attention scores (see above).

    Returns:
        ``(features (K, D), use_sar (K,) bool)``.
    """
    if optical.shape != sar.shape:
        raise ValueError(f"optical {tuple(optical.shape)} and SAR {tuple(sar.shape)} region features differ")
    if query.numel() == 0:
        return optical, torch.zeros(len(optical), dtype=torch.bool, device=optical.device)
    scale = 1.0 / math.sqrt(optical.shape[-1])
    s_opt = optical.float() @ query.float().T * scale
    s_sar = sar.float() @ query.float().T * scale
    if softmax_dim == "tokens":
        b_opt, b_sar = s_opt.softmax(0).mean(1), s_sar.softmax(0).mean(1)
    elif softmax_dim == "modality":
        both = torch.stack([s_opt, s_sar]).softmax(0)
        b_opt, b_sar = both[0].mean(1), both[1].mean(1)
    elif softmax_dim == "text":
        b_opt, b_sar = s_opt.softmax(1).mean(1), s_sar.softmax(1).mean(1)
    else:
        raise ValueError(f"unknown fusion_softmax_dim {softmax_dim!r}; expected tokens, modality or text")
    use_sar = b_sar > b_opt
    return torch.where(use_sar[:, None], sar, optical), use_sar


_FRAME = re.compile(r"Image:\s*(\d+)")


def frame_from_text(text: str, n_frames: int, default: int = 0) -> int:
    """0-based frame chosen by the last ``"Image: t"`` (1-based ``t``) in ``text``; clamped; ``default`` if none."""
    hits = _FRAME.findall(text)
    if not hits:
        return default
    return min(max(int(hits[-1]) - 1, 0), n_frames - 1)
