"""Binary-mask metrics of referring segmentation: gIoU (mean per-sample IoU) and cIoU (cumulative IoU)."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["MaskIoU"]


class MaskIoU(Metric):
    """gIoU and cIoU of predicted binary masks.

    * ``giou``: mean over samples of the per-sample IoU. A sample whose prediction and target are both empty
      (union 0) counts IoU 1.0 (it is perfectly predicted).
    * ``ciou``: cumulative intersection / cumulative union over all samples (large objects weigh more). When
      every sample seen had an empty union it is 1.0, by the same convention.

    Both are NaN before any sample. States are int64/float64 sums reduced with ``"sum"`` across processes.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    iou_sum: Tensor
    num_samples: Tensor
    inter_sum: Tensor
    union_sum: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("iou_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_samples", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("inter_sum", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("union_sum", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of masks.

        Args:
            preds: Predicted masks (B, H, W) (any trailing dims), bool or integer 0/1. Threshold probabilities
                or logits before calling; floating tensors are rejected.
            target: Reference masks, same shape and dtype rules.
        """
        if preds.shape != target.shape:
            raise ValueError(f"MaskIoU: preds {tuple(preds.shape)} and target {tuple(target.shape)} shapes differ")
        if preds.ndim < 2:
            raise ValueError(f"MaskIoU: expected masks (B, H, W) with the batch first, got {tuple(preds.shape)}")
        for name, m in (("preds", preds), ("target", target)):
            if m.is_floating_point() or m.is_complex():
                raise TypeError(f"MaskIoU: {name} must be a bool (or 0/1 integer) mask, got dtype {m.dtype}")
        p = preds.bool().flatten(1)
        t = target.bool().flatten(1)
        inter = (p & t).sum(dim=1)
        union = (p | t).sum(dim=1)
        iou = torch.where(
            union > 0,
            inter.double() / union.clamp_min(1).double(),
            torch.ones_like(union, dtype=torch.float64),
        )
        self.iou_sum += iou.sum()
        self.num_samples += iou.numel()
        self.inter_sum += inter.sum()
        self.union_sum += union.sum()

    def compute(self) -> dict[str, Tensor]:
        """Return ``{"giou", "ciou"}`` as float32 scalars."""
        giou = self.iou_sum / self.num_samples.to(torch.float64)
        ciou = torch.where(
            self.union_sum > 0,
            self.inter_sum.double() / self.union_sum.clamp_min(1).double(),
            torch.where(self.num_samples > 0, 1.0, float("nan")).to(torch.float64),
        )
        return {"giou": giou.float(), "ciou": ciou.float()}
