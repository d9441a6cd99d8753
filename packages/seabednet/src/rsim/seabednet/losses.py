"""Seabed-Net training losses: masked depth RMSE, cross-entropy without "undefined", task weighting."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["TaskWeighting", "masked_ce", "masked_rmse", "valid_depth_mask"]


def valid_depth_mask(depth: Tensor, image: Tensor, min_valid_fraction: float = 0.5) -> Tensor:
    """Pixels with a depth label and image data.

    A pixel is valid where ``depth != 0`` (0 = no label), depth is finite, and at least ``min_valid_fraction``
    of the image channels are non-zero (0 = image no-data), as in MagicBathyNet.

    Args:
        depth: ``[B, 1, H, W]`` or ``[B, H, W]`` depth targets.
        image: ``[B, C, H, W]`` image (raw or normalised; 0 stays 0 under the min-0 normalisation).
        min_valid_fraction: Minimum fraction of non-zero channels.

    Returns:
        Bool mask with the shape of ``depth``.
    """
    img_ok = (image != 0).float().mean(dim=1, keepdim=True) >= min_valid_fraction
    if depth.dim() == 3:
        img_ok = img_ok[:, 0]
    return (depth != 0) & torch.isfinite(depth) & img_ok


def masked_rmse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``sqrt(sum(m * (pred - target)^2) / sum(m))``; zero (with a zero gradient) when no pixel is valid.

    Args:
        pred: Predicted depth.
        target: Target depth, same shape (may hold NaN/nodata outside the mask).
        mask: Bool mask, same shape.

    Returns:
        Scalar loss, never NaN for masked-out invalid values.
    """
    if pred.shape != target.shape or mask.shape != pred.shape:
        raise ValueError(
            f"masked_rmse: shapes differ: pred {tuple(pred.shape)}, target {tuple(target.shape)}, "
            f"mask {tuple(mask.shape)}"
        )
    diff = torch.where(mask, pred - torch.nan_to_num(target), torch.zeros_like(pred))
    n = mask.sum()
    mse = diff.square().sum() / n.clamp_min(1)
    # No host sync: with no valid pixel the sum is 0 and the result is exactly 0 with a zero gradient.
    return torch.where(n > 0, mse.clamp_min(1e-12).sqrt(), torch.zeros_like(mse))


def masked_ce(logits: Tensor, target: Tensor, ignore_index: int | None) -> Tensor:
    """Mean cross-entropy over non-ignored pixels; zero (with a zero gradient) if every pixel is ignored."""
    if ignore_index is None:
        return F.cross_entropy(logits, target)
    loss = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
    n = (target != ignore_index).sum()
    return loss / n.clamp_min(1)


class TaskWeighting(nn.Module):
    """Combine the depth and segmentation losses.

    Modes:
        ``kendall`` (default): ``0.5*exp(-s_b)*L_b + 0.5*s_b + exp(-s_s)*L_s + 0.5*s_s`` with learnable
            log-variances (Kendall, Gal & Cipolla 2018: regression 1/(2 sigma^2), classification 1/sigma^2).
        ``symmetric``: ``exp(-s_b)*L_b + s_b + exp(-s_s)*L_s + s_s``.
        ``fixed``: ``w_b*L_b + w_s*L_s`` with ``fixed_weights``.

    Args:
        mode: One of the modes above.
        init_log_var: Initial ``s`` for both tasks.
        fixed_weights: ``(w_b, w_s)`` for ``fixed``.
    """

    def __init__(
        self,
        mode: Literal["kendall", "symmetric", "fixed"] = "kendall",
        init_log_var: float = 0.0,
        fixed_weights: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        super().__init__()
        if mode not in ("kendall", "symmetric", "fixed"):
            raise ValueError(f"task_weighting must be 'kendall', 'symmetric' or 'fixed', got {mode!r}")
        self.mode = mode
        self.log_vars = nn.Parameter(torch.full((2,), float(init_log_var)), requires_grad=mode != "fixed")
        self.fixed: Tensor
        self.register_buffer("fixed", torch.tensor(fixed_weights, dtype=torch.float32), persistent=False)

    def weights(self) -> Tensor:
        """Effective multipliers ``(w_bathy, w_seg)`` of the two task losses (detached)."""
        if self.mode == "fixed":
            return self.fixed.clone()
        w = torch.exp(-self.log_vars.detach())
        if self.mode == "kendall":
            w = w * torch.tensor([0.5, 1.0], device=w.device)
        return w

    def forward(self, loss_bathy: Tensor, loss_seg: Tensor) -> Tensor:
        """Return the combined loss."""
        if self.mode == "fixed":
            return self.fixed[0] * loss_bathy + self.fixed[1] * loss_seg
        s_b, s_s = self.log_vars[0], self.log_vars[1]
        if self.mode == "kendall":
            return 0.5 * torch.exp(-s_b) * loss_bathy + 0.5 * s_b + torch.exp(-s_s) * loss_seg + 0.5 * s_s
        return torch.exp(-s_b) * loss_bathy + s_b + torch.exp(-s_s) * loss_seg + s_s
