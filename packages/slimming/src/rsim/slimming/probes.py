"""Probes on frozen features: a linear probe (AdamW, warm-up cosine) and a cosine kNN, single- or multi-label."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from rsim.core.metrics import multilabel_metrics
from rsim.core.tasks.classification import warmup_cosine_schedule
from torch import Tensor

__all__ = ["evaluate", "knn_scores", "linear_probe_scores"]


def _standardise(train: Tensor, test: Tensor) -> tuple[Tensor, Tensor]:
    mean, std = train.mean(0, keepdim=True), train.std(0, keepdim=True).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def linear_probe_scores(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    num_classes: int,
    multilabel: bool,
    epochs: int = 30,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    batch_size: int = 256,
    seed: int = 0,
) -> Tensor:
    """Train a linear classifier on standardised features; return test logits ``[N, K]``.

    Defaults: AdamW lr 1e-3, wd 0.01, 30 epochs, one warm-up epoch then cosine [assumption: rsim convention].
    """
    gen = torch.Generator().manual_seed(seed)
    xtr, xte = _standardise(train_x.float(), test_x.float())
    head = torch.nn.Linear(xtr.shape[1], num_classes).to(xtr.device)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * 0.01)
        head.bias.zero_()
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, -(-len(xtr) // batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine_schedule(steps_per_epoch, epochs * steps_per_epoch))
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(len(xtr), generator=gen).to(xtr.device)
            for i in range(0, len(xtr), batch_size):
                idx = order[i : i + batch_size]
                logits = head(xtr[idx])
                if multilabel:
                    loss = F.binary_cross_entropy_with_logits(logits, train_y[idx].float())
                else:
                    loss = F.cross_entropy(logits, train_y[idx].long())
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    with torch.no_grad():
        return head(xte)


def knn_scores(
    train_x: Tensor, train_y: Tensor, test_x: Tensor, num_classes: int, multilabel: bool, k: int = 20, t: float = 0.07
) -> Tensor:
    """Cosine kNN with similarity weights ``exp(sim / t)``: class scores ``[N, K]`` in [0, 1]."""
    k = min(k, len(train_x))
    sim = F.normalize(test_x.float(), dim=1) @ F.normalize(train_x.float(), dim=1).T
    top, idx = sim.topk(k, dim=1)
    w = (top / t).softmax(dim=1)
    targets = train_y.float() if multilabel else F.one_hot(train_y.long(), num_classes).float()
    return (w[..., None] * targets[idx]).sum(1).clamp(0.0, 1.0)  # float rounding can exceed 1


def evaluate(scores: Tensor, target: Tensor, multilabel: bool, from_logits: bool) -> float:
    """Macro mAP (multi-label, via ``rsim.core.metrics``) or accuracy (single-label), in [0, 1]."""
    if multilabel:
        metrics = multilabel_metrics(target.shape[1], from_logits=from_logits).to(scores.device)
        metrics.update(scores, target.int())
        return float(metrics.compute()["map_macro"])
    return float((scores.argmax(1) == target.long()).float().mean())
