"""Redundancy analyses of a feature matrix ``[N, D]``: PCA explained variance, feature correlation, effective rank."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FeatureAnalysis", "analyse_features", "explained_variance", "feature_correlation", "participation_ratio"]


def _eigenvalues(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be [N >= 2, D], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    x = x - x.mean(0, keepdims=True)
    sing = np.linalg.svd(x, compute_uv=False)
    return np.sort(sing**2 / (x.shape[0] - 1))[::-1]


def explained_variance(features: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Cumulative PCA explained-variance ratio and the number of components reaching 90 % and 95 %."""
    lam = _eigenvalues(features)
    total = lam.sum()
    if total <= 0:
        raise ValueError("features have zero variance")
    cum = np.cumsum(lam) / total
    return cum, int(np.searchsorted(cum, 0.90 - 1e-12) + 1), int(np.searchsorted(cum, 0.95 - 1e-12) + 1)


def feature_correlation(features: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean absolute off-diagonal Pearson correlation over feature dimensions, and those values (for a histogram).

    Constant dimensions (zero variance) have no correlation and are left out.
    """
    x = np.asarray(features, dtype=np.float64)
    x = x[:, x.std(0) > 0]
    if x.shape[1] < 2:
        raise ValueError("feature correlation needs at least two non-constant dimensions")
    r = np.atleast_2d(np.corrcoef(x, rowvar=False))
    off = np.abs(r[~np.eye(r.shape[0], dtype=bool)])
    return float(off.mean()), off


def participation_ratio(features: np.ndarray, kind: str = "pr") -> float:
    """Effective dimensionality: ``pr`` = (Σλ)²/Σλ² (default) or ``entropy`` = exp(H(λ/Σλ))."""
    lam = _eigenvalues(features)
    if kind == "pr":
        return float(lam.sum() ** 2 / (lam**2).sum())
    if kind == "entropy":
        p = lam[lam > 0] / lam.sum()
        return float(np.exp(-(p * np.log(p)).sum()))
    raise ValueError(f"kind must be 'pr' or 'entropy', got {kind!r}")


@dataclass
class FeatureAnalysis:
    """All analyses of one feature matrix."""

    cumulative_evr: np.ndarray
    n90: int
    n95: int
    mean_abs_corr: float
    corr_values: np.ndarray
    participation_ratio: float
    entropy_rank: float


def analyse_features(features: np.ndarray) -> FeatureAnalysis:
    """Run every analysis on ``features`` ``[N, D]``."""
    cum, n90, n95 = explained_variance(features)
    mean_r, values = feature_correlation(features)
    return FeatureAnalysis(
        cum, n90, n95, mean_r, values, participation_ratio(features, "pr"), participation_ratio(features, "entropy")
    )
