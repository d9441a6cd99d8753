"""Image-compression metrics: PSNR, spectral angle, bits per pixel per channel, Bjøntegaard deltas.

``PSNR`` and ``SpectralAngle`` are torchmetrics ``Metric`` s whose states are float64/int64 sums (reduced with
``"sum"`` across processes), so a metric accumulated over batches or ranks equals the one computed on the
concatenated data. ``bd_rate`` / ``bd_psnr`` work on a handful of rate-distortion points in NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from numpy.polynomial import Polynomial
from torch import Tensor
from torchmetrics import Metric

__all__ = ["PSNR", "SpectralAngle", "bd_psnr", "bd_rate", "bpppc", "psnr", "spectral_angle"]


def _check_pair(x: Tensor, y: Tensor, name: str, min_ndim: int) -> None:
    if x.shape != y.shape:
        raise ValueError(f"{name}: prediction and target shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dims with the batch first, got {tuple(x.shape)}")


def _as_float_pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Cast both to float64 if either is float64, else to float32 (half inputs lose too much in squares)."""
    dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    return x.to(dtype), y.to(dtype)


def _per_image_psnr(x: Tensor, y: Tensor, data_range: float) -> Tensor:
    """PSNR of each image of the batch (B,), in float64; identical images give +inf."""
    _check_pair(x, y, "psnr", 2)
    x, y = _as_float_pair(x, y)
    mse = (x - y).pow(2).flatten(1).mean(dim=1).double()
    return 10.0 * torch.log10(data_range**2 / mse)


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0, reduction: Literal["mean", "none"] = "mean") -> Tensor:
    """Peak signal-to-noise ratio in dB, per image then averaged.

    Args:
        x: Reconstruction (B, ...) with the batch first; every other dim belongs to one image.
        y: Original, same shape.
        data_range: Peak value (max - min of the signal range), e.g. 1.0 or 255.
        reduction: ``"mean"`` for the mean over images, ``"none"`` for the per-image values (B,).

    Returns:
        Float32 tensor (computed in float64); an image identical to its original has PSNR +inf (and so has the
        mean).
    """
    values = _per_image_psnr(x, y, data_range)
    return (values.mean() if reduction == "mean" else values).float()


class PSNR(Metric):
    """Mean over images of the per-image PSNR (dB), accumulated over batches.

    Args:
        data_range: Peak value of the signal (1.0 for [0, 1] data).

    Inputs to ``update``: reconstruction and original (B, ...) of the same shape. An exactly reconstructed
    image has PSNR +inf, which makes the mean +inf.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    psnr_sum: Tensor
    num_images: Tensor

    def __init__(self, data_range: float = 1.0) -> None:
        super().__init__()
        if data_range <= 0:
            raise ValueError(f"PSNR data_range must be > 0, got {data_range}")
        self.data_range = float(data_range)
        self.add_state("psnr_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_images", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of reconstructions and originals (B, ...)."""
        values = _per_image_psnr(preds, target, self.data_range)
        self.psnr_sum += values.sum()
        self.num_images += values.numel()

    def compute(self) -> Tensor:
        """Mean PSNR in dB as a float32 scalar (NaN before any update)."""
        return (self.psnr_sum / self.num_images).float()


def _pixel_angles_deg(x: Tensor, y: Tensor) -> Tensor:
    """Angle in degrees between the channel vectors (dim 1) of every pixel, shape (B, *spatial)."""
    _check_pair(x, y, "spectral_angle", 2)
    x, y = _as_float_pair(x, y)
    tiny = torch.finfo(x.dtype).tiny
    u = x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(tiny)
    v = y / torch.linalg.vector_norm(y, dim=1, keepdim=True).clamp_min(tiny)
    # Kahan's formula: accurate near 0 and 180 degrees, unlike acos of the cosine.
    angle = 2.0 * torch.atan2(torch.linalg.vector_norm(u - v, dim=1), torch.linalg.vector_norm(u + v, dim=1))
    return torch.rad2deg(angle)


def spectral_angle(x: Tensor, y: Tensor) -> Tensor:
    """Mean spectral angle in degrees between the channel vectors of each pixel.

    Args:
        x: Reconstruction (B, C, H, W) (any number of trailing spatial dims, channels at dim 1).
        y: Original, same shape.

    Returns:
        Float32 scalar: mean over all pixels of all images of the angle between ``x[b, :, i, j]`` and
        ``y[b, :, i, j]``. Zero vectors do not produce NaN: two zero vectors are 0 degrees apart, a zero
        vector and a non-zero one 90 degrees.
    """
    return _pixel_angles_deg(x, y).double().mean().float()


class SpectralAngle(Metric):
    """Mean spectral angle (degrees) over all pixels, accumulated over batches.

    Inputs to ``update``: reconstruction and original (B, C, H, W). Zero vectors follow
    :func:`spectral_angle`: both zero -> 0 degrees, one zero -> 90 degrees.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    angle_sum: Tensor
    num_pixels: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("angle_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_pixels", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of reconstructions and originals (B, C, H, W)."""
        angles = _pixel_angles_deg(preds, target)
        self.angle_sum += angles.double().sum()
        self.num_pixels += angles.numel()

    def compute(self) -> Tensor:
        """Mean angle in degrees as a float32 scalar (NaN before any update)."""
        return (self.angle_sum / self.num_pixels).float()


