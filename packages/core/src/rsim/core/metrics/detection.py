"""Box-localisation metrics (visual grounding): IoU of xyxy boxes, mean IoU and accuracy at IoU >= 0.5."""

from __future__ import annotations

import torch
import torchvision.ops
from torch import Tensor
from torchmetrics import Metric

__all__ = ["BoxAccuracy", "box_iou", "paired_box_iou"]


def _check_boxes(boxes: Tensor, name: str) -> None:
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name}: expected boxes (N, 4) as (x1, y1, x2, y2), got shape {tuple(boxes.shape)}")


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU of two sets of boxes (``torchvision.ops.box_iou``).

    Args:
        a: Boxes (N, 4) as (x1, y1, x2, y2) with x1 <= x2, y1 <= y2.
        b: Boxes (M, 4), same format.

    Returns:
        IoU matrix (N, M).
    """
    _check_boxes(a, "box_iou a")
    _check_boxes(b, "box_iou b")
    return torchvision.ops.box_iou(a, b)


def paired_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of each box with the box at the same index (the diagonal of :func:`box_iou`, without the N x N).

    Args:
        a: Boxes (N, 4) as (x1, y1, x2, y2).
        b: Boxes (N, 4).

    Returns:
        IoU per pair (N,), in the promoted floating dtype. Two degenerate (zero-area) boxes have union 0 and
        IoU 0.
    """
    _check_boxes(a, "paired_box_iou a")
    _check_boxes(b, "paired_box_iou b")
    if a.shape != b.shape:
        raise ValueError(f"paired_box_iou: need the same number of boxes, got {tuple(a.shape)} and {tuple(b.shape)}")
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    a, b = a.to(dtype), b.to(dtype)
    wh = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp_min(0)
    inter = wh[:, 0] * wh[:, 1]
    union = torchvision.ops.box_area(a) + torchvision.ops.box_area(b) - inter
    return torch.where(union > 0, inter / union.clamp_min(torch.finfo(dtype).tiny), torch.zeros_like(inter))


class BoxAccuracy(Metric):
    """Mean IoU and accuracy at an IoU threshold for one predicted box per target box.

    Args:
        threshold: A prediction is correct when its IoU with its target is ``>= threshold``.
        validate_args: Check that boxes satisfy x1 <= x2 and y1 <= y2 (one device-host sync per update).

    ``compute`` returns ``{"miou", "acc@<threshold>"}`` (``"acc@0.5"`` by default), NaN before any update.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    iou_sum: Tensor
    hits: Tensor
    count: Tensor

    def __init__(self, threshold: float = 0.5, validate_args: bool = True) -> None:
        super().__init__()
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"BoxAccuracy threshold must be in (0, 1], got {threshold}")
        self.threshold = float(threshold)
        self.validate_args = validate_args
        self.acc_key = f"acc@{self.threshold:g}"
        self.add_state("iou_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("hits", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred_boxes: Tensor, target_boxes: Tensor) -> None:
        """Add N (prediction, target) pairs of xyxy boxes, each (N, 4)."""
        if self.validate_args:
            for name, boxes in (("pred_boxes", pred_boxes), ("target_boxes", target_boxes)):
                _check_boxes(boxes, f"BoxAccuracy {name}")
                if bool(((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any()):
                    raise ValueError(f"BoxAccuracy {name}: boxes must be (x1, y1, x2, y2) with x1 <= x2, y1 <= y2")
        iou = paired_box_iou(pred_boxes, target_boxes)
        self.iou_sum += iou.double().sum()
        self.hits += (iou >= self.threshold).sum()
        self.count += iou.numel()

    def compute(self) -> dict[str, Tensor]:
        """Return ``{"miou", "acc@<threshold>"}`` as float32 scalars."""
        n = self.count.to(torch.float64)
        return {"miou": (self.iou_sum / n).float(), self.acc_key: (self.hits / n).float()}
