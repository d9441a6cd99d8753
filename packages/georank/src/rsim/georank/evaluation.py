"""Evaluation of SSL backbones: weighted kNN (k = 10, temperature) on frozen features.

Linear probes and fine-tuning reuse ``rsim.core.tasks.MultiLabelClassificationTask`` with the weights written by
:meth:`rsim.georank.tasks.GeoSSLModule.export_backbone` (``freeze_backbone=True`` for the probe).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from rsim.core.metrics import multilabel_metrics
from torch import Tensor


@torch.no_grad()
def extract_features(
    features: Callable[[Tensor], Tensor],
    batches: Iterable[dict[str, Any]],
    transform: Callable[[dict[str, Any]], dict[str, Any]],
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Features and labels of every batch (``transform`` moves a raw batch to its model-ready form).

    Returns:
        ``(features (N, D) float32, labels)`` on ``device``: multi-hot ``(N, L)`` float32, or ``(N,)`` int class ids.
    """
    feats, labels = [], []
    for raw in batches:
        raw = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in raw.items()}
        if isinstance(raw.get("bands"), dict):
            raw["bands"] = {k: v.to(device) for k, v in raw["bands"].items()}
        batch = transform(raw)
        feats.append(features(batch["image"]).float())
        labels.append(batch["label"] if batch["label"].dim() == 1 else batch["label"].float())
    return torch.cat(feats), torch.cat(labels)


def knn_scores(
    train_feats: Tensor, train_labels: Tensor, query: Tensor, k: int = 10, temperature: float = 0.9
) -> Tensor:
    """Weighted kNN label scores in [0, 1]: ``Σ exp(cos/T)·y / Σ exp(cos/T)`` over the ``k`` nearest (cosine).

    Works for multi-hot (multi-label) and one-hot (single-label, take the argmax) labels.
    """
    if k < 1 or temperature <= 0:
        raise ValueError("k must be >= 1 and temperature > 0")
    a = torch.nn.functional.normalize(query.float(), dim=1)
    b = torch.nn.functional.normalize(train_feats.float(), dim=1)
    sim = a @ b.T
    top, idx = sim.topk(min(k, b.shape[0]), dim=1)
    w = torch.exp(top / temperature)
    votes = (w.unsqueeze(-1) * train_labels.float()[idx]).sum(1)
    return votes / w.sum(1, keepdim=True)


def knn_multilabel(
    train_feats: Tensor, train_labels: Tensor, test_feats: Tensor, test_labels: Tensor, k: int = 10,
    temperature: float = 0.9,
) -> dict[str, float]:  # fmt: skip
    """MAP (micro, macro) and F1 of kNN scores, with rsim-core's multi-label metrics."""
    scores = knn_scores(train_feats, train_labels, test_feats, k, temperature)
    metrics = multilabel_metrics(test_labels.shape[1], prefix="knn/", from_logits=False).to(scores.device)
    metrics.update(scores, test_labels.int())
    return {key: float(v) for key, v in metrics.compute().items()}


def knn_accuracy(
    train_feats: Tensor, train_labels: Tensor, test_feats: Tensor, test_labels: Tensor, k: int = 10,
    temperature: float = 0.9, num_classes: int | None = None,
) -> dict[str, float]:  # fmt: skip
    """Single-label kNN: overall and mean per-class accuracy of the argmax of the weighted votes.

    Args:
        train_feats: ``(N, D)`` reference features.
        train_labels: ``(N,)`` int class ids.
        test_feats: ``(M, D)`` query features.
        test_labels: ``(M,)`` int class ids.
        k: Neighbours.
        temperature: Vote temperature.
        num_classes: Classes (default: the largest id + 1).
    """
    n = int(num_classes or int(torch.cat([train_labels, test_labels]).max()) + 1)
    onehot = torch.nn.functional.one_hot(train_labels.long(), n).float()
    pred = knn_scores(train_feats, onehot, test_feats, k, temperature).argmax(1)
    truth = test_labels.long().to(pred.device)
    per_class = [float((pred[truth == c] == c).float().mean()) for c in range(n) if bool((truth == c).any())]
    return {"knn/acc": float((pred == truth).float().mean()), "knn/acc_macro": sum(per_class) / len(per_class)}


__all__ = ["extract_features", "knn_accuracy", "knn_multilabel", "knn_scores"]
