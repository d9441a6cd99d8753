"""NAR's confidence-based label handling, run at the end of every epoch on device tensors.

Inputs are the noisy labels ``y_start`` fixed at the start of training and the sigmoid probabilities of one epoch,
ordered by sample index. Decisions are not cumulative: every call starts again from ``y_start``.

* observed 0 with ``p > p1_zero`` → flip to 1 (subtractive-noise correction; only classes whose noisy prevalence
  is above ``class_min_sub``);
* observed 0 with ``p2_zero < p ≤ p1_zero`` → deactivate (loss weight 0);
* observed 1 with ``p < p1_one`` → flip to 0 (additive-noise correction; only classes whose noisy prevalence is
  above ``class_min_add``);
* observed 1 with ``p1_one ≤ p < p2_one`` → deactivate;
* everything else is kept with weight 1.

A flip blocked by its prevalence gate falls back to deactivation (the entry is below the deactivation threshold
too) [assumption: the original's exact behaviour for gated entries is not documented].

``p1_one``/``p2_one`` accept ``"cw"``: ``p1 = prevalence/3 − 0.05``, ``p2 = prevalence − 0.05`` per class, the
prevalence taken on the labels after the 0 → 1 flips. ``p2_zero`` accepts ``"dynamic"``:
``p2_zero = slope · prevalence + intercept`` per class (noisy prevalence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = ["NRLConfig", "NRLResult", "correction_stats", "nrl_update"]

Threshold = float | Literal["cw"]
ZeroThreshold = float | Literal["dynamic"]


def _check_prob(name: str, value: float) -> None:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"NAR threshold {name} must lie in [0, 1], got {value!r}")


@dataclass(frozen=True)
class NRLConfig:
    """Thresholds and gates of the label handling (defaults: the original README's UCMerced example).

    Args:
        p1_zero: Observed 0 above this probability is flipped to 1 (1.0 = never).
        p2_zero: Observed 0 above this (and ≤ ``p1_zero``) is deactivated; ``"dynamic"`` = slope·prev + intercept.
        p1_one: Observed 1 below this is flipped to 0 (0.0 = never); ``"cw"`` = prevalence/3 − 0.05.
        p2_one: Observed 1 below this (and ≥ ``p1_one``) is deactivated; ``"cw"`` = prevalence − 0.05.
        class_min_add: 1 → 0 flips only for classes whose noisy prevalence is above this.
        class_min_sub: 0 → 1 flips only for classes whose noisy prevalence is above this.
        dynamic_slope: Slope of the dynamic ``p2_zero``.
        dynamic_intercept: Intercept of the dynamic ``p2_zero``.
    """

    p1_zero: float = 0.94
    p2_zero: ZeroThreshold = 0.54
    p1_one: Threshold = 0.0
    p2_one: Threshold = 0.20
    class_min_add: float = 0.2
    class_min_sub: float = 0.0
    dynamic_slope: float = 0.2
    dynamic_intercept: float = 0.5

    def __post_init__(self) -> None:
        _check_prob("p1_zero", self.p1_zero)
        if self.p2_zero != "dynamic":
            if isinstance(self.p2_zero, str):
                raise ValueError(f"p2_zero must be a probability or 'dynamic', got {self.p2_zero!r}")
            _check_prob("p2_zero", self.p2_zero)
            if self.p2_zero > self.p1_zero:
                raise ValueError(
                    f"thresholds out of order: p2_zero={self.p2_zero} must be <= p1_zero={self.p1_zero} "
                    "(observed 0s are deactivated in (p2_zero, p1_zero] and flipped above p1_zero)"
                )
        for name in ("p1_one", "p2_one"):
            value = getattr(self, name)
            if isinstance(value, str):
                if value != "cw":
                    raise ValueError(f"{name} must be a probability or 'cw', got {value!r}")
            else:
                _check_prob(name, value)
        if not isinstance(self.p1_one, str) and not isinstance(self.p2_one, str) and self.p1_one > self.p2_one:
            raise ValueError(
                f"thresholds out of order: p1_one={self.p1_one} must be <= p2_one={self.p2_one} "
                "(observed 1s are flipped below p1_one and deactivated in [p1_one, p2_one))"
            )
        for name in ("class_min_add", "class_min_sub"):
            _check_prob(name, getattr(self, name))


@dataclass
class NRLResult:
    """Output of one label-handling pass (all ``(N, C)`` tensors on the probabilities' device)."""

    labels: Tensor
    weights: Tensor
    flip_to_one: Tensor
    flip_to_zero: Tensor
    deactivated: Tensor


def nrl_update(y_start: Tensor, probs: Tensor, config: NRLConfig) -> NRLResult:
    """Compute next epoch's labels and per-entry weights from the noisy labels and this epoch's probabilities.

    Args:
        y_start: ``(N, C)`` noisy labels (0/1) fixed at the start of training.
        probs: ``(N, C)`` sigmoid probabilities, row ``i`` = sample ``i``.
        config: Thresholds and gates.

    Returns:
        Float labels and weights plus the boolean masks of each decision.
    """
    if y_start.shape != probs.shape:
        raise ValueError(f"y_start {tuple(y_start.shape)} and probs {tuple(probs.shape)} must have the same shape")
    y = y_start.to(probs.dtype)
    is_one, is_zero = y > 0.5, y <= 0.5
    prevalence = y.mean(dim=0)  # noisy prevalence per class, (C,)

    if config.p2_zero == "dynamic":
        p2_zero = (config.dynamic_slope * prevalence + config.dynamic_intercept).clamp(max=config.p1_zero)
    else:
        p2_zero = torch.full_like(prevalence, float(config.p2_zero))
    sub_gate = prevalence > config.class_min_sub
    flip_to_one = is_zero & (probs > config.p1_zero) & sub_gate
    deact_zero = is_zero & (probs > p2_zero) & ~flip_to_one  # a gated flip is deactivated instead

    labels = torch.where(flip_to_one, torch.ones_like(y), y)
    corrected_prev = labels.mean(dim=0)
    p1_one = corrected_prev / 3 - 0.05 if config.p1_one == "cw" else torch.full_like(prevalence, float(config.p1_one))
    p2_one = corrected_prev - 0.05 if config.p2_one == "cw" else torch.full_like(prevalence, float(config.p2_one))
    add_gate = prevalence > config.class_min_add
    flip_to_zero = is_one & (probs < p1_one) & add_gate
    deact_one = is_one & (probs < p2_one) & ~flip_to_zero

    labels = torch.where(flip_to_zero, torch.zeros_like(labels), labels)
    deactivated = deact_zero | deact_one
    weights = (~deactivated).to(probs.dtype)
    return NRLResult(labels, weights, flip_to_one, flip_to_zero, deactivated)


def _ratio(num: Tensor, den: Tensor) -> float:
    d = float(den)
    return float(num) / d if d > 0 else float("nan")


def correction_stats(y_start: Tensor, clean: Tensor, result: NRLResult) -> dict[str, float]:
    """How many flips and deactivations hit truly noisy entries (precision) and how many noisy entries they reach.

    Args:
        y_start: ``(N, C)`` noisy labels.
        clean: ``(N, C)`` clean labels.
        result: The decisions of :func:`nrl_update`.

    Returns:
        Counts and ratios: ``flip1_*`` (0 → 1 flips vs subtractive noise), ``flip0_*`` (1 → 0 flips vs additive
        noise), ``deact_*`` (deactivations vs all noise), ``handled_*`` (flip or deactivation vs all noise) and
        ``label_error`` (fraction of active entries whose label differs from the clean one). Ratios without a
        denominator are NaN.
    """
    noisy = y_start.bool()
    truth = clean.bool()
    wrong = noisy != truth
    missing = truth & ~noisy  # subtractive noise
    extra = noisy & ~truth  # additive noise
    handled = result.flip_to_one | result.flip_to_zero | result.deactivated
    active = result.weights > 0
    stats = {
        "noisy_entries": float(wrong.sum()),
        "flip1_count": float(result.flip_to_one.sum()),
        "flip1_precision": _ratio((result.flip_to_one & missing).sum(), result.flip_to_one.sum()),
        "flip1_recall": _ratio((result.flip_to_one & missing).sum(), missing.sum()),
        "flip0_count": float(result.flip_to_zero.sum()),
        "flip0_precision": _ratio((result.flip_to_zero & extra).sum(), result.flip_to_zero.sum()),
        "flip0_recall": _ratio((result.flip_to_zero & extra).sum(), extra.sum()),
        "deact_count": float(result.deactivated.sum()),
        "deact_precision": _ratio((result.deactivated & wrong).sum(), result.deactivated.sum()),
        "deact_recall": _ratio((result.deactivated & wrong).sum(), wrong.sum()),
        "handled_precision": _ratio((handled & wrong).sum(), handled.sum()),
        "handled_recall": _ratio((handled & wrong).sum(), wrong.sum()),
        "label_error": _ratio(((result.labels > 0.5) != truth)[active].sum(), active.sum()),
    }
    return stats
