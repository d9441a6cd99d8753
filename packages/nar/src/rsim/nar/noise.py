"""Synthetic multi-label noise injection, exactly the NAR experimental protocol.

Per class ``c`` independently, with ``P_c`` the clean positives and ``N`` the number of training samples:

* additive noise sets ``min(⌊|P_c|·a⌋, ⌊0.95·N⌋ − |P_c|)`` randomly chosen negatives to 1 (the cap keeps every class
  below 95 % prevalence);
* subtractive noise sets ``⌊|P_c|·s⌋`` randomly chosen positives to 0;
* mixed noise applies both; both counts are computed on the clean ``P_c``, the two draws use disjoint entries
  (negatives vs positives) of the clean matrix.

The draw uses one seeded :class:`numpy.random.Generator` that visits the classes in column order, so a
``(labels, add_rate, sub_rate, seed)`` tuple always gives the same matrix (the original code used the global RNG).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rsim.core.io import atomic_path

__all__ = ["NoisyLabels", "inject_noise", "load_noisy_labels", "noise_type", "validate_rate"]

ADDITIVE_CAP = 0.95


def validate_rate(name: str, rate: float) -> float:
    """Return ``rate`` as a float, raising ``ValueError`` unless it is a finite number in [0, 1]."""
    value = float(rate)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1] (a fraction of the clean positives of each class), got {rate!r}")
    return value


def noise_type(add_rate: float, sub_rate: float) -> str:
    """``clean``, ``additive``, ``subtractive`` or ``mixed``, derived from the two explicit rates."""
    if add_rate > 0 and sub_rate > 0:
        return "mixed"
    if add_rate > 0:
        return "additive"
    if sub_rate > 0:
        return "subtractive"
    return "clean"


@dataclass(frozen=True)
class NoisyLabels:
    """A noisy training label matrix with the clean one it was drawn from.

    Attributes:
        noisy: ``(N, C)`` uint8 labels after injection (what the model sees).
        clean: ``(N, C)`` uint8 original labels (kept for diagnostics only).
        add_rate: Additive rate ``a``.
        sub_rate: Subtractive rate ``s``.
        seed: Seed of the numpy Generator.
    """

    noisy: np.ndarray
    clean: np.ndarray
    add_rate: float
    sub_rate: float
    seed: int

    @property
    def noise_type(self) -> str:
        """``clean``, ``additive``, ``subtractive`` or ``mixed``."""
        return noise_type(self.add_rate, self.sub_rate)

    @property
    def added(self) -> np.ndarray:
        """Mask of entries turned 0 → 1 (additive noise)."""
        return (self.noisy == 1) & (self.clean == 0)

    @property
    def removed(self) -> np.ndarray:
        """Mask of entries turned 1 → 0 (subtractive noise)."""
        return (self.noisy == 0) & (self.clean == 1)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``noisy``, ``clean``, rates and seed to a compressed ``.npz`` (atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                noisy=self.noisy,
                clean=self.clean,
                add_rate=np.float64(self.add_rate),
                sub_rate=np.float64(self.sub_rate),
                seed=np.int64(self.seed),
            )
        return path


def load_noisy_labels(path: str | os.PathLike[str]) -> NoisyLabels:
    """Read a matrix written by :meth:`NoisyLabels.save`; a missing file or key raises an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"noisy label file {path} is missing")
    with np.load(path) as data:
        missing = [k for k in ("noisy", "clean", "add_rate", "sub_rate", "seed") if k not in data.files]
        if missing:
            raise KeyError(f"{path}: keys {missing} are missing (expected noisy, clean, add_rate, sub_rate, seed)")
        noisy, clean = data["noisy"], data["clean"]
        if noisy.shape != clean.shape or noisy.ndim != 2:
            raise ValueError(f"{path}: noisy {noisy.shape} and clean {clean.shape} must be equal (N, C) matrices")
        return NoisyLabels(
            noisy.astype(np.uint8),
            clean.astype(np.uint8),
            float(data["add_rate"]),
            float(data["sub_rate"]),
            int(data["seed"]),
        )


def inject_noise(
    labels: np.ndarray, *, add_rate: float = 0.0, sub_rate: float = 0.0, seed: int = 0, source: str = "labels"
) -> NoisyLabels:
    """Inject class-wise additive and/or subtractive noise into a clean multi-hot matrix.

    Args:
        labels: ``(N, C)`` clean multi-hot matrix (0/1, any numeric or bool dtype) of the training split.
        add_rate: Additive rate ``a`` in [0, 1], a fraction of each class's clean positives.
        sub_rate: Subtractive rate ``s`` in [0, 1], a fraction of each class's clean positives.
        seed: Seed of the :class:`numpy.random.Generator`.
        source: Name of the label source, used in error messages.

    Returns:
        The noisy and clean matrices with the rates and seed.

    Raises:
        ValueError: A rate outside [0, 1], a matrix that is not 2-D 0/1, or a matrix without any positive label.
    """
    add_rate = validate_rate("add_rate", add_rate)
    sub_rate = validate_rate("sub_rate", sub_rate)
    arr = np.asarray(labels)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{source}: expected a non-empty (N, C) multi-hot matrix, got shape {arr.shape}")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{source}: labels must be 0/1 (multi-hot); found values {np.unique(arr)[:8].tolist()}")
    clean = arr.astype(np.uint8)
    if clean.sum() == 0:
        raise ValueError(f"{source}: every label is empty (no positive entry in {clean.shape[0]} samples)")
    rng = np.random.default_rng(seed)
    noisy = clean.copy()
    n = clean.shape[0]
    cap = math.floor(ADDITIVE_CAP * n)
    for c in range(clean.shape[1]):
        positives = np.flatnonzero(clean[:, c] == 1)
        negatives = np.flatnonzero(clean[:, c] == 0)
        p = len(positives)
        if add_rate > 0:
            n_add = max(0, min(math.floor(p * add_rate), cap - p, len(negatives)))
            if n_add:
                noisy[rng.choice(negatives, size=n_add, replace=False), c] = 1
        if sub_rate > 0:
            n_sub = math.floor(p * sub_rate)
            if n_sub:
                noisy[rng.choice(positives, size=n_sub, replace=False), c] = 0
    return NoisyLabels(noisy, clean, add_rate, sub_rate, int(seed))
