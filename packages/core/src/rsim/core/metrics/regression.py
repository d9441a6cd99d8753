"""Masked pixel-wise regression metrics: RMSE, MAE and the standard deviation of the error."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["MaskedRegressionMetrics"]


class MaskedRegressionMetrics(Metric):
    """RMSE, MAE and error standard deviation over the valid pixels of every batch.

    The error is ``pred - target``. The states are float64 sums of the error, its square and its absolute
    value plus the count of valid pixels (all reduced with ``"sum"`` across processes), so the result over
    many batches or ranks is exactly the one over the concatenated valid pixels. ``error_std`` is the
    population standard deviation (divisor n, as ``numpy.std``).

    Pixels outside the mask never reach the sums, so NaN/nodata values there are harmless; a NaN at a valid
    pixel propagates to the results. A batch whose mask is all False contributes nothing. ``compute`` with no
    valid pixel at all returns NaN for every key (it does not raise, so an empty validation epoch does not
    stop training).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    count: Tensor
    err_sum: Tensor
    sq_err_sum: Tensor
    abs_err_sum: Tensor

    def __init__(self) -> None:
        super().__init__()
        for name in ("err_sum", "sq_err_sum", "abs_err_sum"):
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> None:
        """Accumulate one batch.

        Args:
            pred: Predictions, any shape.
            target: Reference values, same shape as ``pred``.
            mask: Bool tensor of the same shape, True where the pixel counts; None means every pixel counts.
        """
        if pred.shape != target.shape:
            raise ValueError(
                f"MaskedRegressionMetrics: pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
            )
        if mask is None:
            mask = torch.ones_like(target, dtype=torch.bool)
        if mask.dtype != torch.bool:
            raise TypeError(f"MaskedRegressionMetrics: mask must be a bool tensor, got dtype {mask.dtype}")
        if mask.shape != pred.shape:
            raise ValueError(
                f"MaskedRegressionMetrics: mask shape {tuple(mask.shape)} differs from pred shape {tuple(pred.shape)}"
            )
        err = pred.to(torch.float64) - target.to(torch.float64)
        err = torch.where(mask, err, torch.zeros((), dtype=torch.float64, device=err.device))
        self.err_sum += err.sum()
        self.sq_err_sum += err.square().sum()
        self.abs_err_sum += err.abs().sum()
        self.count += mask.sum()

    def compute(self) -> dict[str, Tensor]:
        """Return ``{"rmse", "mae", "error_std"}`` as float32 scalars (NaN when no pixel was valid)."""
        n = self.count.to(torch.float64)
        mean = self.err_sum / n
        mse = self.sq_err_sum / n
        var = (mse - mean.square()).clamp_min(0.0)
        return {
            "rmse": mse.sqrt().float(),
            "mae": (self.abs_err_sum / n).float(),
            "error_std": var.sqrt().float(),
        }
