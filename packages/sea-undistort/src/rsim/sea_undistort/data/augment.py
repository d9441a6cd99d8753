"""Joint device-side transforms for (lq, gt, mask) batches: crops, flips, colour jitter, value range."""

from __future__ import annotations

from typing import Literal

import kornia.augmentation as K
import torch
from torch import Tensor, nn

TransformMode = Literal["resize", "crop", "resizecrop"]
Jitter = Literal["none", "light", "strong"]
JITTER: dict[str, tuple[float, float, float, float]] = {
    "light": (0.1, 0.1, 0.1, 0.05),  # [code] released loader
    "strong": (0.3, 0.6, 0.2, 0.05),  # [code]
}


class PairTransform(nn.Module):
    """Apply the released loader's transforms jointly to ``lq``/``gt``/``mask`` on the batch's device.

    Geometric transforms (random crop / random resized crop with torchvision v2 defaults scale (0.08, 1), ratio
    (3/4, 4/3); centre crop at eval; flips p=0.5) act on the channel-stacked ``[lq, gt, mask]`` so all three share
    the parameters. Colour jitter uses one parameter draw per sample for ``lq`` and ``gt`` (the mask is untouched).

    Args:
        size: Output side.
        mode: ``resize``, ``crop`` or ``resizecrop``.
        train: Random (train) or deterministic (eval) geometry.
        flips: Random horizontal and vertical flips (train only).
        color_jitter: ``none``, ``light`` or ``strong`` (train only).
        negative_values: Map images and mask from [0, 1] to [-1, 1].
    """

    def __init__(
        self, size: int = 256, mode: TransformMode = "resizecrop", *, train: bool = True, flips: bool = True,
        color_jitter: Jitter = "none", negative_values: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        if mode not in ("resize", "crop", "resizecrop"):
            raise ValueError(f"transform mode must be resize, crop or resizecrop, got {mode!r}")
        if color_jitter not in ("none", "light", "strong"):
            raise ValueError(f"color_jitter must be none, light or strong, got {color_jitter!r}")
        self.size, self.mode, self.train_mode, self.negative_values = size, mode, train, negative_values
        geo: list[nn.Module] = []
        if mode == "resize":
            geo.append(K.Resize((size, size), antialias=True))
        elif train and mode == "crop":
            geo.append(K.RandomCrop((size, size)))
        elif train:
            geo.append(K.RandomResizedCrop((size, size), scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)))
        else:
            geo.append(K.CenterCrop((size, size)))
        if train and flips:
            geo += [K.RandomHorizontalFlip(p=0.5), K.RandomVerticalFlip(p=0.5)]
        self.geometry = nn.Sequential(*geo)
        self.jitter = K.ColorJitter(*JITTER[color_jitter], p=1.0) if train and color_jitter != "none" else None

    @torch.no_grad()
    def forward(self, lq: Tensor, gt: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Transform float ``(B, 3, H, W)`` images in [0, 1] and ``(B, 1, H, W)`` masks; returns the same triple."""
        stacked = torch.cat([lq, gt, mask], dim=1)
        if not (stacked.shape[-1] == stacked.shape[-2] == self.size and self.mode != "resize" and not self.train_mode):
            stacked = self.geometry(stacked)
        lq, gt, mask = stacked[:, :3], stacked[:, 3:6], stacked[:, 6:]
        if self.jitter is not None:
            lq = self.jitter(lq)
            gt = self.jitter(gt, params=self.jitter._params)
        lq, gt, mask = lq.clamp(0, 1), gt.clamp(0, 1), mask.clamp(0, 1)
        if self.negative_values:
            lq, gt, mask = lq * 2 - 1, gt * 2 - 1, mask * 2 - 1
        return lq.contiguous(), gt.contiguous(), mask.contiguous()
