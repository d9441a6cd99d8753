"""RS-InternVL-style model (nn.Modules only)."""

from rsim.bigearthnet_txt.models.rs_internvl import RSInternVL

__all__ = ["RSInternVL"]
