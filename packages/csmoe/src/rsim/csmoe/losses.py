"""CSMAE objectives: masked-patch MSE (uni- and cross-sensor reconstruction) and cross-sensor NT-Xent."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["masked_mse", "nt_xent", "patchify", "unpatchify"]


def patchify(imgs: Tensor, patch_size: int) -> Tensor:
    """``[B, C, H, W] -> [B, L, p²·C]`` (raster patch order, channel-last inside a patch, as MAE/CSMAE)."""
    b, c, h, w = imgs.shape
    if h % patch_size or w % patch_size:
        raise ValueError(f"image {h}x{w} is not divisible by patch size {patch_size}")
    gh, gw = h // patch_size, w // patch_size
    x = imgs.reshape(b, c, gh, patch_size, gw, patch_size)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(b, gh * gw, patch_size**2 * c)


def unpatchify(patches: Tensor, patch_size: int, channels: int) -> Tensor:
    """Inverse of :func:`patchify` for square images."""
    b, n, _ = patches.shape
    g = round(n**0.5)
    x = patches.reshape(b, g, g, patch_size, patch_size, channels)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(b, channels, g * patch_size, g * patch_size)


def masked_mse(imgs: Tensor, pred: Tensor, mask: Tensor, patch_size: int, norm_pix_loss: bool = False) -> Tensor:
    """Mean squared error over the masked patches.

    Args:
        imgs: Target images ``[B, C, H, W]``.
        pred: Predicted patches ``[B, L, p²·C]``.
        mask: ``[B, L]``, 1 where the loss is taken.
        patch_size: Patch size.
        norm_pix_loss: Standardise every target patch by its own mean and variance first.

    Returns:
        Scalar loss.
    """
    target = patchify(imgs, patch_size)
    if target.shape != pred.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} does not match the target {tuple(target.shape)}")
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = (pred - target).pow(2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1)


def nt_xent(feats_a: Tensor, feats_b: Tensor, temperature: float = 0.5) -> Tensor:
    """NT-Xent between paired features (CSMAE's MIM loss).

    The 2B cosine-normalised features form one similarity matrix; for each row the positive is its
    cross-sensor partner and the other 2B - 2 rows are negatives (self-similarity excluded).

    Args:
        feats_a: ``[B, D]`` (e.g. S1).
        feats_b: ``[B, D]`` (e.g. S2), row i pairs with ``feats_a`` row i.
        temperature: τ (0.5 in CSMAE).

    Returns:
        Scalar loss (mean over the 2B rows).
    """
    if feats_a.shape != feats_b.shape:
        raise ValueError(f"paired features differ in shape: {tuple(feats_a.shape)} vs {tuple(feats_b.shape)}")
    b = feats_a.shape[0]
    z = F.normalize(torch.cat([feats_a, feats_b]), dim=1)
    logits = z @ z.t() / temperature
    logits = logits.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(logits, target)
