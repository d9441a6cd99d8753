"""GeoRank: soft-rank geographic regularisation for contrastive SSL on multispectral imagery (WACV 2026)."""

from rsim.georank.baselines import GeographyMSE, SoftTargetNTXent, Tile2VecTriplet
from rsim.georank.geo import geo_clusters, haversine_km
from rsim.georank.losses import GeoRankLoss, combine
from rsim.georank.softrank import hard_rank, soft_rank

__all__ = [
    "GeoRankLoss",
    "GeographyMSE",
    "SoftTargetNTXent",
    "Tile2VecTriplet",
    "combine",
    "geo_clusters",
    "hard_rank",
    "haversine_km",
    "soft_rank",
]
