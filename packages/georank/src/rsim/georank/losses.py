"""The GeoRank loss and the total SSL + GeoRank objective."""

from __future__ import annotations

import math
from typing import Literal

import torch
from rsim.georank.geo import EARTH_RADIUS_KM, euclidean_latlon, haversine_km
from rsim.georank.softrank import hard_rank, soft_rank
from torch import Tensor, nn


def drop_diagonal(m: Tensor) -> Tensor:
    """``(B, B)`` → ``(B, B − 1)``: every row without its diagonal entry."""
    b = m.shape[0]
    return m.flatten()[1:].view(b - 1, b + 1)[:, :-1].reshape(b, b - 1)


class GeoRankLoss(nn.Module):
    """Rank-based geographic regulariser: feature-similarity ranks should follow geographic proximity ranks.

    1. ``S = ẑẑᵀ/τ`` on L2-normalised embeddings, diagonal dropped.
    2. ``D`` = pairwise haversine distance in km, diagonal dropped.
    3. Predicted ranks ``r̂ = B − soft_rank(S)`` (ascending soft rank, L2, strength ``ε``): most similar ≈ 1.
    4. Target ranks ``r`` = hard ranks of ``D`` (nearest = 1), no gradient.
    5. Both rows normalised to unit L2 norm.
    6. Element-wise squared (or absolute) error; only pairs with ``min_dist_km ≤ D ≤ max_dist_km`` count; errors
       ``≤ (m/σ)²`` (``≤ m/σ`` for L1) are zeroed, ``σ = ‖[1, …, B−1]‖₂``.
    7. ``L = mean(kept errors) · σ``.

    Args:
        temperature: ``τ``.
        soft_rank_eps: Soft-rank regularisation strength ``ε``.
        min_dist_km: Smallest pair distance that counts.
        max_dist_km: Largest pair distance that counts.
        soft_margin: Margin ``m`` in rank positions.
        rank_loss: ``mse`` or ``l1``.
        distance: ``haversine`` or ``euclidean`` (ranks by Euclidean distance on normalised (lat, lon); the
            window still uses haversine km).
        radius_km: Earth radius of the haversine formula.
        soft_rank_backend: ``torch`` or ``torchsort``.
    """

    def __init__(
        self,
        temperature: float = 0.04,
        soft_rank_eps: float = 1e-3,
        min_dist_km: float = 0.0,
        max_dist_km: float = 3000.0,
        soft_margin: float = 1.0,
        rank_loss: Literal["mse", "l1"] = "mse",
        distance: Literal["haversine", "euclidean"] = "haversine",
        radius_km: float = EARTH_RADIUS_KM,
        soft_rank_backend: Literal["torch", "torchsort"] = "torch",
    ) -> None:
        super().__init__()
        if temperature <= 0 or soft_rank_eps <= 0:
            raise ValueError("temperature and soft_rank_eps must be positive")
        if rank_loss not in ("mse", "l1"):
            raise ValueError(f"rank_loss must be 'mse' or 'l1', got {rank_loss!r}")
        if distance not in ("haversine", "euclidean"):
            raise ValueError(f"distance must be 'haversine' or 'euclidean', got {distance!r}")
        if min_dist_km > max_dist_km:
            raise ValueError(f"min_dist_km={min_dist_km} exceeds max_dist_km={max_dist_km}")
        self.temperature = temperature
        self.soft_rank_eps = soft_rank_eps
        self.min_dist_km = min_dist_km
        self.max_dist_km = max_dist_km
        self.soft_margin = soft_margin
        self.rank_loss = rank_loss
        self.distance = distance
        self.radius_km = radius_km
        self.soft_rank_backend = soft_rank_backend

    def forward(self, z: Tensor, coords: Tensor) -> Tensor:
        """Loss of embeddings ``z`` ``(B, c)`` for samples at ``coords`` ``(B, 2)`` (lat, lon in degrees)."""
        if z.dim() != 2 or coords.shape != (z.shape[0], 2):
            raise ValueError(f"expected z (B, c) and coords (B, 2), got {tuple(z.shape)} and {tuple(coords.shape)}")
        b = z.shape[0]
        if b < 2:
            raise ValueError("GeoRank needs a batch of at least 2 samples")
        zn = nn.functional.normalize(z if z.dtype == torch.float64 else z.float(), dim=1)
        sim = drop_diagonal(zn @ zn.T / self.temperature)
        with torch.no_grad():
            dist_km = drop_diagonal(haversine_km(coords, radius_km=self.radius_km)).to(sim.dtype)
            rank_by = dist_km if self.distance == "haversine" else drop_diagonal(euclidean_latlon(coords))
            target = hard_rank(rank_by.to(sim.dtype))
            target = target / target.norm(dim=1, keepdim=True)
            keep = (dist_km >= self.min_dist_km) & (dist_km <= self.max_dist_km)
        pred = b - soft_rank(sim, self.soft_rank_eps, backend=self.soft_rank_backend)
        pred = pred / pred.norm(dim=1, keepdim=True)
        sigma = math.sqrt((b - 1) * b * (2 * b - 1) / 6)  # ‖[1, …, B−1]‖₂
        diff = pred - target
        if self.rank_loss == "mse":
            err, floor = diff**2, (self.soft_margin / sigma) ** 2
        else:
            err, floor = diff.abs(), self.soft_margin / sigma
        err = torch.where(err <= floor, torch.zeros_like(err), err)
        if not bool(keep.any()):
            return sim.sum() * 0.0
        return err[keep].mean() * sigma


def combine(ssl_loss: Tensor, georank_loss: Tensor | None, alpha: float) -> Tensor:
    """Total loss ``(1 − α)·L_ssl + α·L_georank`` (``L_ssl`` alone without GeoRank)."""
    if georank_loss is None:
        return ssl_loss
    return (1.0 - alpha) * ssl_loss + alpha * georank_loss


__all__ = ["GeoRankLoss", "combine", "drop_diagonal"]
