"""Device-side batch transforms: band stacking with resampling, normalisation and augmentation.

They run in ``LightningDataModule.on_after_batch_transfer`` on whatever device the batch is on, so the
DataLoader workers only read raw arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from rsim.core.errors import MissingKeyError
from torch import Tensor, nn

Interpolation = Literal["nearest", "bilinear", "bicubic"]


def stack_bands(
    bands: Mapping[str, Tensor], order: Sequence[str], size: int, interpolation: Interpolation = "bilinear"
) -> Tensor:
    """Resample every band to ``size``×``size`` and stack them as ``(B, C, size, size)`` float32 in ``order``.

    Bands of equal native size are resampled together in one call.

    Args:
        bands: ``{band: (B, H, W) tensor}`` at native resolution and dtype.
        order: Channel order of the output.
        size: Output height and width.
        interpolation: ``nearest``, ``bilinear`` or ``bicubic`` (``align_corners=False``).

    Raises:
        MissingKeyError: A band of ``order`` is not in ``bands``.
    """
    missing = [b for b in order if b not in bands]
    if missing:
        raise MissingKeyError(f"batch lacks band(s) {missing}; it holds {sorted(bands)}")
    first = bands[order[0]]
    out = torch.empty((first.shape[0], len(order), size, size), dtype=torch.float32, device=first.device)
    groups: dict[tuple[int, int], list[int]] = {}
    for channel, band in enumerate(order):
        groups.setdefault(tuple(bands[band].shape[-2:]), []).append(channel)  # type: ignore[arg-type]
    for hw, channels in groups.items():
        x = torch.stack([bands[order[c]] for c in channels], dim=1).to(torch.float32)
        if hw != (size, size):
            kwargs = {} if interpolation == "nearest" else {"align_corners": False}
            x = F.interpolate(x, size=(size, size), mode=interpolation, **kwargs)
        out[:, channels] = x
    return out


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` with buffers that follow the module's device."""

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        if (std <= 0).any():
            raise ValueError("normalisation std must be positive for every channel")
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1).float(), persistent=False)
        self.register_buffer("std", std.reshape(1, -1, 1, 1).float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return (x - self.mean.to(x.device)) / self.std.to(x.device)


class BatchAugment(nn.Module):
    """Random flips, 90° rotations and random resized crops, independently per sample, on the batch's device.

    Flips and rotations are exact index permutations (``torch.flip``/``torch.rot90``); the crop uses kornia
    (bilinear for images, nearest for masks).

    Args:
        size: Output size of the random resized crop.
        flip_p: Probability of each of the horizontal and vertical flips.
        rot90_p: Probability of a rotation by 90°, 180° or 270° (uniform); needs square inputs.
        crop_scale: Area range of the random resized crop; ``None`` disables it.
        crop_p: Probability of applying the crop.
    """

    def __init__(
        self,
        size: int,
        *,
        flip_p: float = 0.5,
        rot90_p: float = 0.5,
        crop_scale: tuple[float, float] | None = (0.8, 1.0),
        crop_p: float = 0.5,
    ) -> None:
        super().__init__()
        for name, p in (("flip_p", flip_p), ("rot90_p", rot90_p), ("crop_p", crop_p)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {p}")
        self.flip_p = flip_p
        self.rot90_p = rot90_p
        self.crop = (
            K.AugmentationSequential(K.RandomResizedCrop((size, size), scale=crop_scale, p=crop_p), data_keys=["input"])
            if crop_scale is not None and crop_p > 0
            else None
        )

    def _dihedral(self, tensors: list[Tensor]) -> list[Tensor]:
        batch, device = tensors[0].shape[0], tensors[0].device
        out = [t.clone() for t in tensors]
        for dim in (-1, -2):
            flip = torch.rand(batch, device=device) < self.flip_p
            for t in out:
                t[flip] = t[flip].flip(dim)
        if self.rot90_p > 0:
            if out[0].shape[-1] != out[0].shape[-2]:
                raise ValueError(f"rot90 augmentation needs square inputs, got {tuple(out[0].shape[-2:])}")
            turns = torch.randint(1, 4, (batch,), device=device)
            turns = torch.where(torch.rand(batch, device=device) < self.rot90_p, turns, torch.zeros_like(turns))
            for k in (1, 2, 3):
                pick = turns == k
                for t in out:
                    t[pick] = torch.rot90(t[pick], k, dims=(-2, -1))
        return out

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Any:
        """Augment ``x`` (B, C, H, W); with ``mask`` (B, H, W) apply the same geometry to it.

        Returns:
            ``x`` augmented, or ``(x, mask)`` when a mask is given (the mask keeps its dtype).
        """
        if mask is None:
            (x,) = self._dihedral([x])
            return self.crop(x) if self.crop is not None else x
        x, mask = self._dihedral([x, mask])
        if self.crop is not None:
            x, cropped = self.crop(x, mask[:, None].float(), data_keys=["input", "mask"])
            mask = cropped[:, 0].round().to(mask.dtype)
        return x, mask
