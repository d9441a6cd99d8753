"""Tiled restoration of large (georeferenced) images with overlapping, feathered tiles."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rsim.core.data.geotiff import read_geotiff, write_geotiff
from rsim.core.data.tiling import blend_weights, tile_starts
from rsim.core.errors import DataFormatError
from rsim.sea_undistort.masks import ThresholdMaskProvider
from torch import Tensor

Restorer = Callable[[Tensor, Tensor], Tensor]


@torch.no_grad()
def restore_array(
    image: np.ndarray, mask: np.ndarray, restore: Restorer, *, tile: int = 256, overlap: int = 32,
    batch_size: int = 4, device: str | torch.device = "cpu",
) -> np.ndarray:  # fmt: skip
    """Restore an ``(H, W, 3)`` float image in [0, 1] tile by tile.

    Tiles of ``tile`` px overlap by ``overlap`` px; outputs are blended with linear ramps (weighted average).
    Images smaller than a tile are padded by reflection.

    Args:
        image: ``(H, W, 3)`` float32 in [0, 1].
        mask: ``(H, W)`` glint mask in [0, 1].
        restore: ``restore(lq (B,3,t,t), mask (B,1,t,t)) -> (B,3,t,t)`` in [0, 1].
        tile: Tile side.
        overlap: Overlap in pixels (< tile/2).
        batch_size: Tiles per forward pass.
        device: Where the model runs.
    """
    if not 0 <= overlap < tile // 2:
        raise ValueError(f"overlap must be in [0, tile/2), got {overlap} for tile {tile}")
    h, w = image.shape[:2]
    ph, pw = max(0, tile - h), max(0, tile - w)
    if ph or pw:
        if ph < h and pw < w:
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect")
            mask = np.pad(mask, ((0, ph), (0, pw)), mode="reflect")
        else:
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge")
            mask = np.pad(mask, ((0, ph), (0, pw)), mode="edge")
    H, W = image.shape[:2]
    out = np.zeros((H, W, 3), np.float64)
    weight = np.zeros((H, W, 1), np.float64)
    win = blend_weights(tile, overlap).numpy()[..., None]
    coords = [(r, c) for r in tile_starts(H, tile, tile - overlap) for c in tile_starts(W, tile, tile - overlap)]
    for i in range(0, len(coords), batch_size):
        chunk = coords[i : i + batch_size]
        lq = torch.stack([torch.from_numpy(image[r : r + tile, c : c + tile]).permute(2, 0, 1) for r, c in chunk])
        mk = torch.stack([torch.from_numpy(mask[r : r + tile, c : c + tile])[None] for r, c in chunk])
        pred = restore(lq.float().to(device), mk.float().to(device)).float().cpu().permute(0, 2, 3, 1).numpy()
        for (r, c), p in zip(chunk, pred, strict=True):
            out[r : r + tile, c : c + tile] += p * win
            weight[r : r + tile, c : c + tile] += win
    return (out / weight)[:h, :w].astype(np.float32)


def restore_geotiff(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], restore: Restorer, *,
    mask_provider: ThresholdMaskProvider | None = None, mask: np.ndarray | None = None,
    bands: tuple[int, int, int] = (1, 2, 3),
    tile: int = 256, overlap: int = 32, batch_size: int = 4, device: str | torch.device = "cpu",
    scale: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Restore an RGB GeoTIFF and write it with the same georeferencing (CRS, transform, dtype).

    Values are scaled to [0, 1] by ``scale`` (default: 255 for 8-bit, 65535 for 16-bit, 1 for float) and written back
    in the input dtype. The glint mask is ``mask`` when given, else from ``mask_provider`` (threshold estimator).

    Returns:
        ``{"path", "height", "width", "tiles_side", "mask_fraction"}``.
    """
    array, profile = read_geotiff(src, bands=list(bands))
    if array.shape[0] != 3:
        raise DataFormatError(f"{src}: need 3 RGB bands, got {array.shape[0]}")
    dtype = array.dtype
    if scale is None:
        scale = 255.0 if dtype == np.uint8 else 65535.0 if dtype == np.uint16 else 1.0
    if np.issubdtype(dtype, np.floating) and not np.isfinite(array).all():
        raise DataFormatError(f"{src}: contains NaN/inf values; expected finite RGB")
    rgb = np.clip(array.transpose(1, 2, 0).astype(np.float32) / scale, 0, 1)
    if mask is None:
        rgb8 = np.rint(rgb * 255).astype(np.uint8)
        mask = (mask_provider or ThresholdMaskProvider())(rgb8)
    restored = restore_array(rgb, mask, restore, tile=tile, overlap=overlap, batch_size=batch_size, device=device)
    out = restored.transpose(2, 0, 1) * scale
    if np.issubdtype(dtype, np.integer):
        out = np.clip(np.rint(out), np.iinfo(dtype).min, np.iinfo(dtype).max)
    profile = {**profile, "descriptions": ("red", "green", "blue")}
    write_geotiff(dst, out.astype(dtype), profile)
    return {"path": Path(dst), "height": rgb.shape[0], "width": rgb.shape[1], "mask_fraction": float((mask > 0).mean())}
