"""Semantic-segmentation metrics from one confusion matrix: OA, F1, Cohen's kappa, IoU."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["SegmentationMetrics"]


class SegmentationMetrics(Metric):
    """Overall accuracy, per-class and macro F1, Cohen's kappa, per-class IoU and mIoU.

    A (K, K) int64 confusion matrix (rows = target, columns = prediction) is accumulated over batches and
    summed across processes; every score is derived from it in ``compute``.

    Args:
        num_classes: Number of classes K; labels are 0..K-1.
        ignore_index: Target value whose pixels are skipped (may lie outside 0..K-1, e.g. 255 or -1).
        validate_args: Check that labels lie in 0..K-1 (one device-host sync per update).

    Conventions:
        * A class absent from both the target and the prediction has no defined F1/IoU: its per-class value is
          NaN and it is left out of ``f1_macro`` and ``miou``. A class present in only one of them scores 0.
        * When ``ignore_index`` is itself a class id (0..K-1), that class is NaN in the per-class outputs and
          left out of the means (as torchmetrics does); predicting it on a valid pixel still counts as an
          error in ``oa``, ``kappa`` and the true class's recall.
        * ``kappa`` is NaN when the chance agreement is 1 (a single class everywhere).
        * Every key is NaN before any (non-ignored) pixel was seen.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    confmat: Tensor

    def __init__(self, num_classes: int, ignore_index: int | None = None, validate_args: bool = True) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"SegmentationMetrics needs num_classes >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.validate_args = validate_args
        self.add_state("confmat", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Accumulate one batch.

        Args:
            preds: Integer labels (B, H, W) or floating scores/logits (B, K, H, W) (argmax over dim 1).
            target: Integer labels (B, H, W), possibly containing ``ignore_index``.
        """
        k = self.num_classes
        if preds.is_floating_point():
            if preds.ndim != target.ndim + 1 or preds.shape[1] != k:
                raise ValueError(
                    f"SegmentationMetrics: floating preds must be scores (B, {k}, ...) for target "
                    f"{tuple(target.shape)}, got {tuple(preds.shape)}"
                )
            preds = preds.argmax(dim=1)
        if preds.shape != target.shape:
            raise ValueError(
                f"SegmentationMetrics: preds {tuple(preds.shape)} and target {tuple(target.shape)} shapes differ"
            )
        if target.is_floating_point():
            raise TypeError(f"SegmentationMetrics: target must hold integer labels, got dtype {target.dtype}")
        preds = preds.reshape(-1).long()
        target = target.reshape(-1).long()
        valid = torch.ones_like(target, dtype=torch.bool) if self.ignore_index is None else target != self.ignore_index
        if self.validate_args:
            bad = valid & ((target < 0) | (target >= k) | (preds < 0) | (preds >= k))
            if bool(bad.any()):
                raise ValueError(
                    f"SegmentationMetrics: labels must lie in 0..{k - 1} (ignore_index={self.ignore_index}); "
                    f"found target values {torch.unique(target[bad]).tolist()[:10]} and preds values "
                    f"{torch.unique(preds[bad]).tolist()[:10]}"
                )
        # Ignored pixels go to an extra bin k*k that is dropped: no boolean indexing, no data-dependent shape.
        idx = torch.where(valid, target * k + preds, torch.full_like(target, k * k))
        counts = torch.bincount(idx, minlength=k * k + 1)
        if counts.numel() != k * k + 1:
            raise ValueError(f"SegmentationMetrics: labels outside 0..{k - 1} (run with validate_args=True)")
        self.confmat += counts[: k * k].view(k, k)

    def compute(self) -> dict[str, Tensor]:
        """Return ``oa``, ``f1_per_class`` (K,), ``f1_macro``, ``kappa``, ``miou``, ``iou_per_class`` (K,)."""
        cm = self.confmat.to(torch.float64)
        total = cm.sum()
        tp = cm.diagonal()
        n_target = cm.sum(dim=1)
        n_pred = cm.sum(dim=0)
        oa = tp.sum() / total
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=cm.device)
        present = (n_target + n_pred) > 0
        if self.ignore_index is not None and 0 <= self.ignore_index < self.num_classes:
            present[self.ignore_index] = False
        f1 = torch.where(present, 2.0 * tp / (n_target + n_pred), nan)
        iou = torch.where(present, tp / (n_target + n_pred - tp), nan)
        chance = (n_target * n_pred).sum() / total.square()
        kappa = (oa - chance) / (1.0 - chance)
        kappa = torch.where(chance < 1.0, kappa, nan)
        return {
            "oa": oa.float(),
            "f1_per_class": f1.float(),
            "f1_macro": f1.nanmean().float(),
            "kappa": kappa.float(),
            "miou": iou.nanmean().float(),
            "iou_per_class": iou.float(),
        }
