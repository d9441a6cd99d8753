"""Multi-label classification metrics: average precision and F1 (micro, macro, per class).

Thin wrappers around torchmetrics' ``MultilabelAveragePrecision`` and ``MultilabelF1Score`` that remove the
"logits or probabilities?" guess torchmetrics makes from the value range: the caller states it with
``from_logits``. With ``from_logits=True`` (the default, what a classification head outputs) a sigmoid is
applied before the scores reach torchmetrics; with ``from_logits=False`` the inputs must already lie in [0, 1]
and a value outside that range raises ``ValueError`` instead of being silently passed through a sigmoid.

Conventions (those of torchmetrics, equal to scikit-learn's on non-degenerate data):

* F1 binarises the probabilities with ``p > threshold`` (default 0.5); a class with no positive target and no
  positive prediction has F1 0 and still counts in the macro mean (scikit-learn ``zero_division=0``).
* AP is the exact (non-interpolated, unbinned) average precision, as scikit-learn's
  ``average_precision_score``. ``map_micro`` pools every (sample, label) pair; ``map_macro`` averages the
  per-class APs. A class with no positive target in the whole evaluation set has an undefined AP; torchmetrics
  reports it as-is in the per-class output and leaves NaN classes out of the macro mean with a warning.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MultilabelAveragePrecision, MultilabelF1Score

__all__ = ["multilabel_metrics", "multilabel_per_class"]

_Average = Literal["micro", "macro"] | None


def _to_probabilities(preds: Tensor, from_logits: bool, validate_args: bool) -> Tensor:
    """Return sigmoid(preds) for logits; check that probabilities lie in [0, 1]."""
    if not preds.is_floating_point():
        raise TypeError(f"multi-label preds must be a floating-point tensor of scores, got dtype {preds.dtype}")
    if from_logits:
        return preds.sigmoid()
    if validate_args and not bool(((preds >= 0) & (preds <= 1)).all()):
        raise ValueError(
            "multi-label preds were declared probabilities (from_logits=False) but contain values outside "
            f"[0, 1] (min {preds.min().item():.4g}, max {preds.max().item():.4g}); "
            "pass from_logits=True for logits"
        )
    return preds


def _to_int_target(target: Tensor) -> Tensor:
    """Cast a bool/0-1 target to the integer dtype torchmetrics expects."""
    return target.long() if target.dtype == torch.bool else target


class _MultilabelAP(MultilabelAveragePrecision):
    """``MultilabelAveragePrecision`` with an explicit logits/probabilities switch."""

    def __init__(self, num_labels: int, average: _Average, from_logits: bool, **kwargs: Any) -> None:
        super().__init__(num_labels=num_labels, average=average, **kwargs)
        self.from_logits = from_logits

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Accumulate a batch of scores (N, L) and 0/1 targets (N, L)."""
        super().update(_to_probabilities(preds, self.from_logits, self.validate_args), _to_int_target(target))


class _MultilabelF1(MultilabelF1Score):
    """``MultilabelF1Score`` with an explicit logits/probabilities switch."""

    def __init__(self, num_labels: int, average: _Average, from_logits: bool, threshold: float, **kwargs: Any) -> None:
        super().__init__(num_labels=num_labels, average=average, threshold=threshold, **kwargs)
        self.from_logits = from_logits

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Accumulate a batch of scores (N, L) and 0/1 targets (N, L)."""
        super().update(_to_probabilities(preds, self.from_logits, self.validate_args), _to_int_target(target))


def multilabel_metrics(
    num_labels: int, prefix: str = "", from_logits: bool = True, threshold: float = 0.5
) -> MetricCollection:
    """Micro/macro mAP and F1 for multi-label classification.

    Args:
        num_labels: Number of labels L.
        prefix: Prepended to every key (e.g. ``"val/"``).
        from_logits: True when ``preds`` are logits (a sigmoid is applied), False when they are probabilities
            in [0, 1] (values outside raise ``ValueError``).
        threshold: F1 counts a label as predicted when its probability is ``> threshold``.

    Returns:
        A collection with keys ``map_micro``, ``map_macro``, ``f1_micro``, ``f1_macro`` (each prefixed);
        update it with ``(preds (N, L) float, target (N, L) int or bool)``.
    """
    return MetricCollection(
        {
            "map_micro": _MultilabelAP(num_labels, "micro", from_logits),
            "map_macro": _MultilabelAP(num_labels, "macro", from_logits),
            "f1_micro": _MultilabelF1(num_labels, "micro", from_logits, threshold),
            "f1_macro": _MultilabelF1(num_labels, "macro", from_logits, threshold),
        },
        prefix=prefix or None,
    )


def multilabel_per_class(
    num_labels: int, prefix: str = "", from_logits: bool = True, threshold: float = 0.5
) -> MetricCollection:
    """Per-class AP and F1 for multi-label classification.

    Args:
        num_labels: Number of labels L.
        prefix: Prepended to every key.
        from_logits: True for logits, False for probabilities (see :func:`multilabel_metrics`).
        threshold: F1 binarisation threshold on probabilities.

    Returns:
        A collection with keys ``ap_per_class`` and ``f1_per_class`` (each prefixed), each computing a tensor
        of shape (L,).
    """
    return MetricCollection(
        {
            "ap_per_class": _MultilabelAP(num_labels, None, from_logits),
            "f1_per_class": _MultilabelF1(num_labels, None, from_logits, threshold),
        },
        prefix=prefix or None,
    )
