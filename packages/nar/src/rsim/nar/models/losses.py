"""Multi-label losses of NAR and its baselines (functional, no state; buffers live in the LightningModule)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LossNorm", "asl_loss", "elr_regularizer", "weighted_bce", "weighted_mean"]

LossNorm = Literal["all_entries", "active_entries"]
ELR_CLAMP = 1e-4


def weighted_mean(values: Tensor, weights: Tensor | None, norm: LossNorm) -> Tensor:
    """Mean of ``weights ⊙ values`` over all ``B·C`` entries (``all_entries``) or over ``Σ weights``."""
    if weights is None:
        return values.mean()
    total = (values * weights).sum()
    if norm == "active_entries":
        return total / weights.sum().clamp(min=1.0)
    if norm != "all_entries":
        raise ValueError(f"loss_norm must be 'all_entries' or 'active_entries', got {norm!r}")
    return total / values.numel()


def weighted_bce(
    logits: Tensor, target: Tensor, weights: Tensor | None = None, norm: LossNorm = "all_entries"
) -> Tensor:
    """BCE-with-logits per entry, weighted and normalised by :func:`weighted_mean`."""
    return weighted_mean(F.binary_cross_entropy_with_logits(logits, target, reduction="none"), weights, norm)


def elr_regularizer(
    logits: Tensor, target: Tensor, weights: Tensor | None = None, norm: LossNorm = "all_entries"
) -> Tensor:
    """Multi-label ELR term ``mean(w ⊙ log(1 − t ⊙ p))`` with ``p = σ(logits)`` clamped to [1e-4, 1 − 1e-4].

    Args:
        logits: ``(B, C)`` logits.
        target: ``(B, C)`` EMA targets ``t`` (detached).
        weights: ``(B, C)`` entry weights (``None`` = all ones).
        norm: ``all_entries`` (divide by ``B·C``, upstream) or ``active_entries`` (divide by ``Σ w``).
    """
    p = torch.sigmoid(logits).clamp(ELR_CLAMP, 1.0 - ELR_CLAMP)
    return weighted_mean(torch.log(1.0 - target * p), weights, norm)


def asl_loss(
    logits: Tensor,
    target: Tensor,
    gamma_neg: float = 4.0,
    gamma_pos: float = 1.0,
    clip: float = 0.05,
    eps: float = 1e-8,
    weights: Tensor | None = None,
    norm: LossNorm = "all_entries",
) -> Tensor:
    """Asymmetric loss (Ridnik et al., ICCV 2021) per entry, averaged like :func:`weighted_mean`.

    ``L = −[y (1 − p)^γ+ log p + (1 − y) p_m^γ− log(1 − p_m)]`` with the shifted probability
    ``p_m = max(p − clip, 0)`` for negatives. The original sums over entries; the mean only rescales the gradient,
    which AdamW is invariant to.
    """
    p = torch.sigmoid(logits)
    p_m = (p - clip).clamp(min=0.0) if clip > 0 else p
    pos = target * (1.0 - p).pow(gamma_pos) * torch.log(p.clamp(min=eps))
    neg = (1.0 - target) * p_m.pow(gamma_neg) * torch.log((1.0 - p_m).clamp(min=eps))
    return weighted_mean(-(pos + neg), weights, norm)
