"""Glint masks for real imagery: a brightness-threshold estimator (no glint-free twin exists outside the renderer)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rsim.sea_undistort.data.dataset import glint_mask, gray, read_rgb
from torch import Tensor


@dataclass(frozen=True)
class ThresholdMaskProvider:
    """Soft glint mask from brightness alone [assumption; how the authors masked real images is unknown].

    Sun glint is the brightest, locally outstanding signal over water. With ``g`` the 8-bit luma and ``b`` its
    local median background (a ``background`` px median filter, computed on a copy subsampled by
    ``background // 8``), the excess ``d = g - b`` plays the role of ``|gray(render) - gray(no_sunglint)|`` and
    is ramped exactly like the training mask: ``(clip(d, lower, upper) - lower) / (upper - lower)``. Pixels brighter
    than ``absolute`` are always glint.

    Args:
        lower: Excess (grey levels) where the ramp starts (30, as the training mask).
        upper: Excess where the mask saturates (60).
        background: Side of the background window in pixels.
        absolute: Luma above which a pixel is glint regardless of its background (``None``: off).
    """

    lower: float = 30.0
    upper: float = 60.0
    background: int = 31
    absolute: float | None = 240.0

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB → ``(H, W)`` float32 mask in [0, 1]."""
        from scipy.ndimage import median_filter

        luma = gray(rgb).astype(np.float32)
        stride = max(1, self.background // 8)
        small = median_filter(luma[::stride, ::stride], size=max(3, self.background // stride), mode="nearest")
        background = F.interpolate(torch.from_numpy(small)[None, None], size=luma.shape, mode="bilinear",
                                   align_corners=False)[0, 0].numpy()  # fmt: skip
        d = np.clip(luma - background, 0, None)
        mask = (np.clip(d, self.lower, self.upper) - self.lower) / max(self.upper - self.lower, 1.0)
        if self.absolute is not None:
            mask = np.maximum(mask, (gray(rgb) >= self.absolute).astype(np.float32))
        return mask.astype(np.float32)


def mask_for(
    rgb: np.ndarray, *, no_sunglint: str | os.PathLike[str] | None = None,
    mask_file: str | os.PathLike[str] | None = None,
    provider: ThresholdMaskProvider | None = None,
) -> np.ndarray:  # fmt: skip
    """The glint mask of an image: from its no-glint render when given, a mask file, else the threshold estimator."""
    if no_sunglint is not None:
        return glint_mask(rgb, read_rgb(no_sunglint))
    if mask_file is not None:
        path = Path(mask_file)
        m = read_rgb(path)[..., 0].astype(np.float32) / 255.0
        if m.shape != rgb.shape[:2]:
            raise ValueError(f"mask {path} is {m.shape}, expected {rgb.shape[:2]}")
        return m
    return (provider or ThresholdMaskProvider())(rgb)


def as_tensor_mask(mask: np.ndarray) -> Tensor:
    """``(H, W)`` mask → ``(1, 1, H, W)`` float tensor."""
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
