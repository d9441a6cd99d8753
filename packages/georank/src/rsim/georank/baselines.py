"""Geography-aware baseline regularisers computed in-batch: distance MSE, soft-target NT-Xent and Tile2Vec triplets.

All take ``(z (B, c), coords (B, 2) lat/lon degrees)`` like :class:`rsim.georank.losses.GeoRankLoss` and can
replace it in the SSL modules (``GeoRankConfig.kind``).
"""

from __future__ import annotations

import torch
from rsim.georank.geo import haversine_km
from torch import Tensor, nn


def _cosine(z: Tensor) -> Tensor:
    zn = nn.functional.normalize(z if z.dtype == torch.float64 else z.float(), dim=1)
    return zn @ zn.T


class GeographyMSE(nn.Module):
    """Regress the feature distance ``(1 − cos)/τ − spacing`` onto ``haversine / scale_km`` (off-diagonal mean).

    Args:
        temperature: ``τ``.
        scale_km: Distance scale (the original: 8000 km).
        spacing: Offset subtracted from the feature distance [assumption: 0; its meaning is not documented].
    """

    def __init__(self, temperature: float = 0.04, scale_km: float = 8000.0, spacing: float = 0.0) -> None:
        super().__init__()
        self.temperature, self.scale_km, self.spacing = temperature, scale_km, spacing

    def forward(self, z: Tensor, coords: Tensor) -> Tensor:  # noqa: D102
        b = z.shape[0]
        off = ~torch.eye(b, dtype=torch.bool, device=z.device)
        pred = (1.0 - _cosine(z)) / self.temperature - self.spacing
        target = (haversine_km(coords) / self.scale_km).to(pred.dtype)
        return ((pred - target) ** 2)[off].mean()


class SoftTargetNTXent(nn.Module):
    """Cross-entropy of ``cos/τ`` (diagonal excluded) against soft targets ∝ ``1 / clip(distance, min_km, max_km)``.

    Args:
        temperature: ``τ``.
        min_km: Lower clip of the distances (avoids infinite weights for co-located samples).
        max_km: Upper clip.
    """

    def __init__(self, temperature: float = 0.04, min_km: float = 1.0, max_km: float = 3000.0) -> None:
        super().__init__()
        self.temperature, self.min_km, self.max_km = temperature, min_km, max_km

    def forward(self, z: Tensor, coords: Tensor) -> Tensor:  # noqa: D102
        b = z.shape[0]
        eye = torch.eye(b, dtype=torch.bool, device=z.device)
        logits = (_cosine(z) / self.temperature).masked_fill(eye, float("-inf"))
        with torch.no_grad():
            inv = 1.0 / haversine_km(coords).clamp(self.min_km, self.max_km).to(logits.dtype)
            inv = inv.masked_fill(eye, 0.0)
            target = inv / inv.sum(1, keepdim=True)
        logp = torch.log_softmax(logits, dim=1).masked_fill(eye, 0.0)
        return -(target * logp).sum(1).mean()


class Tile2VecTriplet(nn.Module):
    """Triplet margin loss: nearest neighbour within ``pos_km`` as positive, nearest beyond ``neg_km`` as negative.

    Anchors without a valid positive or negative are skipped; with none, the loss is 0 (still in the graph).

    Args:
        margin: Triplet margin (Tile2Vec: 1.0).
        pos_km: Largest positive distance (15 km).
        neg_km: Smallest negative distance (50 km).
    """

    def __init__(self, margin: float = 1.0, pos_km: float = 15.0, neg_km: float = 50.0) -> None:
        super().__init__()
        self.margin, self.pos_km, self.neg_km = margin, pos_km, neg_km

    def forward(self, z: Tensor, coords: Tensor) -> Tensor:  # noqa: D102
        b = z.shape[0]
        with torch.no_grad():
            d = haversine_km(coords)
            d = d.masked_fill(torch.eye(b, dtype=torch.bool, device=d.device), float("inf"))
            pos_d = d.masked_fill(d > self.pos_km, float("inf"))
            neg_d = d.masked_fill(d < self.neg_km, float("inf"))
            pos_v, pos_i = pos_d.min(1)
            neg_v, neg_i = neg_d.min(1)
            valid = torch.isfinite(pos_v) & torch.isfinite(neg_v)
        if not bool(valid.any()):
            return z.sum() * 0.0
        anchors = torch.nonzero(valid).squeeze(1)
        return nn.functional.triplet_margin_loss(z[anchors], z[pos_i[anchors]], z[neg_i[anchors]], margin=self.margin)


__all__ = ["GeographyMSE", "SoftTargetNTXent", "Tile2VecTriplet"]
