"""rsim-seabednet: Seabed-Net joint bathymetry and seabed classification (Agrafiotis, Demir et al. 2026)."""

from rsim.seabednet.models.seabednet import SeabedNet

__all__ = ["SeabedNet"]
