"""Great-circle (haversine) distances in torch, computed pairwise on the batch's device.

An own implementation rather than the PyPI ``haversine`` package: that package works on numpy/Python floats, so a
training step would need a device → host round trip per batch; here the whole ``B × B`` matrix is one vectorised
expression on whatever device the coordinates live on. The Earth radius is a parameter; its default is the mean
radius 6371.0088 km, the constant the ``haversine`` package uses.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

EARTH_RADIUS_KM = 6371.0088


def _check_coords(coords: Tensor, name: str) -> None:
    if coords.dim() != 2 or coords.shape[-1] != 2:
        raise ValueError(f"{name} must be (N, 2) (lat, lon) in degrees, got shape {tuple(coords.shape)}")
    if not bool(torch.isfinite(coords).all()):
        raise ValueError(f"{name} holds NaN or infinite coordinates")
    if bool((coords[:, 0].abs() > 90).any()) or bool((coords[:, 1].abs() > 360).any()):
        raise ValueError(
            f"{name}: latitude must lie in [-90, 90] and longitude in [-360, 360] degrees (lat, lon order)"
        )


def haversine_km(a: Tensor, b: Tensor | None = None, radius_km: float = EARTH_RADIUS_KM) -> Tensor:
    """Pairwise great-circle distances in km.

    Args:
        a: ``(N, 2)`` (lat, lon) in degrees.
        b: ``(M, 2)`` (lat, lon) in degrees; ``None`` means ``a``.
        radius_km: Sphere radius.

    Returns:
        ``(N, M)`` distances (float64 inputs stay float64; others are computed in float32 at least).
    """
    b = a if b is None else b
    _check_coords(a, "a")
    _check_coords(b, "b")
    dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
    lat1, lon1 = torch.deg2rad(a.to(dtype)).unbind(-1)
    lat2, lon2 = torch.deg2rad(b.to(dtype)).unbind(-1)
    dlat = lat2[None, :] - lat1[:, None]
    dlon = lon2[None, :] - lon1[:, None]
    h = torch.sin(dlat / 2) ** 2 + torch.cos(lat1)[:, None] * torch.cos(lat2)[None, :] * torch.sin(dlon / 2) ** 2
    return 2 * radius_km * torch.asin(torch.sqrt(h.clamp(0.0, 1.0)))


def euclidean_latlon(a: Tensor) -> Tensor:
    """Pairwise Euclidean distances between L2-normalised (lat, lon) vectors (the original's Euclidean variant)."""
    _check_coords(a, "a")
    x = torch.nn.functional.normalize(a.to(torch.float64 if a.dtype == torch.float64 else torch.float32), dim=1)
    return torch.cdist(x, x)


def max_distance_km(radius_km: float = EARTH_RADIUS_KM) -> float:
    """Half the circumference: the largest possible great-circle distance."""
    return math.pi * radius_km


def latlon_to_unit(coords: np.ndarray) -> np.ndarray:
    """``(N, 2)`` (lat, lon) degrees → ``(N, 3)`` points on the unit sphere (Earth-centred)."""
    lat, lon = np.radians(np.asarray(coords, dtype=np.float64)).T
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)


def geo_clusters(coords: np.ndarray, k: int = 10, seed: int = 0, iterations: int = 50) -> np.ndarray:
    """K-means cluster id (``0 … k−1``) of every location, for GASSL's geo-classification pretext task.

    Clustering runs on 3-D unit vectors (so the ±180° meridian and the poles are not seams) with scipy's
    ``kmeans2`` (k-means++ initialisation, seeded). Clusters left empty by k-means are dropped and the ids
    renumbered, so every id in ``0 … max`` is used.

    Args:
        coords: ``(N, 2)`` (lat, lon) in degrees.
        k: Number of clusters (GASSL in the GeoRank code: 10).
        seed: Seed of the initialisation.
        iterations: K-means iterations.

    Returns:
        ``(N,)`` int64 cluster ids.
    """
    from scipy.cluster.vq import kmeans2

    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2 or not np.isfinite(coords).all():
        raise ValueError(f"geo_clusters expects finite (N, 2) (lat, lon) coordinates, got shape {coords.shape}")
    if not 1 <= k <= len(coords):
        raise ValueError(f"cannot form k={k} clusters from {len(coords)} locations")
    _, labels = kmeans2(latlon_to_unit(coords), k, iter=iterations, minit="++", seed=seed)
    _, dense = np.unique(labels, return_inverse=True)
    return dense.astype(np.int64)


__all__ = [
    "EARTH_RADIUS_KM",
    "euclidean_latlon",
    "geo_clusters",
    "haversine_km",
    "latlon_to_unit",
    "max_distance_km",
]