def bpppc(num_bits: float, num_pixels: int, num_channels: int) -> float:
    """Bits per pixel per channel of a compressed image.

    Args:
        num_bits: Size of the bitstream in bits (bytes * 8).
        num_pixels: Spatial pixels of the image (H * W).
        num_channels: Spectral channels C.

    Returns:
        ``num_bits / (num_pixels * num_channels)``.
    """
    if not math.isfinite(num_bits) or num_bits < 0:
        raise ValueError(f"bpppc: num_bits must be a finite number >= 0, got {num_bits}")
    if num_pixels <= 0 or num_channels <= 0:
        raise ValueError(f"bpppc: num_pixels and num_channels must be > 0, got {num_pixels} and {num_channels}")
    return float(num_bits) / (num_pixels * num_channels)


def _rd_curve(
    rate: Sequence[float] | np.ndarray, dist: Sequence[float] | np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Validate one rate-distortion curve and return (log10 rate, PSNR) as float64 arrays."""
    r = np.asarray(rate, dtype=np.float64)
    d = np.asarray(dist, dtype=np.float64)
    if r.ndim != 1 or d.ndim != 1 or r.shape != d.shape:
        raise ValueError(f"{name}: rate and distortion must be 1-D of equal length, got shapes {r.shape} and {d.shape}")
    if r.size < 4:
        raise ValueError(f"{name}: Bjøntegaard's cubic fit needs at least 4 rate-distortion points, got {r.size}")
    if not (np.isfinite(r).all() and np.isfinite(d).all()):
        raise ValueError(f"{name}: rate and distortion must be finite (no NaN/inf), got rate={r}, dist={d}")
    if (r <= 0).any():
        raise ValueError(f"{name}: rates must be > 0 (they are log-transformed), got {r}")
    order = np.argsort(r)
    r, d = r[order], d[order]
    if not (np.diff(r) > 0).all():
        raise ValueError(f"{name}: rates must be strictly monotonic (no repeated rate), got {r}")
    if not (np.diff(d) > 0).all():
        raise ValueError(f"{name}: the quality (PSNR, dB) must strictly increase with the rate, got rate={r}, dist={d}")
    return np.log10(r), d


def _mean_gap(x_ref: np.ndarray, y_ref: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, what: str) -> float:
    """Mean of (cubic fit test - cubic fit ref) of y over the overlap of the two x ranges."""
    lo = max(x_ref.min(), x_test.min())
    hi = min(x_ref.max(), x_test.max())
    if not hi > lo:
        raise ValueError(
            f"Bjøntegaard delta: the {what} ranges of the two curves do not overlap "
            f"([{x_ref.min():.4g}, {x_ref.max():.4g}] vs [{x_test.min():.4g}, {x_test.max():.4g}])"
        )
    # Polynomial.fit rescales x to [-1, 1] (better conditioned than np.polyfit); integ() undoes the scaling.
    int_ref = Polynomial.fit(x_ref, y_ref, 3).integ()
    int_test = Polynomial.fit(x_test, y_test, 3).integ()
    return float(((int_test(hi) - int_test(lo)) - (int_ref(hi) - int_ref(lo))) / (hi - lo))


def bd_rate(
    rate_ref: Sequence[float] | np.ndarray,
    dist_ref: Sequence[float] | np.ndarray,
    rate_test: Sequence[float] | np.ndarray,
    dist_test: Sequence[float] | np.ndarray,
) -> float:
    """Bjøntegaard delta rate (VCEG-M33): mean rate difference at equal quality, in percent.

    log10(rate) is fitted as a cubic polynomial of PSNR for each curve; the mean gap between the two fits over
    the PSNR interval both curves cover gives ``(10**gap - 1) * 100``.

    Args:
        rate_ref: Rates of the reference codec (e.g. bpppc), >= 4 points, > 0, any order.
        dist_ref: Its PSNR (dB) at those rates; must strictly increase with the rate.
        rate_test: Rates of the tested codec.
        dist_test: Its PSNR.

    Returns:
        Percent rate change of the test codec; negative means it saves rate.

    Raises:
        ValueError: fewer than 4 points, NaN/inf, non-positive or repeated rates, PSNR not strictly increasing
            with rate, or PSNR ranges that do not overlap.
    """
    lr_ref, d_ref = _rd_curve(rate_ref, dist_ref, "bd_rate reference curve")
    lr_test, d_test = _rd_curve(rate_test, dist_test, "bd_rate test curve")
    gap = _mean_gap(d_ref, lr_ref, d_test, lr_test, "PSNR")
    return (10.0**gap - 1.0) * 100.0


def bd_psnr(
    rate_ref: Sequence[float] | np.ndarray,
    dist_ref: Sequence[float] | np.ndarray,
    rate_test: Sequence[float] | np.ndarray,
    dist_test: Sequence[float] | np.ndarray,
) -> float:
    """Bjøntegaard delta PSNR (VCEG-M33): mean PSNR difference at equal rate, in dB.

    PSNR is fitted as a cubic polynomial of log10(rate) for each curve and the mean gap is taken over the
    log-rate interval both curves cover.

    Args:
        rate_ref: Rates of the reference codec, >= 4 points, > 0, any order.
        dist_ref: Its PSNR (dB); must strictly increase with the rate.
        rate_test: Rates of the tested codec.
        dist_test: Its PSNR.

    Returns:
        PSNR gain of the test codec in dB (positive = better).

    Raises:
        ValueError: as :func:`bd_rate`, or rate ranges that do not overlap.
    """
    lr_ref, d_ref = _rd_curve(rate_ref, dist_ref, "bd_psnr reference curve")
    lr_test, d_test = _rd_curve(rate_test, dist_test, "bd_psnr test curve")
    return _mean_gap(lr_ref, d_ref, lr_test, d_test, "log-rate")
