"""Device-side normalisation (99th percentile, then standardisation) and SSL view augmentations (kornia)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import kornia.augmentation as K
import torch
from kornia.augmentation import IntensityAugmentationBase2D
from kornia.enhance import posterize
from torch import Tensor, nn

#: Per-band 99th percentiles of BigEarthNet ("All" countries) [code: GeoRank constants, bigearthnet.md §7].
BEN_P99: dict[str, float] = {
    "B02": 2824.0, "B03": 2802.0, "B04": 3001.0, "B05": 3316.2, "B06": 4416.8, "B07": 5234.0,
    "B08": 5574.0, "B8A": 5472.2, "B11": 4455.3, "B12": 3405.6, "VV": 30.0, "VH": 30.0,
}  # fmt: skip


class PercentileStandardize(nn.Module):
    """``((x / p99) − μ) / σ`` per channel.

    Args:
        p99: Per-channel divisor (the band's 99th percentile).
        mean: Per-channel mean of ``x / p99``; ``None`` skips standardisation.
        std: Per-channel standard deviation of ``x / p99`` (required with ``mean``).
    """

    p99: Tensor
    mean: Tensor
    std: Tensor

    def __init__(
        self, p99: Sequence[float], mean: Sequence[float] | None = None, std: Sequence[float] | None = None
    ) -> None:
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("normalisation needs both mean and std, or neither")
        c = len(p99)
        for name, values in (("mean", mean), ("std", std)):
            if values is not None and len(values) != c:
                raise ValueError(f"normalisation {name} has {len(values)} values, expected {c} (one per band)")
        if any(v <= 0 for v in p99) or (std is not None and any(v <= 0 for v in std)):
            raise ValueError("p99 and std must be positive for every band")
        self.register_buffer("p99", torch.tensor(p99, dtype=torch.float32).view(1, c, 1, 1), persistent=False)
        m = torch.tensor(mean if mean is not None else [0.0] * c, dtype=torch.float32).view(1, c, 1, 1)
        s = torch.tensor(std if std is not None else [1.0] * c, dtype=torch.float32).view(1, c, 1, 1)
        self.register_buffer("mean", m, persistent=False)
        self.register_buffer("std", s, persistent=False)

    @classmethod
    def for_bands(
        cls,
        bands: Sequence[str],
        p99: Mapping[str, float] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> PercentileStandardize:
        """Build from a per-band percentile table (default :data:`BEN_P99`)."""
        table = BEN_P99 if p99 is None else p99
        missing = [b for b in bands if b not in table]
        if missing:
            raise KeyError(f"99th-percentile table has no entry for band(s) {missing}")
        return cls([table[b] for b in bands], mean, std)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        if x.shape[1] != self.p99.shape[1]:
            raise ValueError(f"batch has {x.shape[1]} channels, normalisation expects {self.p99.shape[1]}")
        return (x / self.p99.to(x.device) - self.mean.to(x.device)) / self.std.to(x.device)


def channel_stats(x: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of a ``(B, C, H, W)`` batch (to fill ``mean``/``std`` from data)."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    return flat.mean(1).tolist(), flat.std(1).clamp_min(1e-6).tolist()


class RangePosterize(K.RandomPosterize):
    """Kornia's posterize for data outside ``[0, 1]``, applied to each sample's channels in their own range.

    Each channel of a sample is min-max scaled to ``[0, 1]``, posterized to ``bits`` bits (kornia's uint8 round
    trip), then scaled back.

    Kornia (and albumentations) posterize 8-bit images; multispectral batches here are p99-scaled and possibly
    standardised, so clamping to ``[0, 1]`` would destroy them [assumption: per-sample, per-channel range].

    Args:
        bits: Bits kept, an int or a ``(low, high)`` range drawn per sample (the original: ``num_bits`` 6, i.e. a
            draw from 6…8).
        p: Probability per sample.
    """

    def __init__(self, bits: int | tuple[int, int] = (6, 8), p: float = 0.5) -> None:
        super().__init__(bits=(bits, bits) if isinstance(bits, int) else bits, p=p)

    def apply_transform(  # noqa: D102
        self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any], transform: Tensor | None = None
    ) -> Tensor:
        lo = input.amin(dim=(-2, -1), keepdim=True)
        span = (input.amax(dim=(-2, -1), keepdim=True) - lo).clamp_min(torch.finfo(input.dtype).tiny)
        unit = ((input - lo) / span).clamp(0.0, 1.0)
        return posterize(unit, params["bits_factor"].to(input.device)) * span + lo


class RandomPixelDrop(IntensityAugmentationBase2D):
    """Pixel dropout (albumentations ``PixelDropout``): each pixel is set to ``drop_value`` with ``drop_prob``.

    The mask is drawn on the batch's device from torch's generator (``seed_everything`` makes it reproducible).

    Args:
        drop_prob: Probability that a pixel is dropped.
        per_channel: Draw the mask per channel (``False``: one mask for all bands of a sample).
        drop_value: Value written into dropped pixels.
        p: Probability per sample.
    """

    def __init__(
        self, drop_prob: float = 0.01, per_channel: bool = False, drop_value: float = 0.0, p: float = 0.5
    ) -> None:
        super().__init__(p=p)
        if not 0.0 <= drop_prob <= 1.0:
            raise ValueError(f"pixel drop probability must be in [0, 1], got {drop_prob}")
        self.drop_prob, self.per_channel, self.drop_value = drop_prob, per_channel, drop_value

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:  # noqa: D102
        return {}  # the mask is drawn in apply_transform, on the batch's device

    def apply_transform(  # noqa: D102
        self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any], transform: Tensor | None = None
    ) -> Tensor:
        c = input.shape[1] if self.per_channel else 1
        drop = torch.rand(input.shape[0], c, *input.shape[2:], device=input.device) < self.drop_prob
        return torch.where(drop, torch.full_like(input, self.drop_value), input)


#: The augmentation study set: name → factory(probability) of a kornia module working on any channel count.
AUGMENTATIONS: dict[str, Callable[[float], nn.Module]] = {
    "brightness": lambda p: K.RandomBrightness((0.8, 1.2), p=p),
    "contrast": lambda p: K.RandomContrast((0.8, 1.2), p=p),
    "gaussian_noise": lambda p: K.RandomGaussianNoise(std=0.1, p=p),
    "gaussian_blur": lambda p: K.RandomGaussianBlur((5, 5), (0.1, 2.0), p=p),
    "solarize": lambda p: K.RandomSolarize(thresholds=0.1, additions=0.1, p=p),
    "shear": lambda p: K.RandomAffine(degrees=0, shear=10.0, p=p),
    "cutout": lambda p: K.RandomErasing(scale=(0.02, 0.2), p=p),
    "grid_shuffle": lambda p: K.RandomJigsaw(grid=(4, 4), p=p),
    "posterize": lambda p: RangePosterize(bits=(6, 8), p=p),
    "pixel_drop": lambda p: RandomPixelDrop(drop_prob=0.01, p=p),
}


class ViewAugment(nn.Module):
    """One random view per sample: resized crop, flips, rot90, then any of the study-set augmentations.

    Args:
        size: Output size of the crop.
        crop_scale: Area range of the random resized crop; ``None`` keeps the full image (resized to ``size``).
        crop_p: Probability of the crop.
        flip_p: Probability of each of the horizontal and vertical flips.
        rot90_p: Probability of a random multiple-of-90° rotation.
        extra: Names from :data:`AUGMENTATIONS`, applied in the given order.
        extra_p: Probability of each extra augmentation.
    """

    def __init__(
        self,
        size: int,
        crop_scale: tuple[float, float] | None = (0.2, 1.0),
        crop_p: float = 1.0,
        flip_p: float = 0.75,
        rot90_p: float = 0.75,
        extra: Sequence[str] = (),
        extra_p: float = 0.5,
    ) -> None:
        super().__init__()
        unknown = [e for e in extra if e not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"unknown augmentation(s) {unknown}; expected names from {sorted(AUGMENTATIONS)}")
        self.size = size
        ops: list[Any] = []
        if crop_scale is not None and crop_p > 0:
            ops.append(K.RandomResizedCrop((size, size), scale=(crop_scale[0], crop_scale[1]), p=crop_p))
        if flip_p > 0:
            ops += [K.RandomHorizontalFlip(p=flip_p), K.RandomVerticalFlip(p=flip_p)]
        if rot90_p > 0:
            ops.append(K.RandomRotation90(times=(1, 3), p=rot90_p))
        ops += [AUGMENTATIONS[e](extra_p) for e in extra]
        self.ops = K.AugmentationSequential(*ops, data_keys=["input"]) if ops else None

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        out = x if self.ops is None else self.ops(x)
        if tuple(out.shape[-2:]) != (self.size, self.size):  # no crop: resize the whole image
            out = nn.functional.interpolate(out, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return out


def center_crop(x: Tensor, size: int) -> Tensor:
    """Central ``size``×``size`` crop of a ``(..., H, W)`` tensor."""
    h, w = x.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"cannot centre-crop {h}×{w} to {size}×{size}")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


__all__ = [
    "AUGMENTATIONS",
    "BEN_P99",
    "PercentileStandardize",
    "RandomPixelDrop",
    "RangePosterize",
    "ViewAugment",
    "center_crop",
    "channel_stats",
]
