"""Sliding-window tiling of large rasters: window offsets and overlap-blending weights."""

from __future__ import annotations

import torch
from torch import Tensor


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Window offsets covering ``[0, length)``, the last window flush with the end.

    A raster no longer than ``tile`` gets the single offset 0 (callers pad or reject it).

    Raises:
        ValueError: ``tile`` or ``stride`` is not positive.
    """
    if tile <= 0 or stride <= 0:
        raise ValueError(f"tile and stride must be positive, got tile={tile}, stride={stride}")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def blend_weights(tile: int, overlap: int) -> Tensor:
    """Separable linear-ramp weights ``(tile, tile)``: 1 in the centre, ramps over ``overlap`` pixels, never 0."""
    ramp = torch.ones(tile)
    if overlap > 0:
        edge = (torch.arange(overlap, dtype=torch.float32) + 1) / (overlap + 1)
        ramp[:overlap] = edge
        ramp[-overlap:] = torch.minimum(ramp[-overlap:], edge.flip(0))
    return ramp[:, None] * ramp[None, :]


__all__ = ["blend_weights", "tile_starts"]
